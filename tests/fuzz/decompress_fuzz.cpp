// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the decompressors of module images (xz, zstd, gzip), chosen by magic as for a module
// file, with an output limit of 16 MiB (the daemon's is 1 GiB; the decoders are the same).
//
// Properties: any bytes decompress or give an error that names the failure, without a crash,
// a read outside the input or output beyond the limit.
#include <string_view>

#include "elf/decompress.hpp"
#include "elf/module_file.hpp"
#include "fuzz_check.hpp"

namespace {
constexpr size_t kLimit = size_t{16} << 20;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto out = kmodd::elf::decompress_bounded(bytes, kLimit);
    if (!out) {
        kmodd::fuzz::check(!out.error().message.empty(), "a failed decompression says why");
        return 0;
    }
    kmodd::fuzz::check(kmodd::elf::detect_compression(bytes) != kmodd::elf::Compression::None,
                       "only a compressed image decompresses");
    kmodd::fuzz::check(out->size() <= kLimit, "the output stays within the limit");
    return 0;
}
