// SPDX-License-Identifier: LGPL-2.1-or-later
// Internal to kmodd_elf: the ELF reader working on an open file instead of an image.
#pragma once

#include <cstdint>
#include <string_view>

#include "elf/module_file.hpp"

namespace kmodd::elf {

/// Parses the uncompressed module open as `fd` (`size` bytes, `head` its first bytes, at
/// least 64 unless the file is shorter) like parse_module, reading only the headers and the
/// sections it needs through libelf (pread). Errors as parse_module, plus EIO when a read
/// comes up short (the file changed meanwhile).
[[nodiscard]] base::Result<ModuleInfo> parse_module_file(int fd, uint64_t size,
                                                         std::string_view head);

} // namespace kmodd::elf
