// SPDX-License-Identifier: LGPL-2.1-or-later
// How kmod's small tools name themselves and report errors: stderr, or syslog with -s.
#include "tool_log.hpp"

#include <syslog.h>

#include <cstdio>
#include <string_view>

namespace kmodd::client {

std::string program_name(const char* argv0)
{
    std::string_view self = argv0 != nullptr ? argv0 : "";
    if (size_t slash = self.rfind('/'); slash != std::string_view::npos)
        self.remove_prefix(slash + 1);
    return std::string(self);
}

void ToolLog::use_syslog()
{
    if (!syslog_)
        ::openlog(program_.c_str(), LOG_CONS, LOG_DAEMON);
    syslog_ = true;
}

void ToolLog::say(const char* level, const std::string& text) const
{
    if (!syslog_) {
        std::fprintf(stderr, "%s: %s: %s\n", program_.c_str(), level, text.c_str());
        return;
    }
    const std::string_view name = level;
    const int priority = name == "FATAL"     ? LOG_CRIT
                         : name == "ERROR"   ? LOG_ERR
                         : name == "WARNING" ? LOG_WARNING
                         : name == "NOTICE"  ? LOG_NOTICE
                                             : LOG_INFO;
    ::syslog(priority, "%s: %s", level, text.c_str());
}

} // namespace kmodd::client
