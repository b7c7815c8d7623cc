// SPDX-License-Identifier: LGPL-2.1-or-later
// The layout of kmod's binary indexes (modules.*.bin), shared by the writer and the reader.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmodd::depmod::index_format {

/// kmod's binary index (modules.*.bin): big-endian u32 words, a 12-byte header (magic,
/// version, root node word), node words with flags in the high nibble and the offset below.
inline constexpr uint32_t kMagic = 0xB007F457;
inline constexpr uint32_t kVersion = 0x00020001; ///< major 2, minor 1
inline constexpr uint32_t kVersionMajor = 2;
inline constexpr size_t kHeaderSize = 12;
inline constexpr uint32_t kFlagPrefix = 0x80000000;
inline constexpr uint32_t kFlagValues = 0x40000000;
inline constexpr uint32_t kFlagChildren = 0x20000000;
inline constexpr uint32_t kOffsetMask = 0x0FFFFFFF;

} // namespace kmodd::depmod::index_format
