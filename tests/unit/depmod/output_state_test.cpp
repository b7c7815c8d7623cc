// SPDX-License-Identifier: LGPL-2.1-or-later
// The output state file: what goes in comes out, and a damaged file is an error, never a state
// that could make a run skip its work.
#include "depmod/output_state.hpp"

#include <dirent.h>

#include <cstring>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace {

using kmodd::depmod::OutputState;
using kmodd::index::Diagnostic;

OutputState sample()
{
    OutputState state;
    state.inputs = 0x0123456789abcdefULL;
    state.modules = 0xfedcba9876543210ULL;
    state.module_count = 4023;
    state.files = {{"modules.dep", 526626, 0x1111}, {"modules.alias.bin", 1262393, 0x2222}};
    state.diagnostics = {{Diagnostic::Level::Warning, "could not open modules.builtin at /x"},
                         {Diagnostic::Level::Info, "a needs \"b\": c"}};
    state.keys_since_ns = 1764000000123456789;
    state.symbols = 0x5a5a0000a5a5ffffULL;
    state.renewed = {{"/lib/modules/6.1.0/kernel/fs/btrfs/btrfs.ko",
                      {2049, 131, 3872217, 1764000000000000000, 1764000000000000001, ""},
                      {2049, 130, 3872217, 1763000000000000000, 1763000000000000001, ""}},
                     {"/lib/modules/6.1.0/updates/dkms/x.ko",
                      {2049, 7, 1000, 5, 6, "/usr/src/x/x.ko"},
                      {2049, 7, 999, 3, 4, "/usr/src/x/x.ko"}}};
    state.listings = {{"/lib/modules/6.1.0",
                       {2049, 12, 4096, 1764000000000000000, 1764000000000000002},
                       {{"kernel", DT_DIR, true}, {"updates", DT_LNK, true}}},
                      {"/lib/modules/6.1.0/updates",
                       {2049, 99, 4096, 7, 8},
                       {{"x.ko", DT_LNK, false}, {"y.ko.xz", DT_REG, false}}}};
    state.graph.walk_digest = 0x77;
    state.graph.files = {3, 0, 4022};
    state.graph.dep_starts = {0, 1, 1, 3};
    state.graph.deps = {1, 0, 1};
    return state;
}

void expect_same(const OutputState& a, const OutputState& b)
{
    EXPECT_EQ(a.inputs, b.inputs);
    EXPECT_EQ(a.modules, b.modules);
    EXPECT_EQ(a.module_count, b.module_count);
    EXPECT_EQ(a.keys_since_ns, b.keys_since_ns);
    EXPECT_EQ(a.symbols, b.symbols);
    EXPECT_EQ(a.files, b.files);
    EXPECT_EQ(a.renewed, b.renewed);
    EXPECT_EQ(a.listings, b.listings);
    EXPECT_EQ(a.alias_order, b.alias_order);
    EXPECT_EQ(a.graph, b.graph);
    ASSERT_EQ(a.diagnostics.size(), b.diagnostics.size());
    for (size_t i = 0; i < a.diagnostics.size(); ++i) {
        EXPECT_EQ(a.diagnostics[i].level, b.diagnostics[i].level);
        EXPECT_EQ(a.diagnostics[i].message, b.diagnostics[i].message);
    }
}

TEST(OutputState, WhatIsSavedIsReadBack)
{
    auto read = OutputState::parse(sample().serialize());
    ASSERT_TRUE(read) << read.error().message;
    expect_same(*read, sample());
}

TEST(OutputState, EveryTruncationAndEveryFlippedByteIsRefused)
{
    const std::string whole = sample().serialize();
    for (size_t size = 0; size < whole.size(); ++size)
        EXPECT_FALSE(OutputState::parse(whole.substr(0, size))) << "cut at " << size;
    for (size_t at = 0; at < whole.size(); ++at) {
        std::string damaged = whole;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
        EXPECT_FALSE(OutputState::parse(damaged)) << "byte " << at;
    }
}

// A listing's names are joined to its directory's path by the next walk: a damaged or hostile
// state must not lead it out of the directory.
TEST(OutputState, AListingEntryThatIsNotOneNameInItsDirectoryIsRefused)
{
    const std::string names[] = {"", ".", "..", "../../etc", "a/b", std::string("a\0b", 3)};
    for (const std::string& name : names) {
        OutputState state = sample();
        state.listings[1].entries[0].name = name;
        EXPECT_FALSE(OutputState::parse(state.serialize())) << name;
    }
    OutputState relative = sample();
    relative.listings[0].path = "lib/modules/6.1.0";
    EXPECT_FALSE(OutputState::parse(relative.serialize()));
}

// The graph numbers the files of the walk and the modules of the graph: a damaged or hostile
// state must not make a run read past either.
TEST(OutputState, AGraphThatNamesAFileOrModuleThatIsNotThereIsRefused)
{
    auto refused = [](auto change) {
        OutputState state = sample();
        change(state.graph);
        return !OutputState::parse(state.serialize());
    };
    using Graph = OutputState::Graph;
    EXPECT_TRUE(refused([](Graph& g) { g.files[2] = 4023; }));
    EXPECT_TRUE(refused([](Graph& g) { g.files[1] = 3; }));
    EXPECT_TRUE(refused([](Graph& g) { g.deps[0] = 3; }));
    EXPECT_TRUE(refused([](Graph& g) { g.dep_starts = {0, 2, 1, 3}; }));
    EXPECT_TRUE(refused([](Graph& g) { g.dep_starts = {0, 1, 1, 2}; }));
    EXPECT_TRUE(refused([](Graph& g) { g.dep_starts.pop_back(); }));
    EXPECT_TRUE(refused([](Graph& g) { g.dep_starts.clear(); }));
    EXPECT_FALSE(refused([](Graph& g) { g = Graph(); })) << "none at all";
}

TEST(OutputState, AnotherFormatVersionIsRefusedWithTheReason)
{
    std::string bytes = sample().serialize();
    const uint32_t future = 99;
    std::memcpy(bytes.data() + 8, &future, sizeof future);
    auto read = OutputState::parse(bytes);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().message.find("format version 99"), std::string::npos)
        << read.error().message;
}

TEST(OutputState, LivesBesideTheParseCache)
{
    EXPECT_EQ(kmodd::depmod::output_state_path("/var/cache/kmodd/6.1.0/modules.cache"),
              "/var/cache/kmodd/6.1.0/outputs.state");
}

} // namespace
