// SPDX-License-Identifier: LGPL-2.1-or-later
// Authorization of Load, Unload and Rebuild callers: uid 0, polkit, or the bus owner.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace sdbus {
class IConnection;
class IProxy;
} // namespace sdbus

namespace kmodd::daemon {

/// Who sent a method call, read while its handler runs.
struct Caller {
    std::string sender; ///< unique bus name, e.g. ":1.42"
    uid_t uid = static_cast<uid_t>(-1);
    std::string command; ///< the sender's process name (/proc/PID/comm), empty if unknown
};

/// Decides whether a caller may do a privileged action (load, unload, rebuild). Root always
/// may. On the system bus everyone else is asked about through polkit's CheckAuthorization
/// with the caller's system-bus-name subject, asynchronously (an authentication dialog can
/// take minutes, and the loop keeps serving meanwhile); no polkit means no. On a session or
/// private bus polkit is not involved: callers with kmodd's own uid (the bus owner) may,
/// others may not.
///
/// Loop thread only: verdicts arrive through the bus connection's processing.
class Authorizer {
public:
    enum class Policy { Polkit, SameUser };

    /// `bus` must outlive the authorizer.
    Authorizer(sdbus::IConnection& bus, Policy policy);
    ~Authorizer();
    Authorizer(const Authorizer&) = delete;
    Authorizer& operator=(const Authorizer&) = delete;

    /// Called once with nullopt when allowed, else with a sentence saying why not.
    using Verdict = std::function<void(std::optional<std::string> denial)>;

    /// Checks `caller` for the polkit action `action` (e.g. "org.kmodd1.load"); `what`
    /// describes the request for the denial message ("load 'mod2'"). `done` may be called
    /// before check() returns.
    void check(const Caller& caller, const std::string& action, const std::string& what,
               Verdict done);

private:
    sdbus::IConnection& bus_;
    Policy policy_;
    std::unique_ptr<sdbus::IProxy> polkit_; ///< created on first use
};

} // namespace kmodd::daemon
