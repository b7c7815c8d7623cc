// SPDX-License-Identifier: LGPL-2.1-or-later
// Parsing kmodd's command line and its JSON configuration file.
#include "options.hpp"

#include <cerrno>
#include <charconv>
#include <functional>
#include <map>
#include <string_view>

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "base/file.hpp"
#include "service/index_service.hpp"

namespace kmodd::daemon {

namespace {

using Setter = std::function<base::Result<void>(DaemonOptions&, const std::string&)>;

struct OptionSpec {
    Setter set;
    bool is_list = false; ///< repeatable on the command line, an array in the file
    bool is_flag = false; ///< boolean: no value on the command line
};

base::Result<std::chrono::milliseconds> parse_milliseconds(const std::string& text)
{
    long long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 0 || value > 600000)
        return base::make_error(EINVAL,
                                "'" + text + "' is not a number of milliseconds (0 to 600000)");
    return std::chrono::milliseconds(value);
}

base::Result<bool> parse_bool(const std::string& text)
{
    if (text == "yes" || text == "true" || text == "1" || text == "on")
        return true;
    if (text == "no" || text == "false" || text == "0" || text == "off")
        return false;
    return base::make_error(EINVAL, "'" + text + "' is not yes or no");
}

const std::map<std::string, OptionSpec, std::less<>>& option_table()
{
    static const std::map<std::string, OptionSpec, std::less<>> table = {
        {"bus", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             auto bus = dbus::BusChoice::parse(v);
             if (!bus)
                 return base::Unexpected(bus.error());
             o.bus = std::move(*bus);
             return {};
         }}},
        {"modules-dir", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             std::string dir = v;
             while (dir.size() > 1 && dir.back() == '/')
                 dir.pop_back();
             if (dir != "/lib/modules" && !dir.ends_with("/lib/modules"))
                 return base::make_error(EINVAL, "'" + v +
                                                     "' does not end in /lib/modules (the "
                                                     "layout kmod's tools expect under a root)");
             o.modules_dir = dir;
             return {};
         }}},
        {"kernel-release", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (!service::is_kernel_release_name(v))
                 return base::make_error(EINVAL, "'" + v + "' is not a kernel release");
             o.kernel_release = v;
             return {};
         }}},
        {"sandbox-kernel", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (v.empty())
                 return base::make_error(EINVAL, "the sandbox kernel needs a state directory");
             o.sandbox_dir = v;
             return {};
         }}},
        {"state-dir", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             o.state_dir = v;
             return {};
         }}},
        {"debounce-ms", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             auto ms = parse_milliseconds(v);
             if (!ms)
                 return base::Unexpected(ms.error());
             o.debounce = *ms;
             return {};
         }}},
        {"max-delay-ms", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             auto ms = parse_milliseconds(v);
             if (!ms)
                 return base::Unexpected(ms.error());
             o.max_delay = *ms;
             return {};
         }}},
        {"autoload", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (v == "off")
                 o.autoload = AutoloadMode::Off;
             else if (v == "on")
                 o.autoload = AutoloadMode::On;
             else if (v == "unbound-only")
                 o.autoload = AutoloadMode::UnboundOnly;
             else
                 return base::make_error(EINVAL, "'" + v + "' is not off, on or unbound-only");
             return {};
         }}},
        {"sysfs", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (v.empty() || v.front() != '/')
                 return base::make_error(EINVAL, "'" + v + "' is not an absolute path");
             o.sysfs = v;
             return {};
         }}},
        {"uevent-source", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (v == "udev")
                 o.uevent_source = UeventSource::Udev;
             else if (v == "kernel")
                 o.uevent_source = UeventSource::Kernel;
             else if (v == "none")
                 o.uevent_source = UeventSource::None;
             else
                 return base::make_error(EINVAL, "'" + v + "' is not udev, kernel or none");
             return {};
         }}},
        {"log-level", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             static const char* const kLevels[] = {"trace", "debug", "info",     "warning",
                                                   "warn",  "error", "critical", "off"};
             for (const char* level : kLevels) {
                 if (v == level) {
                     o.log_level = v == "warning" ? "warn" : v;
                     return {};
                 }
             }
             return base::make_error(EINVAL, "'" + v +
                                                 "' is not a log level (trace, debug, info, "
                                                 "warning, error, critical, off)");
         }}},
        {"modprobe-config",
         {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
              o.modprobe_config.push_back(v);
              return {};
          },
          true}},
        {"depmod-config",
         {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
              o.depmod_config.push_back(v);
              return {};
          },
          true}},
        {"cmdline", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             o.cmdline_path = v;
             return {};
         }}},
        {"cache-dir", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             if (!v.empty() && v.front() != '/')
                 return base::make_error(EINVAL, "'" + v + "' is not an absolute path");
             o.cache_dir = v;
             return {};
         }}},
        {"kmod-format", {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
             auto format = depmod::parse_kmod_format(v);
             if (!format)
                 return base::Unexpected(format.error());
             o.kmod_format = *format;
             return {};
         }}},
        {"durable",
         {[](DaemonOptions& o, const std::string& v) -> base::Result<void> {
              auto value = parse_bool(v);
              if (!value)
                  return base::Unexpected(value.error());
              o.durable = *value;
              return {};
          },
          false, false}},
    };
    return table;
}

