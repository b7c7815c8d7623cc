// SPDX-License-Identifier: LGPL-2.1-or-later
#include <fnmatch.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "depmod/index_reader.hpp"
#include "depmod/index_writer.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod {
namespace {

struct Entry {
    std::string key;
    std::string value;
    uint32_t priority;
};

std::string serialize(const std::vector<Entry>& entries)
{
    IndexWriter writer;
    for (const Entry& e : entries)
        EXPECT_TRUE(writer.add(e.key, e.value, e.priority));
    return writer.serialize();
}

IndexReader make_reader(const std::vector<Entry>& entries)
{
    auto reader = IndexReader::from_bytes(serialize(entries));
    EXPECT_TRUE(reader.has_value()) << reader.error().message;
    return std::move(*reader);
}

std::vector<std::string> texts(const std::vector<IndexReader::Value>& values)
{
    std::vector<std::string> out;
    out.reserve(values.size());
    for (const auto& v : values)
        out.emplace_back(v.text);
    return out;
}

std::vector<std::pair<std::string, std::string>> dump_all(const IndexReader& reader)
{
    std::vector<std::pair<std::string, std::string>> out;
    reader.dump([&out](std::string_view key, const IndexReader::Value& v) {
        out.emplace_back(std::string(key), std::string(v.text));
    });
    return out;
}

void put_u32(std::string& out, size_t at, uint32_t v)
{
    for (size_t i = 0; i < 4; ++i)
        out[at + i] = static_cast<char>(v >> (24 - 8 * i));
}

// ---- exact lookups ----------------------------------------------------------------------

TEST(IndexReader, ExactLookupFindsEveryKeyIncludingKeysThatArePrefixesOfOthers)
{
    std::vector<Entry> entries = {
        {"a", "va", 0}, {"ab", "vab", 1},    {"abc", "vabc", 2},        {"abd", "vabd", 3},
        {"b", "vb", 4}, {"snd_hda", "x", 5}, {"snd_hda_intel", "y", 6}, {"snd", "z", 7},
        {"", "root", 8}};
    IndexReader reader = make_reader(entries);
    for (const Entry& e : entries)
        EXPECT_EQ(reader.lookup(e.key), e.value) << "key '" << e.key << "'";
}

TEST(IndexReader, ExactLookupFindsNothingForKeysThatAreNotStored)
{
    IndexReader reader = make_reader({{"abc", "1", 0}, {"abd", "2", 0}, {"snd_hda_intel", "3", 0}});
    for (const char* key : {"", "a", "ab", "abcd", "abe", "b", "snd", "snd_hda", "snd_hda_intelx",
                            "xyz", "ab*", "a?c"})
        EXPECT_EQ(reader.lookup(key), std::nullopt) << "key '" << key << "'";
}

TEST(IndexReader, ExactLookupReturnsTheLowestPriorityAndAmongEqualOnesTheValueAddedLast)
{
    IndexReader reader = make_reader({{"k", "late", 2}, {"k", "first", 1}, {"k", "second", 1}});
    EXPECT_EQ(reader.lookup("k"), "second");
}

TEST(IndexReader, ExactLookupStopsTheKeyAtANul)
{
    IndexReader reader = make_reader({{"ab", "v", 0}, {"abc", "w", 0}});
    EXPECT_EQ(reader.lookup(std::string_view("ab\0c", 4)), "v");
}

TEST(IndexReader, ExactLookupIgnoresWildcardsInTheKey)
{
    IndexReader reader = make_reader({{"fs-*", "v", 0}});
    EXPECT_EQ(reader.lookup("fs-*"), "v");
    EXPECT_EQ(reader.lookup("fs-ext4"), std::nullopt);
}

TEST(IndexReader, AnEmptyIndexFindsNothing)
{
    IndexReader reader = make_reader({});
    EXPECT_EQ(reader.lookup(""), std::nullopt);
    EXPECT_EQ(reader.lookup("a"), std::nullopt);
    EXPECT_TRUE(reader.search_wildcard("").empty());
    EXPECT_TRUE(reader.search_wildcard("a").empty());
    EXPECT_TRUE(dump_all(reader).empty());
}

// ---- wildcard searches -----------------------------------------------------------------

const std::vector<Entry>& alias_patterns()
{
    static const std::vector<Entry> entries = {
        {"pci:v00008086d*sv*sd*bc*sc*i*", "intel_any", 10},
        {"pci:v00008086d00001234sv*sd*bc*sc*i*", "intel_1234", 11},
        {"pci:v*d*sv*sd*bc02sc00i*", "any_ethernet", 12},
        {"pci:v00008086d00001234sv*sd*bc02sc00i*", "intel_1234_eth", 13},
        {"usb:v1234p*d*dc*dsc*dp*ic*isc*ip*in*", "usb_1234", 20},
        {"usb:v1234p5678d*dc*dsc*dp*ic03isc*ip*in*", "usb_1234_hid", 21},
        {"usb:v*p*d*dc*dsc*dp*ic03isc01ip01in*", "usbkbd", 22},
        {"fs-*", "fs_any", 30},
        {"fs-ext4", "ext4", 31},
        {"[ab]c?", "bracket", 40},
        {"a*", "a_star", 41},
        {"ac", "ac_literal", 42},
        {"acx", "acx_literal", 43},
        {"?cx", "q_cx", 44},
        {"*", "everything", 50},
        {"acpi*:PNP0303:*", "i8042", 60},
        {"platform:rtc_cmos", "rtc_cmos", 70},
        {"x[!0-9]y", "not_digit", 80},
        {"x[0-9]y", "digit", 81},
    };
    return entries;
}

/// What matching every key as a whole pattern gives, ordered by priority (all distinct).
std::vector<std::string> reference_matches(const std::vector<Entry>& entries,
                                           const std::string& text)
{
    std::vector<Entry> hits;
    for (const Entry& e : entries) {
        if (::fnmatch(e.key.c_str(), text.c_str(), 0) == 0)
            hits.push_back(e);
    }
    std::sort(hits.begin(), hits.end(),
              [](const Entry& a, const Entry& b) { return a.priority < b.priority; });
    std::vector<std::string> out;
    out.reserve(hits.size());
    for (const Entry& e : hits)
        out.push_back(e.value);
    return out;
}

TEST(IndexReader, WildcardSearchMatchesWhatFnmatchOverEveryKeyMatches)
{
    IndexReader reader = make_reader(alias_patterns());
    const std::vector<std::string> inputs = {
        "pci:v00008086d00001234sv00001028sd00000001bc02sc00i00",
        "pci:v00008086d00005678sv00001028sd00000001bc03sc00i00",
        "pci:v000010ECd00008168sv00001028sd00000001bc02sc00i00",
        "pci:v00008086d",
        "usb:v1234p5678d0100dc00dsc00dp00ic03isc01ip01in00",
        "usb:v1234p0001d0100dc00dsc00dp00ic08isc06ip50in00",
        "usb:v046Dp0001d0100dc00dsc00dp00ic03isc01ip01in00",
        "fs-ext4",
        "fs-",
        "fs",
        "ac",
        "bc",
        "acx",
        "bcx",
        "ccx",
        "a",
        "",
        "acpi:PNP0303:",
        "acpi:PNP0A03:PNP0303:",
        "platform:rtc_cmos",
        "platform:rtc_cmosx",
        "xay",
        "x5y",
        "x[y",
    };
    for (const std::string& text : inputs)
        EXPECT_EQ(texts(reader.search_wildcard(text)), reference_matches(alias_patterns(), text))
            << "text '" << text << "'";
}

TEST(IndexReader, WildcardSearchOfAKeyWithoutWildcardsNeedsEquality)
{
    IndexReader reader = make_reader({{"platform:rtc_cmos", "rtc_cmos", 0}, {"ab", "x", 1}});
    EXPECT_EQ(texts(reader.search_wildcard("platform:rtc_cmos")),
              std::vector<std::string>{"rtc_cmos"});
    EXPECT_TRUE(reader.search_wildcard("platform:rtc_cmo").empty());
    EXPECT_TRUE(reader.search_wildcard("platform:rtc_cmos0").empty());
    EXPECT_TRUE(reader.search_wildcard("a").empty());
}

TEST(IndexReader, WildcardSearchReturnsEveryValueOfAMatchingKeyWithItsPriority)
{
    IndexReader reader = make_reader({{"k*", "b", 7}, {"k*", "a", 3}, {"k*", "c", 9}});
    auto values = reader.search_wildcard("kx");
    ASSERT_EQ(values.size(), 3U);
    EXPECT_EQ(values[0].text, "a");
    EXPECT_EQ(values[0].priority, 3U);
    EXPECT_EQ(values[1].text, "b");
    EXPECT_EQ(values[2].text, "c");
    EXPECT_EQ(values[2].priority, 9U);
}

// kmod 30 collects, along the path of the text, the keys under '*', '?' and '[' edges (each
// subtree children first), then the key equal to the text; add_value puts each value before
// the others of its priority. So among equal priorities the order is the reverse of that
// walk: the exact key's values first (in the order depmod added them), then the '?' subtree,
// then the '*' subtree. Checked against libkmod-index.c built from kmod 30's sources.
TEST(IndexReader, WildcardSearchOrdersEqualPrioritiesAsKmodsAddValueDoes)
{
    IndexReader reader = make_reader({{"ab", "v1", 5},
                                      {"ab", "v2", 5},
                                      {"a*", "star", 5},
                                      {"a?", "question", 5},
                                      {"a[b]", "bracket", 5}});
    EXPECT_EQ(texts(reader.search_wildcard("ab")),
              (std::vector<std::string>{"v1", "v2", "bracket", "question", "star"}));
}

TEST(IndexReader, WildcardSearchPutsLowerPrioritiesFirstWhateverTheWalkOrder)
{
    IndexReader reader =
        make_reader({{"ab", "exact", 9}, {"a*", "star", 1}, {"a?", "question", 5}});
    EXPECT_EQ(texts(reader.search_wildcard("ab")),
              (std::vector<std::string>{"star", "question", "exact"}));
}

TEST(IndexReader, WildcardSearchLikeKmodDoesNotLetABackslashBeforeTheFirstWildcardEscapeIt)
{
    // The trie walk compares "a\" literally and hands only "*b" to fnmatch.
    IndexReader reader = make_reader({{"a\\*b", "m", 0}});
    EXPECT_EQ(texts(reader.search_wildcard("a\\xb")), std::vector<std::string>{"m"});
    EXPECT_TRUE(reader.search_wildcard("a*b").empty());
}

TEST(IndexReader, WildcardSearchStopsTheTextAtANul)
{
    IndexReader reader = make_reader({{"ab*", "m", 0}});
    EXPECT_EQ(texts(reader.search_wildcard(std::string_view("ab\0x", 4))),
              std::vector<std::string>{"m"});
    EXPECT_TRUE(reader.search_wildcard(std::string_view("a\0b", 3)).empty());
}

// ---- dump --------------------------------------------------------------------------------

TEST(IndexReader, DumpVisitsEveryPairInKeyOrderWithTheValuesOfAKeyInFileOrder)
{
    IndexReader reader = make_reader({{"b", "1", 0},
                                      {"a", "2", 0},
                                      {"ab", "3", 4},
                                      {"ab", "4", 2},
                                      {"a*", "5", 0},
                                      {"", "6", 0}});
    std::vector<std::pair<std::string, std::string>> expected = {
        {"", "6"}, {"a", "2"}, {"a*", "5"}, {"ab", "4"}, {"ab", "3"}, {"b", "1"}};
    EXPECT_EQ(dump_all(reader), expected);
}

// ---- files and corruption -----------------------------------------------------------------

TEST(IndexReader, OpenReadsAnIndexFile)
{
    test::TempTree tree;
    tree.write("modules.test.bin", serialize({{"key", "value", 0}}));
    auto reader = IndexReader::open((tree.module_dir() / "modules.test.bin").string());
    ASSERT_TRUE(reader.has_value()) << reader.error().message;
    EXPECT_EQ(reader->lookup("key"), "value");
}

TEST(IndexReader, ViewsStayValidWhileACopyOfTheReaderLives)
{
    test::TempTree tree;
    tree.write("modules.test.bin", serialize({{"key", "value", 0}}));
    std::optional<IndexReader> copy;
    std::string_view value;
    {
        auto reader = IndexReader::open((tree.module_dir() / "modules.test.bin").string());
        ASSERT_TRUE(reader.has_value());
        value = *reader->lookup("key");
        copy = *reader;
    }
    EXPECT_EQ(value, "value");
    EXPECT_EQ(copy->lookup("key"), "value");
}

TEST(IndexReader, OpenOfAMissingFileFailsWithEnoent)
{
    auto reader = IndexReader::open("/nonexistent/modules.dep.bin");
    ASSERT_FALSE(reader.has_value());
    EXPECT_EQ(reader.error().code, ENOENT);
    EXPECT_NE(reader.error().message.find("/nonexistent/modules.dep.bin"), std::string::npos);
}

TEST(IndexReader, OpenOfAnEmptyFileOrADirectoryFailsWithEbadmsg)
{
    test::TempTree tree;
    tree.write("modules.builtin.bin", "");
    auto empty = IndexReader::open((tree.module_dir() / "modules.builtin.bin").string());
    ASSERT_FALSE(empty.has_value());
    EXPECT_EQ(empty.error().code, EBADMSG);
    auto dir = IndexReader::open(tree.module_dir().string());
    ASSERT_FALSE(dir.has_value());
    EXPECT_EQ(dir.error().code, EBADMSG);
}

TEST(IndexReader, ABadMagicIsEbadmsg)
{
    std::string bytes = serialize({{"a", "b", 0}});
    bytes[0] = '\x00';
    auto reader = IndexReader::from_bytes(bytes);
    ASSERT_FALSE(reader.has_value());
    EXPECT_EQ(reader.error().code, EBADMSG);
}

TEST(IndexReader, AnotherMajorVersionIsEbadmsgButAnotherMinorIsFine)
{
    std::string bytes = serialize({{"a", "b", 0}});
    put_u32(bytes, 4, 0x00030001);
    auto major = IndexReader::from_bytes(bytes);
    ASSERT_FALSE(major.has_value());
    EXPECT_EQ(major.error().code, EBADMSG);
    put_u32(bytes, 4, 0x00020007);
    auto minor = IndexReader::from_bytes(bytes);
    ASSERT_TRUE(minor.has_value());
    EXPECT_EQ(minor->lookup("a"), "b");
}

TEST(IndexReader, ARootOutsideTheFileIsEbadmsg)
{
    std::string bytes = serialize({{"a", "b", 0}});
    for (uint32_t root : {0U, 4U, static_cast<uint32_t>(bytes.size() + 1), 0x2FFFFFFFU}) {
        put_u32(bytes, 8, root);
        auto reader = IndexReader::from_bytes(bytes);
        ASSERT_FALSE(reader.has_value()) << "root " << root;
        EXPECT_EQ(reader.error().code, EBADMSG);
    }
}

/// Runs every kind of query on a possibly corrupt reader; ASan/UBSan do the checking.
size_t exercise(const IndexReader& reader, const std::vector<Entry>& entries)
{
    size_t found = 0;
    for (const Entry& e : entries) {
        found += reader.lookup(e.key).has_value() ? 1 : 0;
        found += reader.search_wildcard(e.key).size();
    }
    for (const char* text :
         {"", "pci:v00008086d00001234sv00001028sd00000001bc02sc00i00",
          "usb:v1234p5678d0100dc00dsc00dp00ic03isc01ip01in00", "fs-ext4", "acx", "x5y"})
        found += reader.search_wildcard(text).size();
    reader.dump([&found](std::string_view key, const IndexReader::Value& v) {
        found += key.size() + v.text.size() > 0 ? 1 : 0;
    });
    return found;
}

TEST(IndexReader, EveryTruncationOfAnIndexIsRejectedOrReadSafely)
{
    const std::string full = serialize(alias_patterns());
    size_t opened = 0;
    for (size_t len = 0; len < full.size(); ++len) {
        auto reader = IndexReader::from_bytes(full.substr(0, len));
        if (!reader) {
            EXPECT_EQ(reader.error().code, EBADMSG);
            continue;
        }
        ++opened;
        (void)exercise(*reader, alias_patterns());
    }
    // kmod 30 writes the root last: only cuts at or after the root's offset still open.
    uint32_t root = 0;
    for (size_t i = 8; i < 12; ++i)
        root = root << 8 | static_cast<unsigned char>(full[i]);
    EXPECT_EQ(opened, full.size() - (root & 0x0FFFFFFF));
    ASSERT_TRUE(IndexReader::from_bytes(full).has_value());
}

TEST(IndexReader, EveryTruncationOfAnIndexWithTheRootFirstIsReadSafely)
{
    // Pre-order files (kmod >= 34) have the root at offset 12: a truncated one still opens.
    std::string full = serialize(alias_patterns());
    uint32_t root = 0;
    for (size_t i = 8; i < 12; ++i)
        root = root << 8 | static_cast<unsigned char>(full[i]);
    // Move the root node's body to offset 12 by prepending a copy of it; children keep
    // pointing backwards into the rest of the file shifted by the copy's size.
    const size_t root_offset = root & 0x0FFFFFFF;
    const std::string body = full.substr(root_offset);
    std::string moved = full.substr(0, 12) + body + full.substr(12);
    put_u32(moved, 8, (root & 0xF0000000) | 12U);
    IndexReader intact = *IndexReader::from_bytes(moved);
    // The copied root still points at the old offsets, so the shifted children are garbage
    // to it: this is a corrupt file by construction, and every prefix must be safe.
    (void)exercise(intact, alias_patterns());
    size_t opened = 0;
    for (size_t len = 12; len < moved.size(); ++len) {
        auto reader = IndexReader::from_bytes(moved.substr(0, len));
        if (reader) {
            ++opened;
            (void)exercise(*reader, alias_patterns());
        }
    }
    EXPECT_EQ(opened, moved.size() - 12);
}

TEST(IndexReader, RandomBitFlipsNeverCrash)
{
    const std::string full = serialize(alias_patterns());
    std::mt19937 random(12345);
    std::uniform_int_distribution<size_t> position(0, full.size() * 8 - 1);
    std::uniform_int_distribution<int> flips(1, 4);
    size_t opened = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string bytes = full;
        for (int n = flips(random); n > 0; --n) {
            size_t bit = position(random);
            bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
        }
        auto reader = IndexReader::from_bytes(bytes);
        if (reader) {
            ++opened;
            (void)exercise(*reader, alias_patterns());
        }
    }
    EXPECT_GT(opened, 1000U);
}

