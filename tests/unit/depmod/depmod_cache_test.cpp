// SPDX-License-Identifier: LGPL-2.1-or-later
// Depmod runs that share a parse cache: whatever the run that wrote it knew, each run writes
// what kmod's depmod writes with the same options, and the cache's symbol table numbers the
// symbols only when it is the run's own.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>

#include "index/parse_cache.hpp"

#include "depmod/depmod.hpp"
#include "depmod/output_state.hpp"
#include "depmod_runs.hpp"

namespace kmodd::depmod {
namespace {

using namespace testing_support;
using index::Diagnostic;
using index::Diagnostics;

struct CachedRun {
    OurRun run;
    size_t hits = 0;     ///< modules taken from the cache
    size_t numbered = 0; ///< of those, numbered by its symbol table
};

CachedRun run_cached(const DepmodOptions& options)
{
    CachedRun cached;
    auto engine = Depmod::create(options, cached.run.diagnostics);
    if (!engine || !(*engine)->scan(cached.run.diagnostics))
        return cached;
    cached.run.ok = (*engine)->write(cached.run.diagnostics).has_value();
    cached.run.files = test::read_outputs((*engine)->output_dir());
    cached.hits = (*engine)->index().cache_hit_count();
    cached.numbered = (*engine)->index().cache_numbered_count();
    // Gone, so that the next run cannot find its outputs current and skip the scan.
    test::run_shell("rm -rf '" + options.output_dir + "'");
    return cached;
}

TEST(DepmodCache, RunsWithOtherSymbolSourcesOrPrefixesShareTheCacheAndWriteWhatKmodWrites)
{
    TempTree tree;
    populate(tree);
    tree.write("/Module.symvers", "0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\n");
    const std::string symvers = tree.root().string() + "/Module.symvers";
    const std::string cache_dir = tree.root().string() + "-cache";
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    struct Step {
        const char* what;
        bool with_symvers;
        char prefix;
        bool numbered; ///< whether the cache's table is this run's
    };
    // -E puts vmlinux's symbols first in the run's table, -P changes every lookup name: a
    // cache written without them (or with them) cannot number a run with them (or without);
    // such a run rewrites the cache with its own table, which the next alike run takes.
    const Step steps[] = {
        {"cold", false, '\0', false},       {"-E after a run without", true, '\0', false},
        {"-E again", true, '\0', true},     {"-P after -E", false, 'p', false},
        {"-P again", false, 'p', true},     {"plain after -P", false, '\0', false},
        {"plain again", false, '\0', true},
    };
    for (const Step& step : steps) {
        SCOPED_TRACE(step.what);
        auto options = options_for(tree);
        options.parse_cache = parse_cache_path(cache_dir, options);
        std::string kmod_options = "-C /dev/null";
        if (step.with_symvers) {
            options.module_symvers = symvers;
            kmod_options += " -E " + symvers;
        }
        if (step.prefix != '\0') {
            options.symbol_prefix = step.prefix;
            kmod_options += std::string(" -P ") + step.prefix;
        }
        auto ours = run_cached(options);
        auto kmod = run_kmod(tree, kmod_options);
        ASSERT_EQ(kmod.status, 0) << kmod.output;
        ASSERT_TRUE(ours.run.ok) << join(ours.run.diagnostics);
        expect_identical(ours.run.files, kmod.files);
        const bool is_cold = &step == &steps[0];
        EXPECT_EQ(ours.hits, is_cold ? 0U : 8U);
        EXPECT_EQ(ours.numbered, step.numbered ? 8U : 0U);
    }
    test::run_shell("rm -rf '" + cache_dir + "'");
}

TEST(DepmodCache, ATableThatNamesManySymbolsNoModuleHasIsNotKeptAndTheNextRunNumbersAfresh)
{
    TempTree tree;
    populate(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    ASSERT_TRUE(run_cached(options).run.ok);
    // Two modules of eight left: most names in the cache's table are no module's any more.
    for (const char* gone :
         {"kernel/a/mod2.ko", "kernel/b/mod3.ko", "kernel/a/mod-dash.ko", "kernel/crc_helper.ko",
          "kernel/versioned.ko", "kernel/drivers/blockdev.ko"})
        ASSERT_EQ(::unlink((tree.module_dir() / gone).c_str()), 0) << gone;
    const size_t expected_numbered[] = {2, 0, 2};
    for (size_t run = 0; run < 3; ++run) {
        SCOPED_TRACE("run " + std::to_string(run) + " after the removal");
        auto ours = run_cached(options);
        ASSERT_TRUE(ours.run.ok) << join(ours.run.diagnostics);
        auto kmod = run_kmod(tree);
        ASSERT_EQ(kmod.status, 0) << kmod.output;
        expect_identical(ours.run.files, kmod.files);
        EXPECT_EQ(ours.hits, 2U);
        // The first still takes the old table, but saves none; the second numbers the
        // symbols itself and saves a table of the names in use, which the third takes.
        EXPECT_EQ(ours.numbered, expected_numbered[run]);
    }
    test::run_shell("rm -rf '" + cache_dir + "'");
}

TEST(DepmodCache, ARescanInTheSameEngineSavesEveryModuleNotOnlyThoseItParsedAgain)
{
    // The daemon scans its tree again (a rescan) with the engine of its first scan: the cache
    // that rescan saves must still hold the modules it found unchanged, or the next start
    // parses them all.
    TempTree tree;
    populate(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    index::Diagnostics said;
    auto engine = Depmod::create(options, said);
    ASSERT_TRUE(engine);
    ASSERT_TRUE((*engine)->scan(said));
    ASSERT_TRUE((*engine)->write(said));
    // One module's key changes (its content is the same): the rescan parses it alone.
    const std::string touched = (tree.module_dir() / "kernel/a/mod2.ko").string();
    ASSERT_EQ(::utimensat(AT_FDCWD, touched.c_str(), nullptr, 0), 0);
    ::sleep(3);
    const size_t parsed_before = (*engine)->index().parse_count();
    ASSERT_TRUE((*engine)->scan(said));
    EXPECT_EQ((*engine)->index().parse_count() - parsed_before, 1U);
    ASSERT_TRUE((*engine)->write(said));
    engine->reset(); // waits for the cache's save

    auto next = run_cached(options);
    ASSERT_TRUE(next.run.ok) << join(next.run.diagnostics);
    EXPECT_EQ(next.hits, 8U);
    EXPECT_EQ(next.numbered, 8U);
    auto kmod = run_kmod(tree);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    expect_identical(next.run.files, kmod.files);
    test::run_shell("rm -rf '" + cache_dir + "'");
}

TEST(DepmodCache, AFewChangedModulesGoIntoTheCachesDeltaWhichTheNextRunTakesAndABadOneIsRewritten)
{
    // 18 modules: one changed is few enough (at most one in 16) to go into the delta.
    TempTree tree;
    populate(tree);
    for (int i = 0; i < 10; ++i)
        tree.add("kernel/extra/copy" + std::to_string(i) + ".ko", fixture("mod3"));
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    const std::string delta = index::ParseCache::delta_path(options.parse_cache);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    ASSERT_TRUE(run_cached(options).run.ok);
    const std::string whole = test::slurp(options.parse_cache);
    ASSERT_FALSE(whole.empty());
    EXPECT_FALSE(test::fs::exists(delta));

    // mod2 gets other content: its aliases and symbols change, and the outputs with them.
    tree.add("kernel/a/mod2.ko", fixture("crc_helper"));
    ::sleep(3);
    auto changed = run_cached(options);
    ASSERT_TRUE(changed.run.ok) << join(changed.run.diagnostics);
    auto kmod = run_kmod(tree);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    expect_identical(changed.run.files, kmod.files);
    EXPECT_EQ(changed.hits, 17U);
    EXPECT_EQ(test::slurp(options.parse_cache), whole) << "the whole cache was written again";
    EXPECT_TRUE(test::fs::exists(delta));

    // The next run takes all 18 from the cache, mod2 from the delta (its names looked up).
    auto next = run_cached(options);
    ASSERT_TRUE(next.run.ok) << join(next.run.diagnostics);
    expect_identical(next.run.files, kmod.files);
    EXPECT_EQ(next.hits, 18U);
    EXPECT_EQ(next.numbered, 17U);

    // A torn delta: the cache is ignored with a warning naming the delta, rewritten whole,
    // and the delta goes.
    const std::string delta_bytes = test::slurp(delta);
    std::ofstream(delta, std::ios::binary | std::ios::trunc)
        << delta_bytes.substr(0, delta_bytes.size() / 2);
    auto torn = run_cached(options);
    ASSERT_TRUE(torn.run.ok) << join(torn.run.diagnostics);
    expect_identical(torn.run.files, kmod.files);
    EXPECT_EQ(torn.hits, 0U);
    EXPECT_NE(join(torn.run.diagnostics).find(".delta"), std::string::npos)
        << join(torn.run.diagnostics);
    EXPECT_FALSE(test::fs::exists(delta));
    auto after = run_cached(options);
    EXPECT_EQ(after.hits, 18U);
    EXPECT_EQ(after.numbered, 18U);
    test::run_shell("rm -rf '" + cache_dir + "'");
}

/// Runs `options` as `kmodctl depmod` does: nothing but the proof when the outputs are
/// current (true), else a scan and a write. Its diagnostics go into `said`.
bool run_proven(const DepmodOptions& options, Diagnostics& said)
{
    said.clear();
    auto engine = Depmod::create(options, said);
    if (!engine)
        return false;
    if ((*engine)->outputs_are_current(said))
        return true;
    EXPECT_TRUE((*engine)->scan(said));
    EXPECT_TRUE((*engine)->write(said));
    return false;
}

size_t info_lines(const Diagnostics& said)
{
    return static_cast<size_t>(std::count_if(said.begin(), said.end(), [](const Diagnostic& d) {
        return d.level == Diagnostic::Level::Info;
    }));
}

TEST(DepmodCache, AVerboseRunsStateProvesARunWithoutVerboseWhichLeavesItsInfoLinesOut)
{
    TempTree tree;
    populate(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    Diagnostics said;
    options.verbose = true;
    ASSERT_FALSE(run_proven(options, said));
    const size_t edges = info_lines(said);
    ASSERT_GT(edges, 0U) << "-v says each dependency";

    // Without -v: proven by the -v run's state, and none of its INFO lines said.
    options.verbose = false;
    EXPECT_TRUE(run_proven(options, said)) << join(said);
    EXPECT_EQ(info_lines(said), 0U) << join(said);
    // That proof saved nothing: the state is still the -v run's, which proves a -v run.
    options.verbose = true;
    EXPECT_TRUE(run_proven(options, said)) << join(said);
    EXPECT_EQ(info_lines(said), edges) << join(said);

    // A run without -v that did the work saves a state without the INFO lines: a -v run
    // does the work again, and says them.
    tree.add("kernel/a/mod2.ko", fixture("crc_helper"));
    ::sleep(3);
    options.verbose = false;
    EXPECT_FALSE(run_proven(options, said));
    options.verbose = true;
    EXPECT_FALSE(run_proven(options, said));
    EXPECT_GT(info_lines(said), 0U);
    test::run_shell("rm -rf '" + cache_dir + "'");
}

/// Runs `options` as `kmodctl depmod` does; what its write() counted, or nullopt when the
/// outputs were proven current.
std::optional<GenerationStats> run_counted(const DepmodOptions& options, Diagnostics& said)
{
    said.clear();
    auto engine = Depmod::create(options, said);
    if (!engine || (*engine)->outputs_are_current(said))
        return std::nullopt;
    EXPECT_TRUE((*engine)->scan(said)) << join(said);
    auto stats = (*engine)->write(said);
    EXPECT_TRUE(stats) << join(said);
    return stats ? std::optional(*stats) : std::nullopt;
}

/// Where a run with `options` (-o) writes.
std::string written_to(const DepmodOptions& options)
{
    return options.output_dir + "/lib/modules/" + options.kernel_version;
}

TEST(DepmodCache, SymbolFilesWhoseInputsStayedAreKeptUnlessTheDiskHoldsOtherBytes)
{
    TempTree tree;
    populate(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    Diagnostics said;
    auto cold = run_counted(options, said);
    ASSERT_TRUE(cold);
    EXPECT_EQ(cold->files_kept, 0U);

    // devname_only gets blockdev's content: other aliases, and neither exports a symbol.
    tree.add("kernel/drivers/devname_only.ko", fixture("blockdev"));
    ::sleep(3);
    auto kept = run_counted(options, said);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->files_kept, 2U) << "modules.symbols and modules.symbols.bin";
    auto kmod = run_kmod(tree);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    expect_identical(read_outputs(written_to(options)), kmod.files);

    // A modules.symbols changed on disk (same size) is made again; the index stays.
    const std::string symbols = written_to(options) + "/modules.symbols";
    std::string bytes = test::slurp(symbols);
    ASSERT_GT(bytes.size(), 2U);
    bytes[bytes.size() - 2] ^= 1;
    std::ofstream(symbols, std::ios::binary | std::ios::trunc) << bytes;
    tree.add("kernel/drivers/devname_only.ko", fixture("devname_only"));
    ::sleep(3);
    auto edited = run_counted(options, said);
    ASSERT_TRUE(edited);
    EXPECT_EQ(edited->files_kept, 1U);
    kmod = run_kmod(tree);
    expect_identical(read_outputs(written_to(options)), kmod.files);

    // mod2 gets crc_helper's content: what it exports changes, and both files are made.
    tree.add("kernel/a/mod2.ko", fixture("crc_helper"));
    ::sleep(3);
    auto exports = run_counted(options, said);
    ASSERT_TRUE(exports);
    EXPECT_EQ(exports->files_kept, 0U);
    kmod = run_kmod(tree);
    expect_identical(read_outputs(written_to(options)), kmod.files);
    test::run_shell("rm -rf '" + cache_dir + "'");
}

TEST(DepmodCache, TheKeptAliasOrderIsTheOneASortGivesAndAWrongOneIsSortedAgain)
{
    TempTree tree;
    populate(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    auto options = options_for(tree);
    options.parse_cache = parse_cache_path(cache_dir, options);
    const std::string state_path = output_state_path(options.parse_cache);
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    Diagnostics said;
    ASSERT_TRUE(run_counted(options, said));
    auto cold = OutputState::load(state_path);
    ASSERT_TRUE(cold) << cold.error().message;
    const AliasOrder& order = cold->alias_order;
    ASSERT_EQ(order.starts.size(), 9U) << "eight modules";
    ASSERT_EQ(order.sorted.size(), order.starts.back());
    EXPECT_GT(order.sorted.size(), 8U);

    // One module gains two aliases: the others' order is taken, its aliases merged in, and
    // what is saved is what a run without a kept order saves.
    tree.add("kernel/drivers/devname_only.ko", fixture("blockdev"));
    ::sleep(3);
    ASSERT_TRUE(run_counted(options, said));
    auto kmod = run_kmod(tree);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    expect_identical(read_outputs(written_to(options)), kmod.files);
    auto merged = OutputState::load(state_path);
    ASSERT_TRUE(merged);
    EXPECT_EQ(merged->alias_order.sorted.size(), order.sorted.size() + 2);
    ASSERT_EQ(::unlink(state_path.c_str()), 0);
    ASSERT_TRUE(run_counted(options, said));
    auto sorted = OutputState::load(state_path);
    ASSERT_TRUE(sorted);
    EXPECT_EQ(merged->alias_order, sorted->alias_order);

    // An order that is well formed but wrong (backwards) gives kmod's bytes all the same.
    std::reverse(sorted->alias_order.sorted.begin(), sorted->alias_order.sorted.end());
    ASSERT_TRUE(sorted->save(state_path));
    tree.add("kernel/drivers/devname_only.ko", fixture("devname_only"));
    ::sleep(3);
    ASSERT_TRUE(run_counted(options, said));
    kmod = run_kmod(tree);
    expect_identical(read_outputs(written_to(options)), kmod.files);
    auto again = OutputState::load(state_path);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->alias_order.sorted, order.sorted) << "the tree the cold run saw";
    test::run_shell("rm -rf '" + cache_dir + "'");
}

} // namespace
} // namespace kmodd::depmod