base::Result<void> apply(DaemonOptions& options, const std::string& name, const std::string& value,
                         const std::string& origin)
{
    const auto& table = option_table();
    auto it = table.find(name);
    if (it == table.end())
        return base::make_error(EINVAL, origin + ": unknown option '" + name + "'");
    if (auto done = it->second.set(options, value); !done)
        return base::Unexpected(done.error().with_context(origin + ": " + name));
    return {};
}

std::string json_scalar_text(const nlohmann::json& value)
{
    if (value.is_string())
        return value.get<std::string>();
    if (value.is_boolean())
        return value.get<bool>() ? "yes" : "no";
    if (value.is_number_integer())
        return std::to_string(value.get<long long>());
    return {};
}

} // namespace

std::string DaemonOptions::base_dir() const
{
    return modules_dir.substr(0, modules_dir.size() - std::string_view("/lib/modules").size());
}

std::string DaemonOptions::state_path() const
{
    if (!state_dir.empty())
        return state_dir;
    if (!sandbox_dir.empty())
        return sandbox_dir;
    return "/run/kmodd";
}

base::Result<void> apply_config_json(const std::string& text, const std::string& origin,
                                     DaemonOptions& options)
{
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
        return {}; // an empty file sets nothing
    nlohmann::json document = nlohmann::json::parse(text, nullptr, false, true);
    if (document.is_discarded() || !document.is_object())
        return base::make_error(EINVAL, origin + ": not a JSON object");
    for (const auto& [key, value] : document.items()) {
        const auto& table = option_table();
        auto it = table.find(key);
        if (it == table.end())
            return base::make_error(EINVAL, origin + ": unknown key '" + key + "'");
        if (it->second.is_list) {
            if (!value.is_array())
                return base::make_error(EINVAL,
                                        origin + ": '" + key + "' must be an array of strings");
            for (const auto& item : value) {
                if (!item.is_string())
                    return base::make_error(EINVAL,
                                            origin + ": '" + key + "' must be an array of strings");
                if (auto done = apply(options, key, item.get<std::string>(), origin); !done)
                    return done;
            }
            continue;
        }
        std::string scalar = json_scalar_text(value);
        if (scalar.empty() && !value.is_string())
            return base::make_error(EINVAL,
                                    origin + ": '" + key + "' must be a string or a number");
        if (auto done = apply(options, key, scalar, origin); !done)
            return done;
    }
    return {};
}

