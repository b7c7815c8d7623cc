// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl's front: the process a user (or a script) starts as `kmodctl`. It answers the one
// query scripts run in loops, `kmodctl [--bus BUS] deps MODULE`, with a single sd-bus call,
// hands `kmodctl TOOL ...` for kmod's tools (depmod, modprobe, ...) to kmodctl-local, which
// runs them without mapping any D-Bus library, and every other command line to kmodctl-tools
// (exec, unchanged, same process).
//
// Why a front at all: a process that maps libstdc++, sdbus-c++, libelf and the decompressors
// spends more time starting than kmod's `modprobe -D` spends on the whole answer. The front
// maps libc only (libstdc++ is linked statically and nothing of it is used at run time) and
// opens libsystemd for the query alone, so a query costs about what a C client costs and every
// other command line about a millisecond more than kmodctl-tools run directly.
//
// The front never phrases an error: anything it does not answer (another command, another
// option, a failed connection, an error reply) is answered by kmodctl-tools, which repeats the
// call (every command it answers here only reads) and says what went wrong as it always did.
#include <dlfcn.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string_view>
#include <type_traits>

#include "kmod_tools.hpp"
#include "kmodd_dbus_names.hpp"

#if !defined(KMODD_TOOLS_PATH) || !defined(KMODD_LOCAL_PATH)
#error "define KMODD_TOOLS_PATH and KMODD_LOCAL_PATH as the programs' installed paths"
#endif

namespace {

/// Execs the program `name` with this process's arguments: the one beside this binary when
/// there is one (a build tree), else `installed`. Returns only when neither can be run.
void exec_beside(std::string_view name, const char* installed, char** argv)
{
    char self[PATH_MAX];
    ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0) {
        self[length] = '\0';
        if (char* slash = std::strrchr(self, '/');
            slash != nullptr && static_cast<size_t>(slash - self) + 1 + name.size() < sizeof self) {
            std::memcpy(slash + 1, name.data(), name.size());
            slash[1 + name.size()] = '\0';
            ::execv(self, argv);
        }
    }
    ::execv(installed, argv);
}

/// Runs kmodctl-tools with this process's arguments.
[[noreturn]] void run_tools(char** argv)
{
    exec_beside("kmodctl-tools", KMODD_TOOLS_PATH, argv);
    std::fprintf(stderr, "kmodctl: cannot run %s: %s\n", KMODD_TOOLS_PATH, std::strerror(errno));
    std::exit(1);
}

/// kmod's tools, which kmodctl-local runs as kmodctl-tools does.
bool is_kmod_tool(std::string_view word)
{
    const auto& names = kmodd::client::kKmodToolNames;
    return std::find(std::begin(names), std::end(names), word) != std::end(names);
}

/// The sd-bus functions the query uses, from libsystemd opened at run time.
struct SdBus {
    decltype(&::sd_bus_open_system) open_system;
    decltype(&::sd_bus_open_user) open_user;
    decltype(&::sd_bus_new) create;
    decltype(&::sd_bus_set_address) set_address;
    decltype(&::sd_bus_set_bus_client) set_bus_client;
    decltype(&::sd_bus_start) start;
    decltype(&::sd_bus_unref) unref;
    decltype(&::sd_bus_flush_close_unref) flush_close_unref;
    decltype(&::sd_bus_call_method) call_method;
    decltype(&::sd_bus_error_free) error_free;
    decltype(&::sd_bus_message_read_strv) read_strv;
    decltype(&::sd_bus_message_unref) message_unref;

