// SPDX-License-Identifier: LGPL-2.1-or-later
// The index service on temporary trees, driven by hand-made change sets: which versions it
// indexes, when it writes, and that what it writes is kmod's depmod output.
#include <gtest/gtest.h>

#include <algorithm>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/index_service.hpp"
#include "service_support.hpp"

namespace kmodd::service {
namespace {

using test::TempTree;
using test_support::expect_same_as_kmod;
using test_support::fixture;
using test_support::options_for;
namespace fs = test::fs;
using Action = VersionReport::Action;

void populate(const TempTree& tree)
{
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    tree.add("kernel/a/mod2.ko", fixture("mod2"));
    tree.add("kernel/b/mod3.ko", fixture("mod3"));
    tree.add("kernel/drivers/blockdev.ko", fixture("blockdev"));
    tree.write("modules.order", "kernel/a/mod2.ko\nkernel/a/mod1.ko\n");
}

ChangeSet paths(const std::string& version, std::set<std::string> changed)
{
    ChangeSet changes;
    changes.versions[version].paths = std::move(changed);
    return changes;
}

int64_t mtime_ns(const fs::path& file)
{
    struct stat st {};
    if (::stat(file.c_str(), &st) < 0)
        return -1;
    return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

TEST(IndexService, StartWritesAMissingIndexAndItIsKmods)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].version, tree.version());
    EXPECT_EQ(reports[0].action, Action::Written) << reports[0].error.message;
    EXPECT_TRUE(reports[0].was_full_walk);
    EXPECT_EQ(reports[0].generation, 1U);
    EXPECT_EQ(reports[0].modules, 4U);
    EXPECT_EQ(reports[0].stats.files_written, kmodd::test::oracle_output_count());
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, StartLeavesACurrentIndexAlone)
{
    TempTree tree;
    populate(tree);
    ASSERT_EQ(test::run_shell("/usr/sbin/depmod -C /dev/null -b '" + tree.root().string() + "' " +
                              tree.version()),
              0);
    const int64_t before = mtime_ns(tree.module_dir() / "modules.dep");
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Current);
    EXPECT_EQ(reports[0].modules, 4U) << "indexed in memory all the same";
    EXPECT_EQ(mtime_ns(tree.module_dir() / "modules.dep"), before);

    // The files on disk count as published: a change then rewrites only what it changes.
    const int64_t softdep_before = mtime_ns(tree.module_dir() / "modules.softdep");
    tree.add("extra/mod-dash.ko", fixture("mod_dash"));
    auto changed =
        service.apply(paths(tree.version(), {(tree.module_dir() / "extra/mod-dash.ko").string()}));
    ASSERT_EQ(changed.size(), 1U);
    EXPECT_LT(changed[0].stats.files_written, 10U);
    EXPECT_EQ(mtime_ns(tree.module_dir() / "modules.softdep"), softdep_before);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, StartRewritesAnIndexThatNamesADeletedModule)
{
    TempTree tree;
    populate(tree);
    ASSERT_EQ(test::run_shell("/usr/sbin/depmod -C /dev/null -b '" + tree.root().string() + "' " +
                              tree.version()),
              0);
    // Deletions leave modules.dep newer than every module: depmod -A would call it current.
    fs::remove(tree.module_dir() / "kernel/b/mod3.ko");
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written);
    EXPECT_EQ(tree.read("modules.dep").find("mod3"), std::string::npos);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, TempFilesThatAKilledRunLeftAreRemovedAtStart)
{
    TempTree tree;
    populate(tree);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0)
        ::_exit(0);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    const std::string stale = ".modules.dep.bin.kmodd-" + std::to_string(child) + "-4";
    tree.write(stale, "half a file");
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written);
    EXPECT_FALSE(fs::exists(tree.module_dir() / stale));
    bool said = false;
    for (const auto& d : reports[0].diagnostics)
        said |= d.message ==
                "removed 1 temporary file that a killed run left in " + tree.module_dir().string();
    EXPECT_TRUE(said);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, AReleaseDirectoryHoldingOnlyLinkedModulesIsIndexedAsKmodIndexesIt)
{
    TempTree tree;
    populate(tree);
    // A developer's tree: no kernel/, no modules.order or modules.builtin, only links.
    const fs::path outside = tree.root() / "home/dev";
    fs::create_directories(outside);
    fs::copy_file(fixture("mod1"), outside / "mod1.ko");
    fs::copy_file(fixture("mod2"), outside / "mod2.ko");
    const fs::path extra = tree.root() / "lib/modules/6.1.0-dev/extra";
    fs::create_directories(extra);
    fs::create_symlink(outside / "mod1.ko", extra / "mod1.ko");
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 2U);
    std::vector<std::string> expected{"6.1.0-dev", tree.version()};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(service.versions(), expected);
    expect_same_as_kmod(tree.root(), "6.1.0-dev");

    // A module linked in later is indexed too.
    fs::create_symlink(outside / "mod2.ko", extra / "mod2.ko");
    reports = service.apply(paths("6.1.0-dev", {(extra / "mod2.ko").string()}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written) << reports[0].error.message;
    EXPECT_NE(test::slurp(extra.parent_path() / "modules.dep").find("extra/mod2.ko:"),
              std::string::npos);
    expect_same_as_kmod(tree.root(), "6.1.0-dev");
}

