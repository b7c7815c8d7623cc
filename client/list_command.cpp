// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl list`: the loaded modules as lsmod prints them, each with who loaded it (ListLoaded).
#include <cstdio>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"
#include "kmodd_dbus_names.hpp"

namespace kmodd::client {

namespace {

/// The origin as the XML defines it; clients treat values they do not know as `external`.
std::string normalize_origin(const std::string& origin)
{
    if (origin == kmodd::dbus::kOriginExplicit || origin == kmodd::dbus::kOriginDependency ||
        origin == kmodd::dbus::kOriginAutoload)
        return origin;
    return kmodd::dbus::kOriginExternal;
}

} // namespace

int run_list(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"list", "", 0, 0};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        auto modules = session.manager().ListLoaded();
        if (session.json()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& module : modules)
                out.push_back({{"name", module.get<0>()},
                               {"size", module.get<1>()},
                               {"refcount", module.get<2>()},
                               {"holders", module.get<3>()},
                               {"origin", normalize_origin(module.get<4>())}});
            print_json(out);
            return;
        }
        // kmod's lsmod byte for byte up to the holders; then two spaces and the origin in
        // brackets, which no module name contains.
        std::fputs("Module                  Size  Used by\n", stdout);
        for (const auto& module : modules) {
            std::printf("%-19s %8llu  %u", module.get<0>().c_str(),
                        static_cast<unsigned long long>(module.get<1>()),
                        static_cast<unsigned>(module.get<2>()));
            char separator = ' ';
            for (const auto& holder : module.get<3>()) {
                std::fputc(separator, stdout);
                std::fputs(holder.c_str(), stdout);
                separator = ',';
            }
            std::printf("  [%s]\n", normalize_origin(module.get<4>()).c_str());
        }
    });
}

} // namespace kmodd::client
