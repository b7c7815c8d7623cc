// SPDX-License-Identifier: LGPL-2.1-or-later
// The tree watcher on temporary trees with real inotify: what it reports, under which kernel
// version and path, what it ignores, and which directories it keeps watching.
#include <gtest/gtest.h>

#include "service/tree_watcher.hpp"
#include "service_support.hpp"

namespace kmodd::service {
namespace {

using namespace std::chrono_literals;
using test::TempTree;
using test_support::collect;
namespace fs = test::fs;

std::unique_ptr<TreeWatcher> watch(const TempTree& tree)
{
    auto watcher = TreeWatcher::create({(tree.root() / "lib/modules").string()});
    EXPECT_TRUE(watcher.has_value()) << (watcher ? "" : watcher.error().message);
    return watcher ? std::move(*watcher) : nullptr;
}

std::set<std::string> paths_of(const ChangeSet& changes, const std::string& version)
{
    auto it = changes.versions.find(version);
    return it == changes.versions.end() ? std::set<std::string>{} : it->second.paths;
}

TEST(TreeWatcher, ReportsANewModuleFileUnderItsKernelVersionAndPath)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel/a");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    tree.write("kernel/a/new.ko", "x");
    auto changes = collect(*watcher);
    EXPECT_FALSE(changes.rescan_all);
    ASSERT_EQ(changes.versions.size(), 1U);
    EXPECT_FALSE(changes.versions.begin()->second.rescan);
    EXPECT_EQ(paths_of(changes, tree.version()),
              std::set<std::string>{(tree.module_dir() / "kernel/a/new.ko").string()});
}

TEST(TreeWatcher, ReportsRenamesDeletionsAndCompressedModules)
{
    TempTree tree;
    tree.write("kernel/old.ko", "x");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    tree.write("kernel/tmp.part", "x");
    fs::rename(tree.module_dir() / "kernel/tmp.part", tree.module_dir() / "kernel/renamed.ko.xz");
    fs::remove(tree.module_dir() / "kernel/old.ko");
    auto changes = collect(*watcher);
    EXPECT_EQ(paths_of(changes, tree.version()),
              (std::set<std::string>{(tree.module_dir() / "kernel/renamed.ko.xz").string(),
                                     (tree.module_dir() / "kernel/old.ko").string()}));
}

TEST(TreeWatcher, IgnoresTheEnginesOutputsTheirTempFilesAndNonModules)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    for (const auto& name : test::depmod_output_names())
        tree.write(name, "output");
    tree.write(".modules.dep.kmodd-123-4", "temp");
    fs::rename(tree.module_dir() / ".modules.dep.kmodd-123-4", tree.module_dir() / "modules.dep");
    tree.write("modules.dep.1234.567890.1700000000", "kmod 30's temp name");
    tree.write("kernel/notes.txt", "not a module");
    tree.write("kernel/object.o", "not a module");
    auto changes = collect(*watcher);
    EXPECT_TRUE(changes.empty()) << changes.versions.size() << " versions reported";
}

TEST(TreeWatcher, PassesModulesOrderAndTheBuiltinLists)
{
    TempTree tree;
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    tree.write("modules.order", "kernel/a.ko\n");
    tree.write("modules.builtin", "kernel/b.ko\n");
    tree.write("modules.builtin.modinfo", "b.license=GPL");
    auto changes = collect(*watcher);
    EXPECT_EQ(paths_of(changes, tree.version()),
              (std::set<std::string>{(tree.module_dir() / "modules.order").string(),
                                     (tree.module_dir() / "modules.builtin").string(),
                                     (tree.module_dir() / "modules.builtin.modinfo").string()}));
}

