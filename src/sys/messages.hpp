// SPDX-License-Identifier: LGPL-2.1-or-later
// Internal to kmodd_sys (and its tests): the kernel's errno turned into a sentence, once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace kmodd::sys {

/// The module name a file path suggests, for messages: the base name without ".ko" and a
/// compression suffix (".xz", ".zst", ".gz"). Not necessarily the name inside the file.
[[nodiscard]] std::string module_name_from_path(std::string_view path);

/// The error for a failed insert of `module` whose kernel errno is `code`:
/// "cannot insert 'mod2': <what the errno means for a module load>". The code is kept.
[[nodiscard]] base::Unexpected insert_error(const std::string& module, int code);

/// The error for a failed delete_module of `module` with errno `code`. For EWOULDBLOCK,
/// `holders` (sorted) are named: "'mod1' is in use by: mod2, mod3". The code is kept.
[[nodiscard]] base::Unexpected remove_error(const std::string& module, int code,
                                            const std::vector<std::string>& holders = {});

} // namespace kmodd::sys