TEST(IndexReader, ANodeThatIsItsOwnChildDoesNotLoopForever)
{
    // Root at 12: no prefix, children '*'..'*' pointing back at the root, one value.
    std::string bytes(12, '\0');
    put_u32(bytes, 0, 0xB007F457);
    put_u32(bytes, 4, 0x00020001);
    const uint32_t root = 12 | 0x20000000 | 0x40000000;
    put_u32(bytes, 8, root);
    bytes += "**";
    bytes.append(4, '\0');
    put_u32(bytes, 14, root);
    bytes.append(4, '\0');
    put_u32(bytes, 18, 1);
    bytes.append(4, '\0');
    bytes += "v";
    bytes.push_back('\0');
    auto reader = IndexReader::from_bytes(bytes);
    ASSERT_TRUE(reader.has_value());
    EXPECT_EQ(reader->lookup(""), "v");
    EXPECT_EQ(reader->lookup("**"), "v");
    // The walk is cut off after as many nodes as the file could hold; it must end.
    EXPECT_LE(reader->search_wildcard("abc").size(), bytes.size());
    size_t visited = 0;
    reader->dump([&visited](std::string_view, const IndexReader::Value&) { ++visited; });
    EXPECT_LE(visited, bytes.size());
    EXPECT_GE(visited, 1U);
}

