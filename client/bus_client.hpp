// SPDX-License-Identifier: LGPL-2.1-or-later
// What kmodctl's D-Bus commands share: their command line (--bus, --json), the connection to
// the bus, the generated proxy of org.kmodd1.Manager, D-Bus errors turned into one sentence,
// and JSON output.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include "bus.hpp"
#include "kmodd-proxy.h"
#include "privileged_call.hpp"
#include "sdbus_compat.hpp"

namespace kmodd::client {

/// A command line kmodctl cannot act on: reported with a usage line, exit status 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A failure already phrased for a person (one line, without the "kmodctl: " prefix): exit
/// status 1.
class CommandError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The bus kmodd is reached on: `--bus system` (the default), `--bus session`, or
/// `--bus ADDRESS` with a D-Bus address such as `unix:path=/run/x/bus`.
using dbus::BusChoice;

/// Parses the value of --bus; throws UsageError for a value that is none of the three.
[[nodiscard]] BusChoice parse_bus(std::string_view value);

/// Index in argv of the command word: the first argument after argv[0] that is neither a
/// global option (`--bus X`, `--bus=X`, `--kernel X`, `--kernel=X`, `--json`,
/// `--no-ask-password`) nor the value of one;
/// argc if there is none.
/// Sets `has_global_options` when options came before the command word.
[[nodiscard]] int find_command(int argc, char** argv, bool* has_global_options = nullptr);

/// kmodd's object as the CLI calls it: the generated org.kmodd1.Manager proxy plus
/// org.freedesktop.DBus.Properties. It only calls methods; the proxy is not registered, so no
/// signal match is added on the bus (monitor subscribes with a proxy of its own).
class ManagerCalls final : public dbus::Proxy<org::kmodd1::Manager_proxy, sdbus::Properties_proxy> {
public:
    /// The proxy refers to `connection`, which must outlive it; it starts no thread.
    explicit ManagerCalls(sdbus::IConnection& connection);
    ManagerCalls(const ManagerCalls&) = delete;
    ManagerCalls& operator=(const ManagerCalls&) = delete;
    ~ManagerCalls() = default;

private:
    void onModuleLoaded(const std::string&) override {}
    void onModuleUnloaded(const std::string&) override {}
    void onIndexRebuilt(const std::string&, const std::uint32_t&, const std::uint64_t&) override {}
    void onDeviceAutoloaded(const std::string&, const std::string&,
                            const std::vector<std::string>&) override
    {
    }
    void onPropertiesChanged(const dbus::InterfaceName&, const dbus::PropertyMap&,
                             const dbus::PropertyNames&) override
    {
    }
};

/// A D-Bus command's parsed command line and its connection to the bus.
class BusSession {
public:
    /// `ask_password`: false with --no-ask-password.
    BusSession(BusChoice bus, bool json, std::vector<std::string> operands, bool ask_password);

    [[nodiscard]] bool json() const { return json_; }
    /// --kernel VERSION: the kernel release asked about (empty: the one kmodd serves).
    [[nodiscard]] const std::string& kernel() const { return kernel_; }
    /// Whether the command's own option `flag` (one of BusCommandSpec::flags) was given.
    [[nodiscard]] bool has_flag(std::string_view flag) const
    {
        return std::find(flags_.begin(), flags_.end(), flag) != flags_.end();
    }
    void set_kernel(std::string kernel) { kernel_ = std::move(kernel); }
    void set_flags(std::vector<std::string> flags) { flags_ = std::move(flags); }
    [[nodiscard]] const BusChoice& bus() const { return bus_; }
    /// The arguments after the command word, options removed.
    [[nodiscard]] const std::vector<std::string>& operands() const { return operands_; }

    /// The connection, opened on first use. Throws CommandError when the bus cannot be
    /// reached.
    [[nodiscard]] sdbus::IConnection& connection();
    /// The proxy of kmodd's object on that connection, created on first use.
    [[nodiscard]] ManagerCalls& manager();
    /// Load, Unload or Rebuild, which polkit may let the caller make after asking for a
    /// password: through call_privileged(), interactive when stdin is a terminal and
    /// --no-ask-password was not given.
    [[nodiscard]] std::vector<std::string>
    call_privileged(const char* method, const std::vector<std::string>& args, Reply reply);

private:
    BusChoice bus_;
    bool json_;
    bool ask_password_;
    std::string kernel_;
    std::vector<std::string> flags_;
    std::vector<std::string> operands_;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<ManagerCalls> manager_;
};

/// What a D-Bus command takes, for its parsing and its usage line.
struct BusCommandSpec {
    const char* name;     ///< the command word, e.g. "load"
    const char* operands; ///< its operands in the usage line, e.g. "MODULE [PARAM=VALUE...]"
    std::size_t min_operands;
    std::size_t max_operands;
    bool privileged = false;   ///< polkit may ask for a password: --no-ask-password applies
    bool takes_kernel = false; ///< --kernel VERSION asks about another installed kernel
    /// Options of its own without value, e.g. "--dry-run" (unused slots null).
    std::array<const char*, 3> flags{};
};

/// Runs a D-Bus command: parses argv (the whole command line, argv[0] included), calls `body`
/// and turns every failure into exactly one line on stderr. Returns the exit status: 0, 1 on
/// a failure, 2 on a usage error (then a usage line follows the error), kExitNotAllowed when
/// the caller lacks the privileges.
[[nodiscard]] int run_bus_command(int argc, char** argv, const BusCommandSpec& spec,
                                  const std::function<void(BusSession&)>& body);

/// "kmodd is not reachable: cannot connect to BUS (REASON)" for errno `error`.
[[nodiscard]] CommandError bus_unreachable(const BusChoice& bus, int error);

/// A D-Bus error as one sentence for a person; `bus` names the bus in "not running" cases.
[[nodiscard]] std::string describe_error(const sdbus::Error& error, const BusChoice& bus);

/// The exit status of a call the caller was not allowed to make (as systemctl's).
inline constexpr int kExitNotAllowed = 4;

/// Whether `error` says the caller lacks the privileges (kmodd's PermissionDenied, or the
/// bus policy's AccessDenied).
[[nodiscard]] bool is_permission_error(const sdbus::Error& error);

/// Writes `text` and a newline to stdout.
void print_line(std::string_view text);
/// Writes `value` to stdout as one line of JSON.
void print_json(const nlohmann::json& value);

/// A variant's value as JSON, for the types kmodd's API uses or may add: basic types (numbers,
/// booleans, strings, object paths), arrays of them, `a(ss)` and `a(sss)` (as arrays of
/// arrays), `a(ssb)` and `a(suss)` too, and `a{ss}` / `a{sv}` (as objects). Empty for any other
/// type.
[[nodiscard]] std::optional<nlohmann::json> variant_to_json(const sdbus::Variant& value);

/// An a{sv} as a JSON object, each value as variant_to_json gives it (keys whose type it does
/// not know are left out).
[[nodiscard]] nlohmann::json dict_to_json(const std::map<std::string, sdbus::Variant>& dict);

/// A variant's value as text: strings as they are, other values as JSON, arrays of strings
/// joined with ','.
[[nodiscard]] std::string variant_to_text(const sdbus::Variant& value);

} // namespace kmodd::client
