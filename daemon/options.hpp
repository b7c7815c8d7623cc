// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's options: the command line over /etc/kmodd/kmodd.conf.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "bus.hpp"
#include "depmod/kmod_format.hpp"
#include "service/autoloader.hpp"

namespace kmodd::daemon {

using service::AutoloadMode;

/// Where kmodd hears of new devices.
enum class UeventSource {
    Udev,   ///< udevd's events, after its rules ran
    Kernel, ///< the kernel's own uevents
    None,   ///< none: only the sysfs scans at start and after index changes
};

/// Everything kmodd's command line and /etc/kmodd/kmodd.conf can set.
struct DaemonOptions {
    dbus::BusChoice bus;                           ///< --bus: system (default), session, ADDRESS
    std::string modules_dir = "/lib/modules";      ///< must end in /lib/modules
    std::string kernel_release;                    ///< empty: uname -r
    std::string sandbox_dir;                       ///< non-empty: the sandbox kernel's state dir
    std::string state_dir;                         ///< who-loaded-what; empty: see state_path()
    std::chrono::milliseconds debounce{50};        ///< quiet period that ends a burst
    std::chrono::milliseconds max_delay{1000};     ///< longest wait after a burst's first event
    std::optional<AutoloadMode> autoload;          ///< nullopt: decided at start (udevd or not;
                                                   ///< off in sandbox mode)
    std::string sysfs = "/sys";                    ///< devices for coldplug and driver checks
    std::optional<UeventSource> uevent_source;     ///< nullopt: udev when udevd runs, else kernel
    std::string log_level = "info";                ///< spdlog level name
    std::vector<std::string> modprobe_config;      ///< modprobe.d paths; empty: kmod's defaults
    std::vector<std::string> depmod_config;        ///< depmod.d paths; empty: kmod's defaults
    std::string cmdline_path = "/proc/cmdline";    ///< kernel command line for modprobe.blacklist=
    std::optional<depmod::KmodFormat> kmod_format; ///< nullopt: as the installed kmod writes
    bool durable = true;                           ///< fsync the index files
    std::string cache_dir; ///< the parse caches (the unit: /var/cache/kmodd); empty: none

    /// The root that modules_dir lives under ("" for /lib/modules).
    [[nodiscard]] std::string base_dir() const;
    /// Where StateStore keeps its file: state_dir, else the sandbox dir, else /run/kmodd.
    [[nodiscard]] std::string state_path() const;
};

/// What parse_command_line() decided.
struct CommandLine {
    DaemonOptions options;
    bool show_help = false;
    bool show_version = false;
};

/// The default configuration file; a missing default file is not an error.
inline constexpr const char* kDefaultConfigPath = "/etc/kmodd/kmodd.conf";

/// Parses kmodd's arguments over the configuration file (the one named by --config, else
/// kDefaultConfigPath): values from the file first, then the command line wins. Errors
/// (EINVAL; the message names the option or the file and key): unknown options, missing or
/// malformed values, a config file that is not a JSON object of known keys, a --config file
/// that does not exist, a modules dir that does not end in /lib/modules.
[[nodiscard]] base::Result<CommandLine> parse_command_line(int argc, char** argv);

/// Applies the JSON text of a configuration file (keys as the long options without "--":
/// "bus", "modules-dir", "kernel-release", "sandbox-kernel", "state-dir", "debounce-ms",
/// "max-delay-ms", "autoload", "sysfs", "uevent-source", "log-level", "modprobe-config",
/// "depmod-config" (strings or arrays of strings), "cmdline", "kmod-format", "durable") to
/// `options`. `origin` names the file in errors.
[[nodiscard]] base::Result<void>
apply_config_json(const std::string& text, const std::string& origin, DaemonOptions& options);

/// The --help text.
[[nodiscard]] std::string usage_text(const char* self);

} // namespace kmodd::daemon
