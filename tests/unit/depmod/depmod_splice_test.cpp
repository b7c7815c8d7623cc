// SPDX-License-Identifier: LGPL-2.1-or-later
// A run after a few modules changed what they import or their aliases, not what they export:
// the outputs made from the last run's graph and files (Depmod's splice) are what kmod's depmod
// writes, and anything the splice cannot vouch for is left to a full run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "depmod/depmod.hpp"
#include "depmod/output_state.hpp"
#include "depmod_runs.hpp"

namespace kmodd::depmod {
namespace {

using namespace testing_support;
using index::Diagnostic;
using index::Diagnostics;

/// A tree whose runs say nothing (a splice needs that): a module exporting two symbols, one
/// importing them, a leaf importing symbols nobody exports, and one with a device name.
void populate_quiet(const TempTree& tree)
{
    tree.add("kernel/lib/crc_helper.ko", fixture("crc_helper"));
    tree.add("kernel/lib/versioned.ko", fixture("versioned"));
    tree.add("kernel/x/leaf.ko", fixture("mod3"));
    tree.add("kernel/y/dash.ko", fixture("mod_dash"));
    tree.write("modules.order", "kernel/lib/versioned.ko\nkernel/x/leaf.ko\n");
    tree.write("modules.builtin", "kernel/lib/builtin.ko\n");
    tree.write("modules.builtin.modinfo", std::string("builtin.alias=builtin-alias\0", 28));
}

/// How a run like `kmodctl depmod` went: spliced, proven current, or a full run.
enum class Went { Spliced, Proven, Full };

Went run_as_kmodctl(const DepmodOptions& options, Diagnostics& said)
{
    said.clear();
    auto engine = Depmod::create(options, said);
    EXPECT_TRUE(engine);
    if (!engine)
        return Went::Full;
    if ((*engine)->outputs_are_current(said))
        return (*engine)->files_spliced() > 0 ? Went::Spliced : Went::Proven;
    EXPECT_TRUE((*engine)->scan(said)) << join(said);
    EXPECT_TRUE((*engine)->write(said)) << join(said);
    return Went::Full;
}

struct Splice : ::testing::Test {
    void SetUp() override
    {
        populate_quiet(tree);
        options = options_for(tree);
        cache_dir = tree.root().string() + "-cache";
        options.parse_cache = parse_cache_path(cache_dir, options);
        ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
        ASSERT_EQ(run_as_kmodctl(options, said), Went::Full);
        ASSERT_TRUE(said.empty()) << join(said);
    }
    void TearDown() override { test::run_shell("rm -rf '" + cache_dir + "'"); }

    /// `file` gets `content`'s bytes; then a pause, so that the change is not racy.
    void change(const std::string& file, const std::string& content)
    {
        tree.add(file, fixture(content));
        ::sleep(3);
    }
    void expect_kmods_outputs()
    {
        auto kmod = run_kmod(tree);
        ASSERT_EQ(kmod.status, 0) << kmod.output;
        expect_identical(read_outputs(options.output_dir + "/lib/modules/" + tree.version()),
                         kmod.files);
    }

    TempTree tree;
    DepmodOptions options;
    std::string cache_dir;
    Diagnostics said;
};

TEST_F(Splice, AModuleThatImportsOtherSymbolsAndHasOtherAliasesIsSplicedIntoKmodsOutputs)
{
    // The leaf gets versioned's content: it needs crc_helper now, and has no alias any more.
    change("kernel/x/leaf.ko", "versioned");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Spliced) << join(said);
    EXPECT_TRUE(said.empty()) << join(said);
    expect_kmods_outputs();
    // And back: the alias again, no dependency. The next run finds nothing to do.
    change("kernel/x/leaf.ko", "mod3");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Spliced) << join(said);
    expect_kmods_outputs();
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Proven) << join(said);
}

TEST_F(Splice, AVerboseRunSaysTheDependenciesAFullRunSays)
{
    options.verbose = true;
    ASSERT_EQ(run_as_kmodctl(options, said), Went::Full) << "-v needs a -v run's state";
    change("kernel/x/leaf.ko", "versioned");
    ASSERT_EQ(run_as_kmodctl(options, said), Went::Spliced) << join(said);
    const Diagnostics spliced = said;
    expect_kmods_outputs();
    auto full = run_ours(options);
    ASSERT_TRUE(full.ok);
    EXPECT_EQ(join(spliced), join(full.diagnostics));
    EXPECT_EQ(std::count_if(spliced.begin(), spliced.end(),
                            [](const Diagnostic& d) {
                                return d.message.find("leaf.ko needs \"crc_helper_fn\"") !=
                                       std::string::npos;
                            }),
              1)
        << join(spliced);
}

TEST_F(Splice, WhatReachesBeyondImportsAndAliasesIsLeftToAFullRun)
{
    // Exports: who owns a symbol may change.
    change("kernel/x/leaf.ko", "crc_helper");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Full);
    expect_kmods_outputs();
    // A device name (modules.devname is kept by a splice).
    change("kernel/x/leaf.ko", "mod_dash");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Full);
    expect_kmods_outputs();
    // A module that is not there any more: the graph names other files.
    change("kernel/x/leaf.ko", "mod3");
    ASSERT_EQ(run_as_kmodctl(options, said), Went::Full);
    std::filesystem::remove(tree.module_dir() / "kernel/y/dash.ko");
    change("kernel/x/leaf.ko", "versioned");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Full);
    expect_kmods_outputs();
}

TEST_F(Splice, AStateWithoutAGraphOrWithOutputsChangedOnDiskGetsAFullRun)
{
    const std::string state_path = output_state_path(options.parse_cache);
    auto state = OutputState::load(state_path);
    ASSERT_TRUE(state);
    ASSERT_FALSE(state->graph.empty());
    EXPECT_EQ(state->graph.files.size(), 4U);
    state->graph = OutputState::Graph();
    ASSERT_TRUE(state->save(state_path));
    change("kernel/x/leaf.ko", "versioned");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Full);
    expect_kmods_outputs();

    // modules.alias is read, and modules.symbols.bin too: another byte there, and a full run.
    const std::string dir = options.output_dir + "/lib/modules/" + tree.version();
    std::string alias = test::slurp(dir + "/modules.alias");
    ASSERT_FALSE(alias.empty());
    alias.back() = ' ';
    std::ofstream(dir + "/modules.alias", std::ios::binary | std::ios::trunc) << alias;
    change("kernel/x/leaf.ko", "mod3");
    EXPECT_EQ(run_as_kmodctl(options, said), Went::Full);
    expect_kmods_outputs();
}

} // namespace
} // namespace kmodd::depmod
