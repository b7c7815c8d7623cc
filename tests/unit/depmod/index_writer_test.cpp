// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "depmod/index_writer.hpp"

namespace kmodd::depmod {
namespace {

uint32_t u32_at(const std::string& data, size_t offset)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i)
        v = (v << 8) | static_cast<unsigned char>(data.at(offset + i));
    return v;
}

/// Walks a serialized index and returns every key with its values ("prio:value"), checking
/// that each child lies where `layout` puts it.
void dump(const std::string& data, uint32_t word, const std::string& path,
          std::map<std::string, std::vector<std::string>>& out,
          IndexLayout layout = IndexLayout::ChildrenFirst)
{
    size_t offset = word & 0x0FFFFFFF;
    std::string key = path;
    if (word & 0x80000000) {
        size_t end = data.find('\0', offset);
        key += data.substr(offset, end - offset);
        offset = end + 1;
    }
    std::vector<std::pair<char, uint32_t>> children;
    if (word & 0x20000000) {
        auto first = static_cast<unsigned char>(data.at(offset));
        auto last = static_cast<unsigned char>(data.at(offset + 1));
        offset += 2;
        for (unsigned c = first; c <= last; ++c, offset += 4) {
            uint32_t child = u32_at(data, offset);
            if (child != 0)
                children.emplace_back(static_cast<char>(c), child);
        }
    }
    if (word & 0x40000000) {
        uint32_t count = u32_at(data, offset);
        offset += 4;
        for (uint32_t i = 0; i < count; ++i) {
            uint32_t prio = u32_at(data, offset);
            offset += 4;
            size_t end = data.find('\0', offset);
            out[key].push_back(std::to_string(prio) + ":" + data.substr(offset, end - offset));
            offset = end + 1;
        }
    }
    for (auto [c, child] : children) {
        if (layout == IndexLayout::ChildrenFirst)
            EXPECT_LT(child & 0x0FFFFFFF, word & 0x0FFFFFFF) << "kmod 30 writes children first";
        else
            EXPECT_GE(child & 0x0FFFFFFF, offset) << "kmod 34 writes a node before its children";
        dump(data, child, key + c, out, layout);
    }
}

TEST(IndexWriter, AnEmptyIndexIsAHeaderWithTheRootAtOffsetTwelve)
{
    IndexWriter writer;
    std::string data = writer.serialize();
    ASSERT_EQ(data.size(), 12U);
    EXPECT_EQ(u32_at(data, 0), 0xB007F457U);
    EXPECT_EQ(u32_at(data, 4), 0x00020001U);
    EXPECT_EQ(u32_at(data, 8), 12U);
}

TEST(IndexWriter, EveryKeyAndValueCanBeFoundAgain)
{
    IndexWriter writer;
    std::vector<std::pair<std::string, std::string>> entries = {
        {"usb:v1234p*", "a"}, {"usb:v1234p5678", "b"}, {"usb", "c"}, {"pci:v*", "d"},
        {"u", "e"},           {"usb:v12", "f"},        {"zz", "g"}};
    for (size_t i = 0; i < entries.size(); ++i)
        ASSERT_TRUE(writer.add(entries[i].first, entries[i].second, static_cast<uint32_t>(i)));
    std::string data = writer.serialize();
    std::map<std::string, std::vector<std::string>> found;
    dump(data, u32_at(data, 8), "", found);
    ASSERT_EQ(found.size(), entries.size());
    for (size_t i = 0; i < entries.size(); ++i)
        EXPECT_EQ(found[entries[i].first],
                  std::vector<std::string>{std::to_string(i) + ":" + entries[i].second});
    EXPECT_LT(u32_at(data, 8) & 0x0FFFFFFF, data.size()) << "the root is inside the file";
}

TEST(IndexWriter, TheExpectedSizeChangesOnlyTheBufferNotTheBytes)
{
    for (const IndexLayout layout : {IndexLayout::ChildrenFirst, IndexLayout::ParentFirst}) {
        // The writer borrows its keys and values: they outlive each serialize().
        std::vector<std::pair<std::string, std::string>> entries;
        for (int i = 0; i < 500; ++i)
            entries.emplace_back("pci:v" + std::to_string(i * 7919) + "d*",
                                 "m" + std::to_string(i % 13));
        auto serialize = [&](size_t expected_size) {
            IndexWriter writer(layout);
            for (size_t i = 0; i < entries.size(); ++i)
                EXPECT_TRUE(
                    writer.add(entries[i].first, entries[i].second, static_cast<uint32_t>(i % 5)));
            return writer.serialize(expected_size);
        };
        const std::string plain = serialize(0);
        // Too small (the file grew), exact, and far too big (it shrank).
        for (const size_t expected : {size_t{1}, plain.size(), plain.size() * 10}) {
            const std::string made = serialize(expected);
            EXPECT_EQ(made, plain) << "expected " << expected;
            EXPECT_LE(made.capacity(), made.size() + made.size() / 16 + 4096)
                << "a buffer far too big is kept";
        }
    }
}