TEST(TreeWatcher, WatchesADirectoryCreatedLaterAndWhatLandedInItFirst)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const size_t before = watcher->watch_count();
    // Created in one go, before the watcher reads a single event.
    tree.write("kernel/new/sub/deeper/early.ko", "x");
    auto changes = collect(*watcher);
    EXPECT_TRUE(
        paths_of(changes, tree.version()).contains((tree.module_dir() / "kernel/new").string()))
        << "the new directory is reported, for the engine to walk";
    EXPECT_EQ(watcher->watch_count(), before + 3);

    tree.write("kernel/new/sub/deeper/late.ko", "x");
    changes = collect(*watcher);
    EXPECT_EQ(
        paths_of(changes, tree.version()),
        std::set<std::string>{(tree.module_dir() / "kernel/new/sub/deeper/late.ko").string()});
}

TEST(TreeWatcher, ANewKernelVersionIsReportedForAFullWalkAndWatched)
{
    TempTree tree;
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const fs::path other = tree.root() / "lib/modules/2.0.0-new";
    fs::create_directories(other / "kernel");
    auto changes = collect(*watcher);
    ASSERT_TRUE(changes.versions.contains("2.0.0-new"));
    EXPECT_TRUE(changes.versions.at("2.0.0-new").rescan);

    test::run_shell("echo x > '" + (other / "kernel/x.ko").string() + "'");
    changes = collect(*watcher);
    EXPECT_EQ(paths_of(changes, "2.0.0-new"),
              std::set<std::string>{(other / "kernel/x.ko").string()});
}

TEST(TreeWatcher, AVersionRemovedIsReportedAndItsWatchesDropped)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel/a/b");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    EXPECT_EQ(watcher->watch_count(), 5U) << "modules dir, version, kernel, a, b";
    fs::remove_all(tree.module_dir());
    auto changes = collect(*watcher);
    ASSERT_TRUE(changes.versions.contains(tree.version()));
    EXPECT_TRUE(changes.versions.at(tree.version()).rescan);
    EXPECT_EQ(watcher->watch_count(), 1U);
}

TEST(TreeWatcher, ADirectoryMovedOutOfTheTreeIsForgotten)
{
    TempTree tree;
    tree.write("kernel/moving/deep/a.ko", "x");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const size_t before = watcher->watch_count();
    fs::rename(tree.module_dir() / "kernel/moving", tree.root() / "elsewhere");
    auto changes = collect(*watcher);
    EXPECT_EQ(paths_of(changes, tree.version()),
              std::set<std::string>{(tree.module_dir() / "kernel/moving").string()});
    EXPECT_EQ(watcher->watch_count(), before - 2);

    tree.write("/elsewhere/deep/b.ko", "x");
    EXPECT_TRUE(collect(*watcher).empty()) << "a file outside the tree is no change";
}

TEST(TreeWatcher, BuildAndSourceAreNotDescendedInto)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "build/include");
    fs::create_directories(tree.module_dir() / "source");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    EXPECT_EQ(watcher->watch_count(), 2U);
    tree.write("build/include/x.ko", "x");
    tree.write("source/y.ko", "x");
    EXPECT_TRUE(collect(*watcher).empty());
}

TEST(TreeWatcher, ADirectorySymlinkedIntoTheTreeReportsItsTreePath)
{
    TempTree tree;
    fs::create_directories(tree.root() / "home/dev/out");
    tree.link("extra", tree.root() / "home/dev/out");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    tree.write("/home/dev/out/y.ko", "x");
    auto changes = collect(*watcher);
    EXPECT_EQ(paths_of(changes, tree.version()),
              std::set<std::string>{(tree.module_dir() / "extra/y.ko").string()});
}

TEST(TreeWatcher, ASymlinkLoopDoesNotRunAway)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel");
    tree.link("kernel/loop", "..");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    EXPECT_EQ(watcher->watch_count(), 3U) << "modules dir, version, kernel";
}

