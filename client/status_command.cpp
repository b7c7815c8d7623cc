// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl status`: kmodd's properties (org.freedesktop.DBus.Properties.GetAll) and the
// devices waiting for a driver (ListWaitingDevices).
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"
#include "kmodd_dbus_names.hpp"

namespace kmodd::client {

namespace {

using Properties = dbus::PropertyMap;

template <typename T> T property(const Properties& properties, const std::string& name)
{
    auto it = properties.find(dbus::PropertyName(name));
    if (it == properties.end() || !it->second.containsValueOfType<T>())
        throw CommandError("kmodd did not report its property '" + name +
                           "' (is it an older or newer kmodd?)");
    return it->second.get<T>();
}

/// A CLOCK_REALTIME time in microseconds as local time, e.g. "Tue 2023-11-14 23:13:20 CET".
std::string format_local_time(std::uint64_t usec)
{
    auto seconds = static_cast<std::time_t>(usec / 1000000);
    std::tm local{};
    char buf[64];
    if (::localtime_r(&seconds, &local) == nullptr ||
        std::strftime(buf, sizeof buf, "%a %Y-%m-%d %H:%M:%S %Z", &local) == 0)
        return std::to_string(usec) + " us since the epoch";
    return buf;
}

std::string format_milliseconds(std::uint64_t usec)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(usec) / 1000.0);
    return buf;
}

nlohmann::json failing_json(const std::vector<std::pair<std::string, std::string>>& failing)
{
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [release, problem] : failing)
        out.push_back({{"release", release}, {"problem", problem}});
    return out;
}

} // namespace

int run_status(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"status", "", 0, 0};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        auto& manager = session.manager();
        Properties properties = manager.GetAll(dbus::InterfaceName(kmodd::dbus::kInterfaceName));
        auto release = property<std::string>(properties, "KernelRelease");
        auto modules = property<std::uint32_t>(properties, "ModuleCount");
        auto generation = property<std::uint64_t>(properties, "IndexGeneration");
        auto rebuilt_usec = property<std::uint64_t>(properties, "LastRebuildUSec");
        auto duration_usec = property<std::uint64_t>(properties, "LastRebuildDurationUSec");
        auto verified = property<bool>(properties, "IndexVerified");
        auto devices = manager.ListWaitingDevices();
        // Why the records of who loaded what are not written (older kmodd: no such property).
        std::string records_problem;
        if (auto it = properties.find(dbus::PropertyName("RecordsProblem"));
            it != properties.end() && it->second.containsValueOfType<std::string>())
            records_problem = it->second.get<std::string>();
        // Kernels whose last index write failed (older kmodd: no such property).
        using KernelRow = sdbus::Struct<std::string, std::uint32_t, std::string, std::string>;
        std::vector<std::pair<std::string, std::string>> failing;
        if (auto it = properties.find(dbus::PropertyName("Kernels"));
            it != properties.end() && it->second.containsValueOfType<std::vector<KernelRow>>()) {
            for (const auto& row : it->second.get<std::vector<KernelRow>>()) {
                if (row.get<2>() == "failed")
                    failing.emplace_back(row.get<0>(), row.get<3>());
            }
        }

        if (session.json()) {
            nlohmann::json waiting = nlohmann::json::array();
            for (const auto& device : devices)
                waiting.push_back({{"syspath", device.get<0>()}, {"modalias", device.get<1>()}});
            print_json({{"kernel_release", release},
                        {"modules", modules},
                        {"generation", generation},
                        {"index_verified", verified},
                        {"index_failures", failing_json(failing)},
                        {"records_problem", records_problem},
                        {"last_rebuild_usec", rebuilt_usec},
                        {"last_rebuild_duration_usec", duration_usec},
                        {"waiting_devices", std::move(waiting)}});
            return;
        }
        print_line("Kernel release:   " + release);
        print_line("Modules:          " + std::to_string(modules));
        print_line("Index generation: " + std::to_string(generation));
        print_line(std::string("Index verified:   ") +
                   (verified ? "yes"
                             : "no, checking the module trees (answers come from the index "
                               "published before)"));
        print_line("Last rebuild:     " + (rebuilt_usec == 0
                                               ? std::string("never")
                                               : format_local_time(rebuilt_usec) + ", took " +
                                                     format_milliseconds(duration_usec)));
        for (const auto& [failed, problem] : failing)
            print_line("Index failed:     " + failed + ": " + problem +
                       " (the index files are the previous ones; the next change retries)");
        if (!records_problem.empty())
            print_line("Records failed:   " + records_problem +
                       " (kept in memory; the next load or unload writes them again)");
        print_line("Waiting devices:  " + std::to_string(devices.size()));
        for (const auto& device : devices)
            print_line("  " + device.get<0>() + " " + device.get<1>());
    });
}

} // namespace kmodd::client
