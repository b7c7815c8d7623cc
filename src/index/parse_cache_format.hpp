// SPDX-License-Identifier: LGPL-2.1-or-later
// The layout of the parse cache file (see ParseCache), shared by its reader and its writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_io.hpp"

namespace kmodd::index::cache_format {

inline constexpr char kMagic[8] = {'k', 'm', 'o', 'd', 'd', 'P', 'C', '\n'};
// 2: the checksum covers the payload first; 3: descriptions kept; 4: symbol ids and table,
// CRC-32C instead of zlib's CRC-32 (a fifth of the time where the CPU has an instruction for it)
inline constexpr uint32_t kFormatVersion = 4;
inline constexpr uint32_t kByteOrderMark = 0x01020304;
// magic, version, byte-order mark, started_ns, count, payload size, CRC-32C (+ 4 bytes padding)
// The checksum covers the payload and then the header's started_ns, count and payload size, so
// a writer can compute it as the records stream out.
inline constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 + 8 + 8 + 4 + 4;
// The header fields the checksum covers with the payload: started_ns, count, payload size.
inline constexpr size_t kCheckedHeaderStart = 16;
inline constexpr size_t kCheckedHeaderSize = 24;

/// Reads the .modinfo entries that begin a record's ModuleInfo part (a u32 count, then each key
/// and value as base::put_string() writes them), calling `visit(key, value)` for each; false
/// when they are malformed (`in` then stands anywhere).
template <typename Visit> bool read_modinfo_entries(base::ByteReader& in, Visit&& visit)
{
    uint32_t count = 0;
    if (!in.get_count(count, 8))
        return false;
    for (; count > 0; --count) {
        std::string_view key, value;
        if (!in.get_string(key) || !in.get_string(value))
            return false;
        visit(key, value);
    }
    return true;
}

/// Appends a record's ids part: the count, then the exports' and the imports' ids.
void append_ids(std::string& out, std::span<const uint32_t> export_ids,
                std::span<const uint32_t> import_ids);

} // namespace kmodd::index::cache_format