TEST(TreeWatcher, AChangeBehindASymlinkIsReportedAsTheLinkPath)
{
    TempTree tree;
    const fs::path target = tree.root() / "home/dev/mine.ko";
    tree.write("/home/dev/mine.ko", "v1");
    tree.link("extra/mine.ko", target);
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const std::string link = (tree.module_dir() / "extra/mine.ko").string();
    watcher->set_hints({{tree.version(), {{link, target.string()}}, {}}});
    EXPECT_TRUE(collect(*watcher, 50ms).empty());

    tree.write("/home/dev/mine.ko", "v2 rebuilt in place");
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()), std::set<std::string>{link});

    tree.write("/home/dev/.mine.ko.tmp", "v3");
    fs::rename(tree.root() / "home/dev/.mine.ko.tmp", target);
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()), std::set<std::string>{link})
        << "a target replaced by rename";

    tree.write("/home/dev/other.o", "unrelated");
    EXPECT_TRUE(collect(*watcher).empty()) << "other files beside the target are no change";
}

TEST(TreeWatcher, ADanglingLinkKeepsItsTargetDirectoryWatched)
{
    TempTree tree;
    const fs::path target = tree.root() / "home/dev/mine.ko";
    tree.write("/home/dev/mine.ko", "v1");
    tree.link("extra/mine.ko", target);
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const std::string link = (tree.module_dir() / "extra/mine.ko").string();
    watcher->set_hints({{tree.version(), {{link, target.string()}}, {}}});
    const size_t with_target = watcher->watch_count();

    fs::remove(target); // make clean
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()), std::set<std::string>{link});
    // The index no longer lists the link (it dangles): the hints come without it.
    watcher->set_hints({{tree.version(), {}, {}}});
    EXPECT_EQ(watcher->watch_count(), with_target);

    tree.write("/home/dev/mine.ko", "v2"); // make
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()), std::set<std::string>{link});

    fs::remove(tree.module_dir() / "extra/mine.ko");
    collect(*watcher);
    watcher->set_hints({{tree.version(), {}, {}}});
    EXPECT_EQ(watcher->watch_count(), with_target - 1) << "the link is gone: so is the watch";
}

TEST(TreeWatcher, ExternalDirectoriesFromTheHintsAreWatchedForTheirVersion)
{
    TempTree tree;
    fs::create_directories(tree.root() / "opt/external/sub");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const size_t before = watcher->watch_count();
    const std::string external = (tree.root() / "opt/external").string();
    watcher->set_hints({{tree.version(), {}, {external}}});
    EXPECT_EQ(watcher->watch_count(), before + 2);
    tree.write("/opt/external/sub/ext.ko", "x");
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()),
              std::set<std::string>{external + "/sub/ext.ko"});
    watcher->set_hints({{tree.version(), {}, {}}});
    EXPECT_EQ(watcher->watch_count(), before);
}

TEST(TreeWatcher, QueueOverflowAsksForAFullRescanAndKeepsWatching)
{
    TempTree tree;
    fs::create_directories(tree.module_dir() / "kernel/a");
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    const size_t before = watcher->watch_count();
    ChangeSet changes = watcher->translate({{-1, IN_Q_OVERFLOW, 0, ""}});
    EXPECT_TRUE(changes.rescan_all);
    EXPECT_FALSE(changes.empty());
    EXPECT_EQ(watcher->watch_count(), before) << "watches re-walked, none leaked or lost";
    EXPECT_TRUE(watcher->take_problems().empty());

    tree.write("kernel/a/after.ko", "x");
    EXPECT_EQ(paths_of(collect(*watcher), tree.version()),
              std::set<std::string>{(tree.module_dir() / "kernel/a/after.ko").string()});
}

TEST(TreeWatcher, EventsOfUnknownWatchesAreDropped)
{
    TempTree tree;
    auto watcher = watch(tree);
    ASSERT_TRUE(watcher);
    EXPECT_TRUE(watcher->translate({{9999, IN_CREATE, 0, "x.ko"}}).empty());
}

TEST(TreeWatcher, AMissingModulesDirIsAnError)
{
    auto watcher = TreeWatcher::create({"/nonexistent/lib/modules"});
    ASSERT_FALSE(watcher.has_value());
    EXPECT_EQ(watcher.error().code, ENOENT);
}

} // namespace
} // namespace kmodd::service
