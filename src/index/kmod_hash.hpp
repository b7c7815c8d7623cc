// SPDX-License-Identifier: LGPL-2.1-or-later
// kmod's hash function and table sizes, whose iteration order shows in its outputs.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace kmodd::index {

/// Bucket counts of kmod depmod's tables whose iteration order shows in its outputs.
inline constexpr uint32_t kModuleTableBuckets = 512;
inline constexpr uint32_t kSymbolTableBuckets = 2048;

/// The string hash kmod's depmod uses for its hash tables (Paul Hsieh's SuperFastHash,
/// reading 16-bit words in host order and chars as signed, as kmod does on x86).
/// kmod's output orders depend on it: modules without a modules.order entry are listed in
/// the iteration order of a 512-bucket table, modules.symbols in that of a 2048-bucket one
/// (bucket = hash & (n - 1), entries inside a bucket sorted by strcmp).
[[nodiscard]] inline uint32_t kmod_hash(std::string_view key) noexcept
{
    auto read16 = [](const char* p) {
        uint16_t v;
        std::memcpy(&v, p, sizeof v);
        return static_cast<uint32_t>(v);
    };
    auto as_signed = [](char c) {
        return static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(c)));
    };
    const char* p = key.data();
    auto len = static_cast<uint32_t>(key.size());
    uint32_t hash = len;
    uint32_t rem = len & 3;
    for (len /= 4; len > 0; --len) {
        hash += read16(p);
        uint32_t tmp = (read16(p + 2) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        p += 4;
        hash += hash >> 11;
    }
    switch (rem) {
    case 3:
        hash += read16(p);
        hash ^= hash << 16;
        hash ^= as_signed(p[2]) << 18;
        hash += hash >> 11;
        break;
    case 2:
        hash += read16(p);
        hash ^= hash << 11;
        hash += hash >> 17;
        break;
    case 1:
        hash += as_signed(*p);
        hash ^= hash << 10;
        hash += hash >> 1;
        break;
    default:
        break;
    }
    hash ^= hash << 3;
    hash += hash >> 5;
    hash ^= hash << 4;
    hash += hash >> 17;
    hash ^= hash << 25;
    hash += hash >> 6;
    return hash;
}

} // namespace kmodd::index
