// SPDX-License-Identifier: LGPL-2.1-or-later
// What kmodctl's D-Bus commands share: the command line, the connection, errors as sentences.
#include "bus_client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <tuple>
#include <utility>

#include "kmodd_dbus_names.hpp"

namespace kmodd::client {

namespace {

using nlohmann::json;

constexpr std::string_view kBusOption = "--bus";
constexpr std::string_view kBusOptionEq = "--bus=";
constexpr std::string_view kKernelOption = "--kernel";
constexpr std::string_view kKernelOptionEq = "--kernel=";
constexpr std::string_view kJsonOption = "--json";
constexpr std::string_view kNoAskPasswordOption = "--no-ask-password";

struct CommandLine {
    BusChoice bus;
    std::string kernel;
    std::vector<std::string> flags;
    bool json = false;
    bool ask_password = true;
    bool help = false;
    std::vector<std::string> operands;
};

CommandLine parse_command_line(int argc, char** argv, const BusCommandSpec& spec)
{
    int command = find_command(argc, argv);
    CommandLine line;
    bool options_ended = false;
    for (int i = 1; i < argc; ++i) {
        if (i == command)
            continue;
        std::string arg = argv[i];
        if (!options_ended) {
            if (arg == "--") {
                options_ended = true;
                continue;
            }
            if (arg == kBusOption) {
                if (i + 1 >= argc)
                    throw UsageError("option '--bus' needs a value");
                line.bus = parse_bus(argv[++i]);
                continue;
            }
            if (arg.starts_with(kBusOptionEq)) {
                line.bus = parse_bus(arg.substr(kBusOptionEq.size()));
                continue;
            }
            if (arg == kKernelOption || arg.starts_with(kKernelOptionEq)) {
                if (!spec.takes_kernel)
                    throw UsageError(std::string("'") + spec.name +
                                     "' does not take --kernel: it is about the running kernel");
                if (arg == kKernelOption && i + 1 >= argc)
                    throw UsageError("option '--kernel' needs a value");
                line.kernel = arg == kKernelOption ? std::string(argv[++i])
                                                   : arg.substr(kKernelOptionEq.size());
                if (line.kernel.empty())
                    throw UsageError("option '--kernel' needs a kernel release");
                continue;
            }
            if (std::find_if(spec.flags.begin(), spec.flags.end(), [&](const char* flag) {
                    return flag != nullptr && arg == flag;
                }) != spec.flags.end()) {
                line.flags.push_back(arg);
                continue;
            }
            if (arg == kJsonOption) {
                line.json = true;
                continue;
            }
            if (arg == kNoAskPasswordOption) {
                line.ask_password = false;
                continue;
            }
            if (arg == "-h" || arg == "--help") {
                line.help = true;
                continue;
            }
            if (arg.size() > 1 && arg[0] == '-')
                throw UsageError("unknown option '" + arg + "'");
        }
        line.operands.push_back(std::move(arg));
    }
    if (line.help)
        return line;
    if (line.operands.size() < spec.min_operands)
        throw UsageError(std::string("missing arguments for '") + spec.name + "'");
    if (line.operands.size() > spec.max_operands)
        throw UsageError("unexpected argument '" + line.operands[spec.max_operands] + "' for '" +
                         spec.name + "'");
    return line;
}

void print_usage(std::FILE* out, const BusCommandSpec& spec)
{
    std::string flags;
    for (const char* flag : spec.flags) {
        if (flag != nullptr)
            flags += std::string(" [") + flag + "]";
    }
    std::fprintf(out, "Usage: kmodctl [--bus system|session|ADDRESS]%s %s%s%s%s [--json]%s\n",
                 spec.takes_kernel ? " [--kernel VERSION]" : "", spec.name, flags.c_str(),
                 *spec.operands != '\0' ? " " : "", spec.operands,
                 spec.privileged ? " [--no-ask-password]" : "");
}

/// The errno text sdbus-c++ puts in parentheses at the end of its own messages
/// ("Failed to open bus (No such file or directory)"), or the whole message.
std::string reason_of(const sdbus::Error& error)
{
    const std::string& message = error.getMessage();
    auto open = message.rfind(" (");
    if (!message.empty() && message.back() == ')' && open != std::string::npos)
        return message.substr(open + 2, message.size() - open - 3);
    return message.empty() ? error.getName() : message;
}

std::unique_ptr<sdbus::IConnection> open_connection(const BusChoice& bus)
{
    try {
        return dbus::open_bus(bus);
    } catch (const sdbus::Error& error) {
        if (error.getName() == "System.Error.ENOMEDIUM")
            throw bus_unreachable(bus, ENOMEDIUM);
        throw CommandError("kmodd is not reachable: cannot connect to " + bus.describe() + " (" +
                           reason_of(error) + ")");
    }
}

template <typename T> json array_to_json(const sdbus::Variant& value)
{
    json out = json::array();
    for (const auto& element : value.get<std::vector<T>>())
        out.push_back(element);
    return out;
}

template <typename... T> json struct_array_to_json(const sdbus::Variant& value)
{
    json out = json::array();
    for (const auto& element : value.get<std::vector<sdbus::Struct<T...>>>()) {
        json fields = json::array();
        std::apply([&](const auto&... field) { (fields.push_back(field), ...); },
                   static_cast<const std::tuple<T...>&>(element));
        out.push_back(std::move(fields));
    }
    return out;
}

} // namespace

#if defined(__SANITIZE_ADDRESS__)
// Sanitizer builds only: sdbus-c++ 1.2 does not unref the sd_bus it made when
// createSessionBusConnectionWithAddress() fails to connect. kmodctl exits right after with
// "not reachable", and that known leak of the library must not bury the message (nor its
// suppression report). LSAN_OPTIONS still overrides these defaults.
extern "C" const char* __lsan_default_suppressions()
{
    return "leak:sd_bus_new\n";
}
extern "C" const char* __lsan_default_options()
{
    return "print_suppressions=0";
}
#endif

BusChoice parse_bus(std::string_view value)
{
    auto bus = BusChoice::parse(value);
    if (!bus)
        throw UsageError(bus.error().message);
    return std::move(*bus);
}

int find_command(int argc, char** argv, bool* has_global_options)
{
    bool seen = false;
    int i = 1;
    while (i < argc) {
        std::string_view arg = argv[i];
        if (arg == kBusOption || arg == kKernelOption) {
            seen = true;
            i += 2;
        } else if (arg.starts_with(kBusOptionEq) || arg.starts_with(kKernelOptionEq) ||
                   arg == kJsonOption || arg == kNoAskPasswordOption) {
            seen = true;
            ++i;
        } else {
            break;
        }
    }
    if (has_global_options != nullptr)
        *has_global_options = seen;
    return std::min(i, argc);
}

ManagerCalls::ManagerCalls(sdbus::IConnection& connection)
    : Proxy(connection, kmodd::dbus::kBusName, kmodd::dbus::kObjectPath)
{
    // No registerProxy(): it would add a match rule per signal for a client that only calls.
}

BusSession::BusSession(BusChoice bus, bool json, std::vector<std::string> operands,
                       bool ask_password)
    : bus_(std::move(bus)), json_(json), ask_password_(ask_password), operands_(std::move(operands))
{
}

std::vector<std::string>
BusSession::call_privileged(const char* method, const std::vector<std::string>& args, Reply reply)
{
    return client::call_privileged(bus_, method, args, reply, may_ask_password(ask_password_));
}

CommandError bus_unreachable(const BusChoice& bus, int error)
{
    // sd-bus says ENOMEDIUM when the environment names no session bus at all.
    std::string reason = error == ENOMEDIUM
                             ? "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set"
                             : std::strerror(error);
    return CommandError("kmodd is not reachable: cannot connect to " + bus.describe() + " (" +
                        reason + ")");
}

sdbus::IConnection& BusSession::connection()
{
    if (!connection_)
        connection_ = open_connection(bus_);
    return *connection_;
}

ManagerCalls& BusSession::manager()
{
    if (!manager_)
        manager_ = std::make_unique<ManagerCalls>(connection());
    return *manager_;
}

int run_bus_command(int argc, char** argv, const BusCommandSpec& spec,
                    const std::function<void(BusSession&)>& body)
{
    BusChoice bus;
    try {
        CommandLine line = parse_command_line(argc, argv, spec);
        if (line.help) {
            print_usage(stdout, spec);
            return 0;
        }
        bus = line.bus;
        BusSession session(line.bus, line.json, std::move(line.operands), line.ask_password);
        session.set_kernel(std::move(line.kernel));
        session.set_flags(std::move(line.flags));
        body(session);
        errno = 0;
        if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0)
            throw CommandError(std::string("cannot write to standard output") +
                               (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
        return 0;
    } catch (const UsageError& error) {
        std::fprintf(stderr, "kmodctl: %s\n", error.what());
        print_usage(stderr, spec);
        return 2;
    } catch (const CommandError& error) {
        std::fprintf(stderr, "kmodctl: %s\n", error.what());
    } catch (const sdbus::Error& error) {
        std::fprintf(stderr, "kmodctl: %s\n", describe_error(error, bus).c_str());
        // As systemctl: 4 when the caller lacks the privileges.
        if (is_permission_error(error))
            return kExitNotAllowed;
    } catch (const std::exception& error) {
        std::fprintf(stderr, "kmodctl: %s\n", error.what());
    }
    return 1;
}

bool is_permission_error(const sdbus::Error& error)
{
    return error.getName() == kmodd::dbus::kErrorPermissionDenied ||
           error.getName() == "org.freedesktop.DBus.Error.AccessDenied";
}

std::string describe_error(const sdbus::Error& error, const BusChoice& bus)
{
    const std::string& name = error.getName();
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
        name == "org.freedesktop.DBus.Error.NameHasNoOwner")
        return "kmodd is not running on " + bus.describe() + " (nothing owns the name " +
               kmodd::dbus::kBusName + ")";
    if (name == "org.freedesktop.DBus.Error.Timeout" ||
        name == "org.freedesktop.DBus.Error.TimedOut")
        return "kmodd did not reply in time (" + reason_of(error) + ")";
    if (name == "org.freedesktop.DBus.Error.NoReply")
        return "kmodd did not reply: " + reason_of(error);
    if (name == kmodd::dbus::kErrorPermissionDenied) {
        // kmodd's sentence names the polkit action when polkit refused; say how to get it.
        const std::string& message = error.getMessage();
        const size_t at = message.find("org.kmodd1.");
        if (at == std::string::npos)
            return message + " Run it as root.";
        const std::string action = message.substr(at, message.find_first_of(" .", at + 11) - at);
        return message + " Run it as root, or have an administrator grant " + action +
               " with a polkit rule (see kmodctl(8)).";
    }
    if (name == "org.freedesktop.DBus.Error.AccessDenied")
        return "the system bus refused the call (" + reason_of(error) +
               "); is kmodd's bus policy org.kmodd1.conf installed?";
    if (name == "org.freedesktop.DBus.Error.Disconnected" ||
        name == "org.freedesktop.DBus.Error.NoServer")
        return "lost the connection to " + bus.describe() + " (" + reason_of(error) + ")";
    // org.kmodd1.Error.* and the rest carry a sentence for a person.
    return error.getMessage().empty() ? name : error.getMessage();
}

void print_line(std::string_view text)
{
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
}

void print_json(const nlohmann::json& value)
{
    // D-Bus strings are UTF-8 already; replace rather than throw should one not be.
    print_line(value.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::optional<nlohmann::json> variant_to_json(const sdbus::Variant& value)
{
    const std::string type = value.peekValueType();
    if (type.size() == 1) {
        switch (type[0]) {
        case 'y':
            return json(value.get<std::uint8_t>());
        case 'b':
            return json(value.get<bool>());
        case 'n':
            return json(value.get<std::int16_t>());
        case 'q':
            return json(value.get<std::uint16_t>());
        case 'i':
            return json(value.get<std::int32_t>());
        case 'u':
            return json(value.get<std::uint32_t>());
        case 'x':
            return json(value.get<std::int64_t>());
        case 't':
            return json(value.get<std::uint64_t>());
        case 'd':
            return json(value.get<double>());
        case 's':
            return json(value.get<std::string>());
        case 'o':
            return json(std::string(value.get<sdbus::ObjectPath>()));
        case 'g':
            return json(std::string(value.get<sdbus::Signature>()));
        default:
            return std::nullopt;
        }
    }
    if (type == "as")
        return array_to_json<std::string>(value);
    if (type == "ao") {
        json out = json::array();
        for (const auto& path : value.get<std::vector<sdbus::ObjectPath>>())
            out.push_back(std::string(path));
        return out;
    }
    if (type == "ay")
        return array_to_json<std::uint8_t>(value);
    if (type == "ai")
        return array_to_json<std::int32_t>(value);
    if (type == "au")
        return array_to_json<std::uint32_t>(value);
    if (type == "ax")
        return array_to_json<std::int64_t>(value);
    if (type == "at")
        return array_to_json<std::uint64_t>(value);
    if (type == "ad")
        return array_to_json<double>(value);
    if (type == "a(ss)")
        return struct_array_to_json<std::string, std::string>(value);
    if (type == "a(sss)")
        return struct_array_to_json<std::string, std::string, std::string>(value);
    if (type == "a(ssb)")
        return struct_array_to_json<std::string, std::string, bool>(value);
    if (type == "a(suss)")
        return struct_array_to_json<std::string, std::uint32_t, std::string, std::string>(value);
    if (type == "a{ss}")
        return json(value.get<std::map<std::string, std::string>>());
    if (type == "a{sv}")
        return dict_to_json(value.get<std::map<std::string, sdbus::Variant>>());
    return std::nullopt;
}

json dict_to_json(const std::map<std::string, sdbus::Variant>& dict)
{
    json out = json::object();
    for (const auto& [key, element] : dict) {
        if (auto converted = variant_to_json(element))
            out[key] = std::move(*converted);
    }
    return out;
}

std::string variant_to_text(const sdbus::Variant& value)
{
    const std::string type = value.peekValueType();
    if (type == "s")
        return value.get<std::string>();
    if (type == "as") {
        std::string out;
        for (const auto& element : value.get<std::vector<std::string>>())
            out += (out.empty() ? "" : ",") + element;
        return out;
    }
    auto converted = variant_to_json(value);
    if (!converted)
        return "(" + type + ")";
    return converted->dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace kmodd::client
