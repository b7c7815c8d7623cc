// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the depmod.d parser (index::DepmodConfig::parse).
//
// Properties: any text parses without a crash or a read out of bounds (its version patterns are
// POSIX regular expressions compiled from the text), and every problem is reported with text.
#include <string_view>

#include "fuzz_check.hpp"
#include "index/depmod_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    kmodd::index::DepmodConfig config;
    kmodd::index::Diagnostics diagnostics;
    config.parse(text, "fuzz.conf", "6.1.0-57-amd64", diagnostics);
    config.finish();
    for (const auto& diagnostic : diagnostics)
        kmodd::fuzz::check(!diagnostic.message.empty(), "a problem is reported with text");
    return 0;
}