TEST(IndexService, AReleaseDirectoryWithoutModulesGetsNoIndexUntilOneIsLinkedIn)
{
    TempTree tree;
    populate(tree);
    const fs::path dir = tree.root() / "lib/modules/6.1.0-next";
    fs::create_directories(dir / "updates");
    // The kernel's sources are no modules of the release, whatever they hold.
    const fs::path sources = tree.root() / "usr/src/linux-6.1.0-next";
    fs::create_directories(sources);
    fs::copy_file(fixture("mod3"), sources / "mod3.ko");
    fs::create_directory_symlink(sources, dir / "source");
    fs::create_directory_symlink(sources, dir / "build");
    IndexService service(options_for(tree.root()));
    auto reports = service.start();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(service.versions(), std::vector<std::string>{tree.version()});
    EXPECT_FALSE(fs::exists(dir / "modules.dep"));
    EXPECT_TRUE(service.apply(paths("6.1.0-next", {(dir / "updates").string()})).empty());

    fs::create_symlink(sources / "mod3.ko", dir / "updates/mod3.ko");
    reports = service.apply(paths("6.1.0-next", {(dir / "updates/mod3.ko").string()}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written) << reports[0].error.message;
    expect_same_as_kmod(tree.root(), "6.1.0-next");
}

TEST(IndexService, AVersionWhoseKernelIsRemovedLosesItsIndexAndIsNotWrittenTo)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    // dpkg removed the package's files; its postrm has not yet removed modules.*.
    fs::remove_all(tree.module_dir() / "kernel");
    fs::remove(tree.module_dir() / "modules.order");
    const int64_t before = mtime_ns(tree.module_dir() / "modules.dep");
    auto reports = service.apply(paths(tree.version(), {(tree.module_dir() / "kernel").string()}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Removed);
    EXPECT_TRUE(service.versions().empty());
    EXPECT_EQ(mtime_ns(tree.module_dir() / "modules.dep"), before);
}

TEST(IndexService, AChangedPathIsAppliedAloneAndWritten)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    tree.add("extra/mod-dash.ko", fixture("mod_dash"));
    auto reports =
        service.apply(paths(tree.version(), {(tree.module_dir() / "extra/mod-dash.ko").string()}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written) << reports[0].error.message;
    EXPECT_FALSE(reports[0].was_full_walk);
    EXPECT_EQ(reports[0].stats.files_parsed, 1U);
    EXPECT_EQ(reports[0].generation, 2U);
    EXPECT_EQ(reports[0].modules, 5U);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, AChangeThatLeavesTheModuleSetAloneWritesNothing)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    const int64_t before = mtime_ns(tree.module_dir() / "modules.dep");
    auto reports =
        service.apply(paths(tree.version(), {(tree.module_dir() / "kernel/a/mod1.ko").string()}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Unchanged);
    EXPECT_EQ(reports[0].generation, 1U);
    EXPECT_EQ(mtime_ns(tree.module_dir() / "modules.dep"), before);
}

TEST(IndexService, ManyPathsInOneVersionBecomeOneWalk)
{
    TempTree tree;
    populate(tree);
    ServiceOptions options = options_for(tree.root());
    options.full_walk_threshold = 3;
    IndexService service(options);
    (void)service.start();
    std::set<std::string> changed;
    for (int i = 0; i < 4; ++i) {
        std::string rel = "extra/m" + std::to_string(i) + ".ko";
        tree.add(rel, fixture("devname_only"));
        changed.insert((tree.module_dir() / rel).string());
    }
    auto reports = service.apply(paths(tree.version(), changed));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_TRUE(reports[0].was_full_walk);
    EXPECT_EQ(reports[0].stats.files_parsed, 4U) << "unchanged files are not parsed again";
    EXPECT_EQ(reports[0].modules, 8U);
}

TEST(IndexService, ANewVersionIsIndexedAndAVanishedOneDropped)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    const fs::path other = tree.root() / "lib/modules/2.0.0";
    fs::create_directories(other / "kernel");
    fs::copy_file(fixture("mod1"), other / "kernel/mod1.ko");
    ChangeSet appeared;
    appeared.versions["2.0.0"].rescan = true;
    auto reports = service.apply(appeared);
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written);
    EXPECT_EQ(service.versions(), (std::vector<std::string>{tree.version(), "2.0.0"}));
    EXPECT_EQ(test::slurp(other / "modules.dep"), "kernel/mod1.ko:\n");

    fs::remove_all(tree.module_dir());
    ChangeSet vanished;
    vanished.versions[tree.version()].rescan = true;
    reports = service.apply(vanished);
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Removed);
    EXPECT_EQ(service.versions(), std::vector<std::string>{"2.0.0"});
}