    /// All of them, or false when libsystemd or one of them is missing.
    bool open()
    {
        void* library = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr)
            return false;
        bool found = true;
        auto take = [&](auto& function, const char* name) {
            function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(
                ::dlsym(library, name));
            found = found && function != nullptr;
        };
        take(open_system, "sd_bus_open_system");
        take(open_user, "sd_bus_open_user");
        take(create, "sd_bus_new");
        take(set_address, "sd_bus_set_address");
        take(set_bus_client, "sd_bus_set_bus_client");
        take(start, "sd_bus_start");
        take(unref, "sd_bus_unref");
        take(flush_close_unref, "sd_bus_flush_close_unref");
        take(call_method, "sd_bus_call_method");
        take(error_free, "sd_bus_error_free");
        take(read_strv, "sd_bus_message_read_strv");
        take(message_unref, "sd_bus_message_unref");
        return found;
    }
};

/// The bus of `--bus VALUE`, connected; null when it cannot be (the tools say why).
sd_bus* connect(const SdBus& sd, const char* bus_option)
{
    sd_bus* bus = nullptr;
    const std::string_view choice = bus_option == nullptr ? "system" : bus_option;
    if (choice == "system")
        return sd.open_system(&bus) >= 0 ? bus : nullptr;
    if (choice == "session")
        return sd.open_user(&bus) >= 0 ? bus : nullptr;
    if (choice.find(':') == std::string_view::npos || choice.front() == ':')
        return nullptr; // a usage error: kmodctl-tools says so
    if (sd.create(&bus) < 0)
        return nullptr;
    if (sd.set_address(bus, bus_option) < 0 || sd.set_bus_client(bus, 1) < 0 || sd.start(bus) < 0) {
        sd.unref(bus);
        return nullptr;
    }
    return bus;
}

/// `deps MODULE` answered and printed; false when anything failed before a byte was printed.
bool answer_deps(const char* bus_option, const char* module)
{
    SdBus sd{};
    if (!sd.open())
        return false;
    sd_bus* bus = connect(sd, bus_option);
    if (bus == nullptr)
        return false;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd.call_method(bus, kmodd::dbus::kBusName, kmodd::dbus::kObjectPath,
                           kmodd::dbus::kInterfaceName, "ListDeps", &error, &reply, "s", module);
    sd.error_free(&error);
    // The whole reply is read before anything is printed: a malformed one prints nothing.
    char** modules = nullptr;
    if (r >= 0)
        r = sd.read_strv(reply, &modules);
    sd.message_unref(reply);
    sd.flush_close_unref(bus);
    if (r < 0 || modules == nullptr)
        return false;
    for (char** name = modules; *name != nullptr; ++name) {
        std::fputs(*name, stdout);
        std::fputc('\n', stdout);
        std::free(*name);
    }
    std::free(static_cast<void*>(modules));
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    // Exactly `[--bus BUS | --bus=BUS] deps MODULE`; everything else goes to the tools.
    const char* bus_option = nullptr;
    int i = 1;
    if (i < argc && std::string_view(argv[i]) == "--bus" && i + 1 < argc) {
        bus_option = argv[i + 1];
        i += 2;
    } else if (i < argc && std::string_view(argv[i]).starts_with("--bus=")) {
        bus_option = argv[i] + std::strlen("--bus=");
        ++i;
    }
    std::string_view self = argv[0];
    if (auto slash = self.rfind('/'); slash != std::string_view::npos)
        self.remove_prefix(slash + 1);
    const bool is_deps = self == "kmodctl" && argc == i + 2 &&
                         std::string_view(argv[i]) == "deps" && argv[i + 1][0] != '-' &&
                         argv[i + 1][0] != '\0';
    if (is_deps && answer_deps(bus_option, argv[i + 1]))
        return std::fflush(stdout) == 0 && std::ferror(stdout) == 0 ? 0 : 1;
    // `kmodctl TOOL ...` with no option before the tool (kmodctl-tools refuses those); when
    // kmodctl-local is missing, kmodctl-tools runs the tool all the same.
    if (self == "kmodctl" && argc >= 2 && is_kmod_tool(argv[1]))
        exec_beside("kmodctl-local", KMODD_LOCAL_PATH, argv);
    run_tools(argv);
}
