// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the ELF module reader (elf::parse_module over an uncompressed image).
//
// Properties: any bytes give a ModuleInfo or an error that says why, without a crash or a read
// outside the image (ASan sees the image at exactly its size).
#include <string_view>

#include "elf/module_file.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view image(reinterpret_cast<const char*>(data), size);
    auto info = kmodd::elf::parse_module(image);
    if (!info) {
        kmodd::fuzz::check(!info.error().message.empty(), "a rejected image says why");
        return 0;
    }
    (void)info->values("alias");
    (void)info->values("depends");
    return 0;
}