TEST(IndexService, ARescanOfEverythingFindsWhatNobodyReported)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    tree.add("kernel/unreported.ko", fixture("devname_only"));
    ChangeSet lost;
    lost.rescan_all = true;
    auto reports = service.apply(lost);
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_TRUE(reports[0].was_full_walk);
    EXPECT_EQ(reports[0].action, Action::Written);
    EXPECT_NE(tree.read("modules.dep").find("kernel/unreported.ko:"), std::string::npos);
}

TEST(IndexService, AFailedWriteIsRetriedByTheNextBatch)
{
    TempTree tree;
    populate(tree);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    tree.add("kernel/late.ko", fixture("devname_only"));
    const std::string late = (tree.module_dir() / "kernel/late.ko").string();
    // A directory where the output file goes makes the rename fail.
    fs::remove(tree.module_dir() / "modules.dep");
    fs::create_directories(tree.module_dir() / "modules.dep/blocker");
    auto reports = service.apply(paths(tree.version(), {late}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Failed);
    EXPECT_FALSE(reports[0].error.message.empty());

    fs::remove_all(tree.module_dir() / "modules.dep");
    reports = service.apply(paths(tree.version(), {late}));
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].action, Action::Written) << "the index was ahead of the files";
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(IndexService, WatchHintsNameSymlinkedModulesWithTheirTargets)
{
    TempTree tree;
    populate(tree);
    const fs::path target = tree.root() / "home/dev/mine.ko";
    fs::create_directories(target.parent_path());
    fs::copy_file(fixture("mod3"), target);
    tree.link("extra/mine.ko", target);
    IndexService service(options_for(tree.root()));
    (void)service.start();
    auto hints = service.watch_hints();
    ASSERT_EQ(hints.size(), 1U);
    EXPECT_EQ(hints[0].version, tree.version());
    ASSERT_EQ(hints[0].links.size(), 1U);
    EXPECT_EQ(hints[0].links[0].path, (tree.module_dir() / "extra/mine.ko").string());
    EXPECT_EQ(hints[0].links[0].real_path, fs::canonical(target).string());
}

} // namespace
} // namespace kmodd::service
