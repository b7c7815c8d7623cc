// SPDX-License-Identifier: LGPL-2.1-or-later
// CRC-32C: the reflected Castagnoli polynomial, eight bytes at a time by eight tables, or by
// SSE 4.2's crc32 instruction (three runs of bytes side by side), which computes the same
// function.
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
/// The instruction takes three cycles and can start one each cycle: three runs of bytes carried
/// side by side go three times as fast as one. Each run (a lane) is this long.
constexpr size_t kLane = 8192;

/// A 64-bit word as the instruction expects it (x86 is little-endian).
uint64_t word_at(const unsigned char* p)
{
    uint64_t word = 0;
    std::memcpy(&word, p, 8);
    return word;
}

/// The register carried over `size` zero bytes (a multiple of 8).
__attribute__((target("sse4.2"))) uint32_t after_zeros(uint32_t reg, size_t size)
{
    uint64_t wide = reg;
    for (; size >= 8; size -= 8)
        wide = _mm_crc32_u64(wide, 0);
    return static_cast<uint32_t>(wide);
}

/// What carrying a register over a fixed number of zero bytes does to it, which is linear:
/// the XOR of what it does to each of the register's bytes, looked up.
struct ZeroRun {
    std::array<std::array<uint32_t, 256>, 4> by_byte{};

    /// From the images of the 32 single bits.
    explicit ZeroRun(const std::array<uint32_t, 32>& bit_images)
    {
        for (size_t k = 0; k < 4; ++k) {
            for (uint32_t v = 0; v < 256; ++v) {
                uint32_t image = 0;
                for (uint32_t bit = 0; bit < 8; ++bit) {
                    if ((v >> bit & 1) != 0)
                        image ^= bit_images[8 * k + bit];
                }
                by_byte[k][v] = image;
            }
        }
    }
    [[nodiscard]] uint32_t operator()(uint32_t reg) const
    {
        return by_byte[0][reg & 0xFF] ^ by_byte[1][(reg >> 8) & 0xFF] ^
               by_byte[2][(reg >> 16) & 0xFF] ^ by_byte[3][reg >> 24];
    }
};

/// Carrying over one lane and over two lanes of zero bytes; made at first use (~0.1 ms).
struct LaneShifts {
    ZeroRun one;
    ZeroRun two;
};

const LaneShifts& lane_shifts()
{
    static const LaneShifts shifts = [] {
        std::array<uint32_t, 32> one{};
        for (uint32_t bit = 0; bit < 32; ++bit)
            one[bit] = after_zeros(uint32_t{1} << bit, kLane);
        const ZeroRun by_one(one);
        std::array<uint32_t, 32> two{};
        for (uint32_t bit = 0; bit < 32; ++bit)
            two[bit] = by_one(one[bit]);
        return LaneShifts{by_one, ZeroRun(two)};
    }();
    return shifts;
}

__attribute__((target("sse4.2"))) uint32_t
update_by_instruction(uint32_t reg, const unsigned char* p, size_t size)
{
    // The register's update is linear in the register and the bytes together: over lanes A, B,
    // C it is (A from the register, carried over two lanes of zeros) ^ (B from zero, carried
    // over one) ^ (C from zero).
    if (size >= 3 * kLane) {
        const LaneShifts& shifts = lane_shifts();
        for (; size >= 3 * kLane; p += 3 * kLane, size -= 3 * kLane) {
            uint64_t a = reg;
            uint64_t b = 0;
            uint64_t c = 0;
            for (size_t i = 0; i < kLane; i += 8) {
                a = _mm_crc32_u64(a, word_at(p + i));
                b = _mm_crc32_u64(b, word_at(p + kLane + i));
                c = _mm_crc32_u64(c, word_at(p + 2 * kLane + i));
            }
            reg = shifts.two(static_cast<uint32_t>(a)) ^ shifts.one(static_cast<uint32_t>(b)) ^
                  static_cast<uint32_t>(c);
        }
    }
    uint64_t wide = reg;
    for (; size >= 8; p += 8, size -= 8)
        wide = _mm_crc32_u64(wide, word_at(p));
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
