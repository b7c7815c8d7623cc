// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the output state reader (depmod::OutputState::parse).
//
// An input that starts with the state's magic is read as a whole state file. Any other input
// is a payload and gets a correct header (size, checksum) put around it, so that mutations
// reach the field reader instead of stopping at the checksum.
//
// Properties: reading never crashes or reads out of bounds; a state that reads is exactly
// what serialize() writes for it (the format has one spelling), so nothing a damaged file
// holds can pass for something else.
#include <string>
#include <string_view>

#include <zlib.h>

#include "base/byte_io.hpp"
#include "depmod/output_state.hpp"
#include "fuzz_check.hpp"

namespace {

using kmodd::depmod::OutputState;
using kmodd::fuzz::check;

constexpr std::string_view kMagic{"kmoddOS\n", 8};

/// A state file around `payload`, as format version 6 lays it out: magic, version, byte-order
/// mark, payload size, CRC-32 of the payload, padding.
std::string sealed(std::string_view payload)
{
    std::string out(kMagic);
    kmodd::base::put_value(out, uint32_t{6});
    kmodd::base::put_value(out, uint32_t{0x01020304});
    kmodd::base::put_value(out, static_cast<uint64_t>(payload.size()));
    kmodd::base::put_value(
        out, static_cast<uint32_t>(
                 ::crc32_z(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size())));
    kmodd::base::put_value(out, uint32_t{0});
    return out + std::string(payload);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string bytes = input.starts_with(kMagic) ? std::string(input) : sealed(input);
    auto state = OutputState::parse(bytes);
    if (!state) {
        check(!state.error().message.empty(), "a rejected state says why");
        return 0;
    }
    check(state->serialize() == bytes, "a state that reads is what serialize() writes for it");
    return 0;
}