TEST(IndexWriter, ParentFirstHoldsTheSameTrieWithTheRootAfterTheHeader)
{
    std::vector<std::pair<std::string, std::string>> entries = {
        {"usb:v1234p*", "a"}, {"usb:v1234p5678", "b"},
        {"usb", "c"},         {"pci:v*", "d"},
        {"u", "e"},           {"usb:v12", "f"},
        {"zz", "g"},          {"usb:v1234p*", "h"},
        {"a~", "i"},          {"a!", "j"},
        {"symbol:x", "k"}};
    IndexWriter children_first(IndexLayout::ChildrenFirst);
    IndexWriter parent_first(IndexLayout::ParentFirst);
    for (size_t i = 0; i < entries.size(); ++i) {
        const auto priority = static_cast<uint32_t>(i % 3);
        ASSERT_TRUE(children_first.add(entries[i].first, entries[i].second, priority));
        ASSERT_TRUE(parent_first.add(entries[i].first, entries[i].second, priority));
    }
    const std::string old_bytes = children_first.serialize();
    const std::string new_bytes = parent_first.serialize();
    EXPECT_EQ(new_bytes.size(), old_bytes.size()) << "the same nodes, in another order";
    EXPECT_NE(new_bytes, old_bytes);
    EXPECT_EQ(u32_at(new_bytes, 8) & 0x0FFFFFFF, 12U) << "kmod 34 puts the root first";
    std::map<std::string, std::vector<std::string>> old_found, new_found;
    dump(old_bytes, u32_at(old_bytes, 8), "", old_found, IndexLayout::ChildrenFirst);
    dump(new_bytes, u32_at(new_bytes, 8), "", new_found, IndexLayout::ParentFirst);
    EXPECT_EQ(new_found, old_found);
    EXPECT_EQ(new_found.size(), entries.size() - 1);
}

TEST(IndexWriter, AKeyPrefixGivenOnceMakesTheBytesOfKeysThatEachStartWithIt)
{
    // Names that share more than the prefix, one that is a prefix of others, one empty.
    const std::vector<std::string> names = {"",       "a",     "ab",        "abc", "abd", "b",
                                            "printk", "print", "prio_tree", "zz",  "ab"};
    for (IndexLayout layout : {IndexLayout::ChildrenFirst, IndexLayout::ParentFirst}) {
        // The writer borrows keys and values: they live as long as it does.
        std::vector<std::string> keys, values;
        for (size_t i = 0; i < names.size(); ++i) {
            keys.push_back("symbol:" + names[i]);
            values.push_back("mod" + std::to_string(i % 3));
        }
        IndexWriter whole(layout);
        IndexWriter prefixed(layout, "symbol:");
        for (size_t i = 0; i < names.size(); ++i) {
            const auto priority = static_cast<uint32_t>(i % 2);
            ASSERT_TRUE(whole.add(keys[i], values[i], priority));
            ASSERT_TRUE(prefixed.add(names[i], values[i], priority));
        }
        const std::string bytes = whole.serialize();
        EXPECT_EQ(prefixed.serialize(), bytes);
        std::map<std::string, std::vector<std::string>> found;
        dump(bytes, u32_at(bytes, 8), "", found, layout);
        EXPECT_EQ(found.size(), names.size() - 1);
        EXPECT_EQ(found.count("symbol:prio_tree"), 1U);
        EXPECT_TRUE(prefixed.duplicates().empty()) << "the two \"ab\" have other values";
    }
}

TEST(IndexWriter, AnEmptyParentFirstIndexIsTheSameHeader)
{
    IndexWriter parent_first(IndexLayout::ParentFirst);
    EXPECT_EQ(parent_first.serialize(), IndexWriter().serialize());
}

TEST(IndexWriter, ValuesAreOrderedByPriorityAndTheLastAddedFirstAmongEquals)
{
    IndexWriter writer;
    writer.add("key", "first", 5);
    writer.add("key", "second", 5);
    writer.add("key", "low", 1);
    writer.add("key", "high", 9);
    std::string data = writer.serialize();
    std::map<std::string, std::vector<std::string>> found;
    dump(data, u32_at(data, 8), "", found);
    EXPECT_EQ(found["key"], (std::vector<std::string>{"1:low", "5:second", "5:first", "9:high"}));
}

TEST(IndexWriter, NonAsciiKeysAreRefused)
{
    IndexWriter writer;
    EXPECT_FALSE(writer.add("caf\xC3\xA9", "x", 0));
    EXPECT_FALSE(writer.add("ok", "v\xFF", 0));
    EXPECT_TRUE(writer.add("ok", "v", 0));
}

TEST(IndexWriter, DuplicatePairsAreListedOnce)
{
    IndexWriter writer;
    writer.add("a", "x", 0);
    writer.add("a", "x", 1);
    writer.add("a", "x", 2);
    writer.add("a", "y", 0);
    auto dups = writer.duplicates();
    ASSERT_EQ(dups.size(), 1U);
    EXPECT_EQ(dups[0].first, "a");
    EXPECT_EQ(dups[0].second, "x");
}

} // namespace
} // namespace kmodd::depmod
