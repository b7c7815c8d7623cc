// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the reader of kmod's binary indexes (depmod::IndexReader over modules.*.bin bytes).
//
// Properties: opening, dumping, looking up and wildcard searching never crash, read out of
// bounds or loop; every key the dump lists is found by lookup() with one of the values the dump
// gave for it (unless it holds a byte that libkmod cannot follow: a NUL, or one of 0x80 and
// above, which its signed char never finds among a node's children).
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "depmod/index_reader.hpp"
#include "fuzz_check.hpp"

using kmodd::depmod::IndexReader;
using kmodd::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    auto reader = IndexReader::from_bytes(std::string(reinterpret_cast<const char*>(data), size));
    if (!reader)
        return 0;
    std::map<std::string, std::set<std::string>> dumped;
    reader->dump([&](std::string_view key, const IndexReader::Value& value) {
        if (dumped.size() < 64 || dumped.contains(std::string(key)))
            dumped[std::string(key)].insert(std::string(value.text));
    });
    for (const auto& [key, values] : dumped) {
        if (std::any_of(key.begin(), key.end(),
                        [](char c) { return c == '\0' || static_cast<unsigned char>(c) >= 0x80; }))
            continue;
        auto found = reader->lookup(key);
        check(found.has_value(), "a dumped key is found");
        check(values.contains(std::string(*found)), "lookup() gives a value the dump gave");
        (void)reader->search_wildcard(key);
    }
    (void)reader->lookup("snd_hda_intel");
    (void)reader->search_wildcard("pci:v00008086d00001234sv00000000sd00000000bc04sc03i00");
    return 0;
}
