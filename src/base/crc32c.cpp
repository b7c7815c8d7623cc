// SPDX-License-Identifier: LGPL-2.1-or-later
// CRC-32C: the reflected Castagnoli polynomial, eight bytes at a time by eight tables, or by
// SSE 4.2's crc32 instruction, which computes the same function.
#include "base/crc32c.hpp"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace kmodd::base {

namespace {

constexpr uint32_t kPolynomial = 0x82F63B78; // 0x1EDC6F41 bit-reversed

using Tables = std::array<std::array<uint32_t, 256>, 8>;

/// tables[0][b]: the CRC of byte b; tables[k][b]: of byte b followed by k zero bytes.
constexpr Tables make_tables()
{
    Tables tables{};
    for (uint32_t b = 0; b < 256; ++b) {
        uint32_t crc = b;
        for (int bit = 0; bit < 8; ++bit)
            crc = (crc >> 1) ^ ((crc & 1) != 0 ? kPolynomial : 0);
        tables[0][b] = crc;
    }
    for (size_t k = 1; k < 8; ++k) {
        for (uint32_t b = 0; b < 256; ++b)
            tables[k][b] = (tables[k - 1][b] >> 8) ^ tables[0][tables[k - 1][b] & 0xFF];
    }
    return tables;
}

constexpr Tables kTables = make_tables();

/// Four bytes as a little-endian word, whatever the CPU's byte order.
uint32_t little_endian(const unsigned char* p)
{
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

/// The CRC register (not inverted) carried over `size` bytes at `p`.
uint32_t update_by_tables(uint32_t reg, const unsigned char* p, size_t size)
{
    for (; size >= 8; p += 8, size -= 8) {
        const uint32_t low = reg ^ little_endian(p);
        const uint32_t high = little_endian(p + 4);
        reg = kTables[7][low & 0xFF] ^ kTables[6][(low >> 8) & 0xFF] ^
              kTables[5][(low >> 16) & 0xFF] ^ kTables[4][low >> 24] ^ kTables[3][high & 0xFF] ^
              kTables[2][(high >> 8) & 0xFF] ^ kTables[1][(high >> 16) & 0xFF] ^
              kTables[0][high >> 24];
    }
    for (; size > 0; ++p, --size)
        reg = (reg >> 8) ^ kTables[0][(reg ^ *p) & 0xFF];
    return reg;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t
update_by_instruction(uint32_t reg, const unsigned char* p, size_t size)
{
    uint64_t wide = reg;
    for (; size >= 8; p += 8, size -= 8) {
        uint64_t word = 0;
        std::memcpy(&word, p, 8); // x86 is little-endian, as the instruction expects
        wide = _mm_crc32_u64(wide, word);
    }
    auto narrow = static_cast<uint32_t>(wide);
    for (; size > 0; ++p, --size)
        narrow = _mm_crc32_u8(narrow, *p);
    return narrow;
}

bool has_crc32_instruction()
{
    static const bool has = __builtin_cpu_supports("sse4.2") != 0;
    return has;
}
#endif

const unsigned char* bytes_of(std::string_view bytes)
{
    return reinterpret_cast<const unsigned char*>(bytes.data());
}

} // namespace

uint32_t crc32c(uint32_t crc, std::string_view bytes)
{
#if defined(__x86_64__)
    if (has_crc32_instruction())
        return ~update_by_instruction(~crc, bytes_of(bytes), bytes.size());
#endif
    return ~update_by_tables(~crc, bytes_of(bytes), bytes.size());
}

uint32_t crc32c_by_tables(uint32_t crc, std::string_view bytes)
{
    return ~update_by_tables(~crc, bytes_of(bytes), bytes.size());
}

} // namespace kmodd::base
