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

void ToolLog::error(const std::string& text) const
{
    if (syslog_)
        ::syslog(LOG_ERR, "ERROR: %s", text.c_str());
    else
        std::fprintf(stderr, "%s: ERROR: %s\n", program_.c_str(), text.c_str());
}

} // namespace kmodd::client
