// SPDX-License-Identifier: LGPL-2.1-or-later
// How a load ended, kept for the Diagnose request.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "service/request_error.hpp"

namespace kmodd::service {

/// How the last Load of a module ended, for Diagnose and `kmodctl load --json`.
struct LoadOutcome {
    std::string module;                ///< the name asked for (a module name or alias, '-' as '_')
    std::string params;                ///< the parameters the caller gave
    uint64_t time_usec = 0;            ///< when the load ended (CLOCK_REALTIME microseconds)
    bool loaded = false;               ///< the load succeeded
    std::vector<std::string> inserted; ///< the modules it inserted, in order (when loaded)
    /// What went wrong (when not loaded): the category, the error's whole message, and the
    /// parts of it a program may want on their own.
    Failure kind = Failure::Failed;
    std::string message;
    std::string cause;
    std::string fix;
    std::string failed_module;                ///< the module the kernel refused, if it did
    std::string file;                         ///< that module's file
    int code = 0;                             ///< the kernel's errno
    std::vector<std::string> kernel_messages; ///< the kernel's log lines about it
    uint64_t diagnosis_usec = 0; ///< how long naming the cause took (monotonic microseconds)
    /// Of a successful load: what did not go as asked (an unknown parameter the kernel
    /// ignored), one sentence each naming the module.
    std::vector<std::string> warnings;
};

} // namespace kmodd::service
