// SPDX-License-Identifier: LGPL-2.1-or-later
// How kmod's small tools (insmod, rmmod, lsmod) name themselves and report errors.
#pragma once

#include <string>

namespace kmodd::client {

/// The last component of argv[0], as kmod's program_invocation_short_name.
[[nodiscard]] std::string program_name(const char* argv0);

/// kmod's tool messages: "<program>: ERROR: <text>" on stderr, or with `to_syslog` (-s) the
/// same text to syslog at LOG_ERR ("ERROR: <text>", tagged with the program's name).
class ToolLog {
public:
    explicit ToolLog(std::string program) : program_(std::move(program)) {}

    void use_syslog();
    /// `text` without its final newline.
    void error(const std::string& text) const { say("ERROR", text); }
    /// "<program>: <level>: <text>"; `level` is FATAL, ERROR, WARNING, NOTICE or INFO (the
    /// syslog priority follows it).
    void say(const char* level, const std::string& text) const;

private:
    std::string program_;
    bool syslog_ = false;
};

} // namespace kmodd::client
