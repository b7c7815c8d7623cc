// SPDX-License-Identifier: LGPL-2.1-or-later
// Who may change the kernel: uid 0, polkit on the system bus, the bus owner elsewhere.
#include "authorizer.hpp"

#include <unistd.h>

#include <chrono>
#include <map>

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/spdlog.h>

#include "sdbus_compat.hpp"

namespace kmodd::daemon {

namespace {

constexpr const char* kPolkitName = "org.freedesktop.PolicyKit1";
constexpr const char* kPolkitPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kPolkitInterface = "org.freedesktop.PolicyKit1.Authority";
// CheckAuthorization flag AllowUserInteraction: sdbus-c++ 1.2 cannot read the call's
// ALLOW_INTERACTIVE_AUTHORIZATION header flag, so an agent may always be asked; without an
// agent polkit answers "not authorized" at once.
constexpr uint32_t kAllowUserInteraction = 1;

} // namespace

Authorizer::Authorizer(sdbus::IConnection& bus, Policy policy) : bus_(bus), policy_(policy) {}

Authorizer::~Authorizer() = default;

void Authorizer::check(const Caller& caller, const std::string& action, const std::string& what,
                       Verdict done)
{
    if (caller.uid == 0) {
        done(std::nullopt);
        return;
    }
    if (caller.uid == static_cast<uid_t>(-1)) {
        done("Not allowed to " + what + ": the bus did not say who is calling.");
        return;
    }
    if (policy_ == Policy::SameUser) {
        if (caller.uid == ::getuid())
            done(std::nullopt);
        else
            done("Not allowed to " + what + ": uid " + std::to_string(caller.uid) +
                 " is neither root nor the owner of this bus.");
        return;
    }
    try {
        if (!polkit_)
            polkit_ = dbus::create_proxy(bus_, kPolkitName, kPolkitPath);
        using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
        Subject subject{
            std::string("system-bus-name"),
            std::map<std::string, sdbus::Variant>{{"name", sdbus::Variant(caller.sender)}}};
        std::map<std::string, std::string> details{
            {"polkit.message", "Authentication is required to " + what + "."}};
        polkit_->callMethodAsync("CheckAuthorization")
            .onInterface(kPolkitInterface)
            .withTimeout(std::chrono::minutes(2))
            .withArguments(subject, action, details, kAllowUserInteraction, std::string())
            .uponReplyInvoke(
                dbus::on_reply<sdbus::Struct<bool, bool, std::map<std::string, std::string>>>(
                    [done, what, action, uid = caller.uid](
                        const sdbus::Error* error,
                        sdbus::Struct<bool, bool, std::map<std::string, std::string>> result) {
                        if (error != nullptr) {
                            spdlog::warn("polkit could not check '{}' for uid {}: {}", action, uid,
                                         error->getMessage());
                            done("Not allowed to " + what + ": polkit could not be asked (" +
                                 error->getMessage() + ").");
                            return;
                        }
                        if (std::get<0>(result))
                            done(std::nullopt);
                        else
                            done("Not allowed to " + what + ": polkit denied action " + action +
                                 " to uid " + std::to_string(uid) + ".");
                    }));
    } catch (const sdbus::Error& error) {
        done("Not allowed to " + what + ": polkit could not be asked (" + error.getMessage() +
             ").");
    }
}

} // namespace kmodd::daemon
