// SPDX-License-Identifier: LGPL-2.1-or-later
// The calls that may need polkit's consent (Load, Unload, Rebuild, LinkModule, UnlinkModule), made
// with sd-bus directly: sdbus-c++ 1.2 cannot set the ALLOW_INTERACTIVE_AUTHORIZATION flag of a
// call. As systemctl does, kmodctl sets it when it may ask for a password (stdin is a terminal, no
// --no-ask-password), and then runs polkit's text agent (pkttyagent) for the call.
#pragma once

#include <string>
#include <vector>

#include "bus.hpp"

namespace kmodd::client {

/// Whether a privileged call may ask for a password: `allowed` (no --no-ask-password) and
/// stdin is a terminal.
[[nodiscard]] bool may_ask_password(bool allowed);

/// What a privileged method returns.
enum class Reply {
    Nothing, ///< Rebuild
    Strings, ///< Load, Unload: `as`
    Texts,   ///< LinkModule, UnlinkModule: each argument a `s`, in order
};

/// Calls org.kmodd1.Manager.`method` with string arguments `args` on `bus`. With `interactive`,
/// the call allows interactive authorization and, on the system bus, pkttyagent runs for its
/// duration (when it is installed; else polkit asks an agent the session may have). Returns the
/// reply's strings (none for Reply::Nothing; one per argument for Reply::Texts). Throws
/// sdbus::Error for an error reply (so that describe_error() phrases it) and CommandError when the
/// bus cannot be reached.
[[nodiscard]] std::vector<std::string> call_privileged(const dbus::BusChoice& bus,
                                                       const char* method,
                                                       const std::vector<std::string>& args,
                                                       Reply reply, bool interactive);

} // namespace kmodd::client
