// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl monitor`: prints kmodd's signals as they arrive, one line each, until SIGINT or
// SIGTERM.
#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "bus_client.hpp"
#include "commands.hpp"
#include "kmodd_dbus_names.hpp"

namespace kmodd::client {

namespace {

/// Subscribes to every signal of kmodd's object and prints each as it is dispatched.
class Monitor final : public dbus::Proxy<org::kmodd1::Manager_proxy, sdbus::Properties_proxy> {
public:
    Monitor(sdbus::IConnection& connection, bool json)
        : Proxy(connection, kmodd::dbus::kBusName, kmodd::dbus::kObjectPath), json_(json)
    {
        registerProxy();
    }
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;
    ~Monitor() { unregisterProxy(); }

private:
    void onModuleLoaded(const std::string& module) override
    {
        emit("ModuleLoaded " + module, {{"signal", "ModuleLoaded"}, {"module", module}});
    }

    void onModuleUnloaded(const std::string& module) override
    {
        emit("ModuleUnloaded " + module, {{"signal", "ModuleUnloaded"}, {"module", module}});
    }

    void onIndexRebuilt(const std::string& version, const std::uint32_t& modules,
                        const std::uint64_t& duration_usec) override
    {
        emit("IndexRebuilt " + version + " modules=" + std::to_string(modules) +
                 " duration_usec=" + std::to_string(duration_usec),
             {{"signal", "IndexRebuilt"},
              {"version", version},
              {"modules", modules},
              {"duration_usec", duration_usec}});
    }

    void onDeviceAutoloaded(const std::string& syspath, const std::string& modalias,
                            const std::vector<std::string>& modules) override
    {
        emit("DeviceAutoloaded " + syspath + " modalias=" + modalias +
                 " modules=" + base::join(modules, ","),
             {{"signal", "DeviceAutoloaded"},
              {"syspath", syspath},
              {"modalias", modalias},
              {"modules", modules}});
    }

    void onPropertiesChanged(const dbus::InterfaceName& interface_name,
                             const dbus::PropertyMap& changed,
                             const dbus::PropertyNames& invalidated) override
    {
        if (interface_name != kmodd::dbus::kInterfaceName)
            return;
        std::string text = "PropertiesChanged";
        nlohmann::json values = nlohmann::json::object();
        for (const auto& [name, value] : changed) {
            text += ' ' + name + '=' + variant_to_text(value);
            if (auto converted = variant_to_json(value))
                values[name] = std::move(*converted);
        }
        for (const auto& name : invalidated)
            text += ' ' + name + "=?";
        emit(text, {{"signal", "PropertiesChanged"},
                    {"changed", std::move(values)},
                    {"invalidated", invalidated}});
    }

    // Flushed line by line: whoever reads a pipe from us sees each signal when it happens.
    void emit(const std::string& text, const nlohmann::json& object) const
    {
        if (json_)
            print_json(object);
        else
            print_line(text);
        std::fflush(stdout);
    }

    bool json_;
};

bool is_kmodd_running(sdbus::IConnection& connection)
{
    auto bus = dbus::create_proxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bool has_owner = false;
    bus->callMethod("NameHasOwner")
        .onInterface("org.freedesktop.DBus")
        .withArguments(std::string(kmodd::dbus::kBusName))
        .storeResultsTo(has_owner);
    return has_owner;
}

} // namespace

int run_monitor(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"monitor", "", 0, 0};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        // Blocked first, so that a SIGTERM during setup waits in the signalfd instead of
        // killing us; the loop below is the only thread, so no thread sees it otherwise.
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        if (int error = ::pthread_sigmask(SIG_BLOCK, &stop, nullptr); error != 0)
            throw CommandError(std::string("cannot block SIGINT and SIGTERM: ") +
                               std::strerror(error));
        base::UniqueFd stop_fd(::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!stop_fd.is_valid())
            throw CommandError(std::string("signalfd: ") + std::strerror(errno));

        sdbus::IConnection& connection = session.connection();
        Monitor monitor(connection, session.json());
        // Signals are subscribed by name, so a kmodd that starts later is heard too.
        if (!is_kmodd_running(connection))
            std::fprintf(stderr, "kmodctl: kmodd is not running on %s yet; waiting for it\n",
                         session.bus().describe().c_str());

        // One thread serves the bus and the signals: no wake-up across threads is needed,
        // which sdbus-c++ 1.2's poll data could not provide anyway.
        for (;;) {
            while (dbus::process_pending(connection)) {
            }
            auto data = connection.getEventLoopPollData();
            pollfd fds[2] = {{data.fd, data.events, 0}, {stop_fd.get(), POLLIN, 0}};
            if (::poll(fds, 2, data.getPollTimeout()) < 0 && errno != EINTR)
                throw CommandError(std::string("poll: ") + std::strerror(errno));
            if ((fds[1].revents & POLLIN) != 0)
                return;
        }
    });
}

} // namespace kmodd::client