base::Result<CommandLine> parse_command_line(int argc, char** argv)
{
    // Pass 1: find --config and the flags that end parsing; pass 2 applies the file, then
    // the command line over it.
    std::string config_path = kDefaultConfigPath;
    bool is_config_explicit = false;
    CommandLine result;
    std::vector<std::pair<std::string, std::string>> given;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            result.show_help = true;
            return result;
        }
        if (arg == "--version") {
            result.show_version = true;
            return result;
        }
        if (!arg.starts_with("--"))
            return base::make_error(EINVAL, "unexpected argument '" + arg + "'");
        std::string name = arg.substr(2);
        std::string value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
            has_value = true;
        }
        if (name == "no-durable") {
            given.emplace_back("durable", "no");
            continue;
        }
        bool is_known = name == "config" || option_table().contains(name);
        if (!is_known)
            return base::make_error(EINVAL, "unknown option '--" + name + "'");
        if (!has_value) {
            if (i + 1 >= argc)
                return base::make_error(EINVAL, "option '--" + name + "' needs a value");
            value = argv[++i];
        }
        if (name == "config") {
            config_path = value;
            is_config_explicit = true;
            continue;
        }
        given.emplace_back(name, value);
    }

    auto text = base::read_file(AT_FDCWD, config_path);
    if (text) {
        if (auto done = apply_config_json(*text, config_path, result.options); !done)
            return base::Unexpected(done.error());
    } else if (is_config_explicit || text.error().code != ENOENT) {
        return base::Unexpected(
            text.error().with_context("configuration file '" + config_path + "'"));
    }

    // A list on the command line replaces the file's list.
    bool has_cli_modprobe = false;
    bool has_cli_depmod = false;
    for (const auto& [name, value] : given) {
        if (name == "modprobe-config" && !has_cli_modprobe) {
            result.options.modprobe_config.clear();
            has_cli_modprobe = true;
        }
        if (name == "depmod-config" && !has_cli_depmod) {
            result.options.depmod_config.clear();
            has_cli_depmod = true;
        }
        if (auto done = apply(result.options, name, value, "command line"); !done)
            return base::Unexpected(done.error());
    }
    return result;
}

std::string usage_text(const char* self)
{
    return std::string("Usage: ") + self +
           " [OPTIONS]\n"
           "\n"
           "Keeps the module index (modules.dep and friends) of every kernel under the modules\n"
           "directory current as module files and links change, and loads and unloads modules\n"
           "on request over D-Bus (org.kmodd1).\n"
           "\n"
           "Options (the configuration file may set the same, as JSON keys without '--'):\n"
           "  --bus system|session|ADDRESS  the bus to serve on (default: system)\n"
           "  --modules-dir DIR         the module trees, ending in /lib/modules (default\n"
           "                            /lib/modules)\n"
           "  --kernel-release VER      the release whose modules are served (default: uname -r)\n"
           "  --sandbox-kernel DIR      load into a simulated kernel whose state is kept in DIR\n"
           "  --state-dir DIR           where who-loaded-what is kept (default: the sandbox\n"
           "                            dir, else /run/kmodd)\n"
           "  --debounce-ms N           quiet time that ends a burst of changes (default 50)\n"
           "  --max-delay-ms N          longest wait after a burst's first change (default 1000)\n"
           "  --autoload=off|on|unbound-only  load drivers for devices' MODALIAS (default: on\n"
           "                            without systemd-udevd, unbound-only with it, off in\n"
           "                            sandbox mode)\n"
           "  --uevent-source udev|kernel|none  where device events come from (default: udev\n"
           "                            when systemd-udevd runs, else kernel)\n"
           "  --sysfs DIR               sysfs to scan for devices (default /sys)\n"
           "  --log-level LEVEL         trace, debug, info, warning, error, critical, off\n"
           "  --modprobe-config PATH    a modprobe.d file or dir, repeatable (default: kmod's)\n"
           "  --depmod-config PATH      a depmod.d file or dir, repeatable (default: kmod's)\n"
           "  --cmdline FILE            kernel command line to read (default /proc/cmdline)\n"
           "  --kmod-format N           write the index files as kmod N does (30: ten files,\n"
           "                            34: eleven; default: as the installed kmod does)\n"
           "  --cache-dir DIR           keep parse caches in DIR, so that a restart parses only\n"
           "                            the module files that changed (default: none; the\n"
           "                            unit gives /var/cache/kmodd)\n"
           "  --no-durable              do not fsync the index files (tests)\n"
           "  --config FILE             configuration file (default " +
           kDefaultConfigPath +
           ")\n"
           "  -h, --help                this text\n"
           "      --version             the version\n";
}

} // namespace kmodd::daemon
