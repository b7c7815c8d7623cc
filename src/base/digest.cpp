// SPDX-License-Identifier: LGPL-2.1-or-later
// Digest64: eight bytes at a time, each word multiplied, rotated and folded into the state,
// with a final avalanche so that every input bit reaches every output bit.
#include "base/digest.hpp"

#include <bit>
#include <cstring>

namespace kmodd::base {

namespace {

constexpr uint64_t kMultiplier1 = 0x87c37b91114253d5ULL;
constexpr uint64_t kMultiplier2 = 0x4cf5ad432745937fULL;

} // namespace

void Digest64::mix(uint64_t word)
{
    word *= kMultiplier1;
    word = std::rotl(word, 31);
    word *= kMultiplier2;
    state_ ^= word;
    state_ = std::rotl(state_, 27) * 5 + 0x52dce729;
}

uint64_t Digest64::finish(uint64_t value)
{
    value ^= value >> 33;
    value *= 0xff51afd7ed558ccdULL;
    value ^= value >> 33;
    value *= 0xc4ceb9fe1a85ec53ULL;
    value ^= value >> 33;
    return value;
}

Digest64& Digest64::update(std::string_view bytes)
{
    const char* data = bytes.data();
    size_t left = bytes.size();
    while (left >= 8) {
        uint64_t word = 0;
        std::memcpy(&word, data, 8);
        mix(word);
        data += 8;
        left -= 8;
    }
    uint64_t tail = 0;
    if (left > 0) // an empty view may have no data pointer at all
        std::memcpy(&tail, data, left);
    mix(tail);
    mix(static_cast<uint64_t>(bytes.size()));
    return *this;
}

Digest64& Digest64::update(uint64_t value)
{
    mix(value);
    return *this;
}

} // namespace kmodd::base
