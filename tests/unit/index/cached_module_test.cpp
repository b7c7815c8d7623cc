// SPDX-License-Identifier: LGPL-2.1-or-later
// A module read in place from a parse cache: what it lists is what a copied one lists, and the
// cache's bytes stay for as long as it lives.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "index/module_index.hpp"
#include "index/parse_cache.hpp"
#include <gtest/gtest.h>

namespace {

using kmodd::index::CacheKey;
using kmodd::index::ParseCache;
using kmodd::index::ParseCacheWriter;
using kmodd::index::SymbolIds;

constexpr int64_t kStarted = 1'800'000'000'000'000'000;
constexpr int64_t kOld = kStarted - 10'000'000'000; // ten seconds before the run

TEST(CachedModule, AModuleReadInPlaceListsWhatACopiedOneListsAndKeepsTheBytesAlive)
{
    kmodd::elf::ModuleInfo info;
    info.modinfo = {{"license", "GPL"},
                    {"alias", "pci:v00008086d0000100Esv*sd*bc*sc*i*"},
                    {"softdep", "pre: crc32c"},
                    {"vermagic", "6.1.0 SMP"},
                    {"alias", "e1000-alias"}};
    info.exports = {{"e1000_export", 0x1234abcdULL}, {"other", 0xffffffff00000001ULL}};
    info.imports = {{"printk", 0x11}, {"maybe_there", 0, true}};
    info.modinfo.push_back({"description", "Intel(R) PRO/1000 Network Driver"});
    info.modinfo.push_back({"weakdep", "e1000e"});
    info.modinfo.push_back({"alias", ""});
    ParseCacheWriter writer(kStarted);
    const std::string path = "/lib/modules/6.1.0/kernel/e1000.ko";
    writer.add(path, CacheKey{2049, 77, 4096, kOld, kOld, ""}, info);
    auto parsed = ParseCache::parse(writer.serialize());
    ASSERT_TRUE(parsed) << parsed.error().message;
    auto cache = std::make_unique<ParseCache>(std::move(*parsed));
    kmodd::elf::ModuleInfoView view;
    auto record = cache->find_view(path, CacheKey{2049, 77, 4096, kOld, kOld, ""}, view);
    ASSERT_TRUE(record);
    ASSERT_NE(record->keeper, nullptr);
    using kmodd::index::ParsedModule;
    auto copied = ParsedModule::make(view, '\0', true);
    auto viewed = ParsedModule::make(view, '\0', true, record->modinfo, *record->keeper);
    EXPECT_TRUE(viewed->modinfo.empty()) << "nothing copied";
    view.clear();
    cache.reset(); // the bytes stay while the module read from them lives
    EXPECT_EQ(viewed->backing.use_count(), 1);

    using Entries = std::vector<std::pair<std::string, std::string>>;
    auto entries_of = [](const ParsedModule& module) {
        Entries out;
        module.for_each_modinfo([&](std::string_view k, std::string_view v) {
            out.emplace_back(std::string(k), std::string(v));
        });
        return out;
    };
    const Entries expected = {{"alias", "pci:v00008086d0000100Esv*sd*bc*sc*i*"},
                              {"softdep", "pre: crc32c"},
                              {"alias", "e1000-alias"},
                              {"weakdep", "e1000e"},
                              {"alias", ""}};
    EXPECT_EQ(entries_of(*copied), expected);
    EXPECT_EQ(entries_of(*viewed), expected) << "the description is the cache's, not the index's";
    EXPECT_EQ(viewed->export_crc(1), 0xffffffff00000001ULL);
    EXPECT_TRUE(viewed->is_weak_import(1));
}

TEST(CachedModule, IdsReadInPlaceFromAnyAlignmentAreTheValuesWritten)
{
    const std::vector<uint32_t> written = {7, 0, 0xfffffffeU, 123456};
    std::string bytes(1 + written.size() * sizeof(uint32_t), '\0');
    std::memcpy(bytes.data() + 1, written.data(), written.size() * sizeof(uint32_t));
    SymbolIds ids;
    ids.view(std::string_view(bytes).substr(1)); // one byte past an aligned start
    ASSERT_TRUE(ids.is_view());
    ASSERT_EQ(ids.size(), written.size());
    for (size_t i = 0; i < written.size(); ++i)
        EXPECT_EQ(ids[i], written[i]) << i;
    std::vector<uint32_t> scratch;
    auto all = ids.span(scratch);
    EXPECT_EQ(std::vector<uint32_t>(all.begin(), all.end()), written);

    SymbolIds copied;
    copied.assign_bytes(std::string_view(bytes).substr(1));
    EXPECT_FALSE(copied.is_view());
    bytes.assign(bytes.size(), '\xff'); // the copy does not see it
    ASSERT_EQ(copied.size(), written.size());
    for (size_t i = 0; i < written.size(); ++i)
        EXPECT_EQ(copied[i], written[i]) << i;

    SymbolIds none;
    none.view(std::string_view()); // a module without symbols: a view all the same
    EXPECT_TRUE(none.is_view());
    EXPECT_TRUE(none.empty());

    const std::vector<uint32_t> two = {5, 6};
    ids.assign(two);
    EXPECT_FALSE(ids.is_view());
    ASSERT_EQ(ids.size(), 2U);
    EXPECT_EQ(ids[1], 6U);
    scratch.clear();
    EXPECT_EQ(ids.span(scratch).size(), 2U);
    EXPECT_TRUE(scratch.empty()) << "owned ids are given as they are, not copied";
    ids.clear();
    EXPECT_TRUE(ids.empty());

    SymbolIds filled;
    filled.view(std::string_view(bytes).substr(1));
    uint32_t* room = filled.fill(3); // what the interning writes into, a view no more
    room[0] = 9;
    room[1] = 8;
    room[2] = 7;
    EXPECT_FALSE(filled.is_view());
    ASSERT_EQ(filled.size(), 3U);
    EXPECT_EQ(filled[0], 9U);
    EXPECT_EQ(filled[2], 7U);
    EXPECT_EQ(filled.fill(0), nullptr);
    EXPECT_TRUE(filled.empty());
}

} // namespace
