// SPDX-License-Identifier: LGPL-2.1-or-later
// CRC-32C (Castagnoli), the checksum of kmodd's parse cache: by the CPU's crc32 instruction
// where it has one (SSE 4.2), else by tables.
#pragma once

#include <cstdint>
#include <string_view>

namespace kmodd::base {

/// `crc` (0 to begin with) carried on over `bytes`, so that crc32c(crc32c(0, a), b) is the
/// CRC-32C of a and b one after the other (0xE3069283 for "123456789").
[[nodiscard]] uint32_t crc32c(uint32_t crc, std::string_view bytes);

/// The same by tables only, on any CPU (for comparing the two).
[[nodiscard]] uint32_t crc32c_by_tables(uint32_t crc, std::string_view bytes);

} // namespace kmodd::base
