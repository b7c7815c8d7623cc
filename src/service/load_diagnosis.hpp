// SPDX-License-Identifier: LGPL-2.1-or-later
// Why the kernel refused a load, named as one cause with its fix: the kernel's errno joined
// with what loader::check_load finds in the module, the index and the kernel's state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loader/load_check.hpp"
#include "loader/loader.hpp"
#include "service/load_outcome.hpp"
#include "service/module_service.hpp"
#include "service/request_error.hpp"

namespace kmodd::service {

/// A failed load's cause, as a client can act on it.
struct Diagnosis {
    Failure kind = Failure::Failed;
    std::string cause; ///< one sentence; empty when nothing is known beyond the errno
    std::string fix;   ///< what to do about it; may be empty
    uint64_t usec = 0; ///< how long diagnose_failed_load took (monotonic microseconds)
};

/// The warnings of a successful load: the parameters given to the modules it inserted that
/// those modules do not have (the kernel loads them all the same and only logs it), each
/// "MODULE: unknown parameter 'X': ...; its parameters: ...", and a module the kernel said
/// exists while `kernel` has nothing by that name (its file's module has another name, which
/// is loaded). Reads only the files of those modules.
[[nodiscard]] std::vector<std::string> load_warnings(const loader::LoadReport& report,
                                                     const sys::Kernel& kernel);

/// `message` with the kernel's `lines` joined in, in place of the "(see dmesg)" hint.
[[nodiscard]] std::string with_kernel_messages(std::string message,
                                               const std::vector<std::string>& lines);

/// The cause of the kernel's errno `code` given the check's `findings` (pure): EKEYREJECTED a
/// signature, ENOEXEC a vermagic or symbol version, ENOENT an unknown symbol, EINVAL a bad
/// parameter value, EPERM kernel.modules_disabled (kind Failed); the matching problem finding
/// gives the sentence and the fix.
[[nodiscard]] Diagnosis classify_failed_load(int code,
                                             const std::vector<loader::Finding>& findings);

/// Reads the module of `failure`, checks it against `kernel`'s facts (its exports only for an
/// unknown symbol: /proc/kallsyms is the costly part) and `snapshot`, and classifies the
/// kernel's errno. A module file that cannot be read (any more) is the cause itself.
[[nodiscard]] Diagnosis diagnose_failed_load(const loader::InsertFailure& failure,
                                             const IndexSnapshot& snapshot, sys::Kernel& kernel);

} // namespace kmodd::service
