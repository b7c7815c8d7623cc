// SPDX-License-Identifier: LGPL-2.1-or-later
// A 64-bit digest of bytes, for telling apart inputs and outputs that should be the same
// (caches, up-to-date checks). Not cryptographic: it guards against accidents, not attackers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace kmodd::base {

/// A streaming 64-bit digest. update() calls are framed (each adds its length), so "ab"+"c"
/// and "a"+"bc" differ.
class Digest64 {
public:
    explicit Digest64(uint64_t seed = 0) : state_(seed ^ kStart) {}

    Digest64& update(std::string_view bytes);
    Digest64& update(uint64_t value);
    [[nodiscard]] uint64_t value() const { return finish(state_); }

    /// The digest of `bytes` alone.
    [[nodiscard]] static uint64_t of(std::string_view bytes)
    {
        return Digest64().update(bytes).value();
    }
    /// The digest of a file's content as read, or of the error that kept it from being read:
    /// two reads have the same digest only when both gave the same bytes or the same errno.
    [[nodiscard]] static uint64_t of_read(const Result<std::string>& content)
    {
        return content ? Digest64(1).update(*content).value()
                       : Digest64(2).update(static_cast<uint64_t>(content.error().code)).value();
    }

private:
    static constexpr uint64_t kStart = 0x9e3779b97f4a7c15ULL;
    [[nodiscard]] static uint64_t finish(uint64_t value);
    void mix(uint64_t word);

    uint64_t state_;
};

} // namespace kmodd::base