TEST(IndexReader, ALargeNodeSharedByEveryChildSlotIsNotReadOverAndOver)
{
    // Root: 128 child slots all pointing at one node with a 64 KiB prefix, a value, and 128
    // child slots pointing at itself. A walk that read it once per path would never end.
    std::string bytes(12, '\0');
    put_u32(bytes, 0, 0xB007F457);
    put_u32(bytes, 4, 0x00020001);
    const uint32_t shared =
        static_cast<uint32_t>(bytes.size()) | 0x80000000 | 0x20000000 | 0x40000000;
    bytes.append(size_t{64} * 1024, '*');
    bytes.push_back('\0');
    bytes.push_back('\0');
    bytes.push_back('\x7f');
    for (int i = 0; i < 128; ++i) {
        bytes.append(4, '\0');
        put_u32(bytes, bytes.size() - 4, shared);
    }
    bytes.append(4, '\0');
    put_u32(bytes, bytes.size() - 4, 1);
    bytes.append(4, '\0');
    bytes += "v";
    bytes.push_back('\0');
    const auto root = static_cast<uint32_t>(bytes.size()) | 0x20000000;
    bytes.push_back('\0');
    bytes.push_back('\x7f');
    for (int i = 0; i < 128; ++i) {
        bytes.append(4, '\0');
        put_u32(bytes, bytes.size() - 4, shared);
    }
    put_u32(bytes, 8, root);
    auto reader = IndexReader::from_bytes(bytes);
    ASSERT_TRUE(reader.has_value());
    size_t visited = 0;
    reader->dump([&visited](std::string_view, const IndexReader::Value&) { ++visited; });
    EXPECT_GE(visited, 1U);
    EXPECT_LE(visited, 4U);
    // Children come before values in a wildcard walk: it runs out before reaching any.
    EXPECT_LE(reader->search_wildcard("abc").size(), 4U);
}

TEST(IndexReader, AValueRunningPastTheEndIsNotReturned)
{
    // Only the empty key: the root holds the value, and the file ends with the value's NUL.
    std::string bytes = serialize({{"", "value", 0}});
    ASSERT_EQ(bytes.back(), '\0');
    bytes.back() = 'x';
    auto reader = IndexReader::from_bytes(bytes);
    ASSERT_TRUE(reader.has_value());
    EXPECT_EQ(reader->lookup(""), std::nullopt);
    EXPECT_TRUE(reader->search_wildcard("").empty());
    EXPECT_TRUE(dump_all(*reader).empty());
}

} // namespace
} // namespace kmodd::depmod
