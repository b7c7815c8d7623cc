// SPDX-License-Identifier: LGPL-2.1-or-later
// The daemon's watching half end to end on temporary trees, with real inotify and real
// time: watcher -> debounce -> rebuild, as the daemon will run it, with nobody running
// depmod. Outputs are compared with kmod's depmod on the same tree.
#include <gtest/gtest.h>

#include <thread>

#include "burst_timing.hpp"
#include "service_support.hpp"

namespace kmodd::service {
namespace {

using namespace std::chrono_literals;
using test::has_line;
using test::TempTree;
using test_support::expect_same_as_kmod;
using test_support::fixture;
using test_support::Pipeline;
namespace fs = test::fs;
using Action = VersionReport::Action;

void populate(const TempTree& tree)
{
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    tree.add("kernel/a/mod2.ko", fixture("mod2"));
    tree.add("kernel/drivers/blockdev.ko", fixture("blockdev"));
    tree.write("modules.order", "kernel/a/mod2.ko\nkernel/a/mod1.ko\n");
}

TEST(WatchPipeline, ANewSymlinkToAModuleOutsideTheTreeIsIndexedAfterTheDebounce)
{
    TempTree tree;
    populate(tree);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    ASSERT_EQ(pipeline.start_reports().size(), 1U);

    const fs::path target = tree.root() / "home/dev/mine.ko";
    fs::create_directories(target.parent_path());
    fs::copy_file(fixture("mod3"), target);
    EXPECT_EQ(pipeline.run_for(200ms), 0U) << "a file outside the tree is no change";

    tree.link("extra/mine.ko", target);
    const fs::path dep = tree.module_dir() / "modules.dep";
    EXPECT_TRUE(pipeline.run_until([&] {
        return has_line(dep, "extra/mine.ko: kernel/a/mod1.ko");
    })) << test::slurp(dep);
    EXPECT_EQ(pipeline.rebuilds(), 1U);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(WatchPipeline, TheIndexFollowsTheFileBehindALinkWhenItIsRebuilt)
{
    TempTree tree;
    populate(tree);
    const fs::path target = tree.root() / "home/dev/mine.ko";
    fs::create_directories(target.parent_path());
    fs::copy_file(fixture("mod3"), target); // needs mod1
    tree.link("extra/mine.ko", target);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    const fs::path dep = tree.module_dir() / "modules.dep";
    ASSERT_TRUE(has_line(dep, "extra/mine.ko: kernel/a/mod1.ko")) << test::slurp(dep);

    // Rebuilt in place (cp truncates and writes): now it needs nothing.
    fs::copy_file(fixture("devname_only"), target, fs::copy_options::overwrite_existing);
    EXPECT_TRUE(pipeline.run_until([&] { return has_line(dep, "extra/mine.ko:"); }))
        << test::slurp(dep);
    expect_same_as_kmod(tree.root(), tree.version());

    // Replaced by rename, as a linker or an installer does: it needs mod1 again (and mod2).
    fs::path temp = target.parent_path() / ".mine.ko.tmp";
    fs::copy_file(fixture("mod3"), temp);
    fs::rename(temp, target);
    EXPECT_TRUE(pipeline.run_until([&] {
        return has_line(dep, "extra/mine.ko: kernel/a/mod1.ko");
    })) << test::slurp(dep);

    // make clean, then make: the link dangles in between and comes back.
    fs::remove(target);
    EXPECT_TRUE(
        pipeline.run_until([&] { return test::slurp(dep).find("mine") == std::string::npos; }));
    fs::copy_file(fixture("devname_only"), target);
    EXPECT_TRUE(pipeline.run_until([&] { return has_line(dep, "extra/mine.ko:"); }))
        << test::slurp(dep);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(WatchPipeline, ALinkedDirectoryIsFollowedWhenSwitchedAndWhenItsTargetIsMadeAgain)
{
    TempTree tree;
    populate(tree);
    const fs::path build42 = tree.root() / "home/dev/build-42";
    const fs::path build43 = tree.root() / "home/dev/build-43";
    fs::create_directories(build42);
    fs::create_directories(build43);
    fs::copy_file(fixture("mod3"), build42 / "mine.ko");
    fs::copy_file(fixture("devname_only"), build43 / "other.ko");
    tree.link("extra/current", build42);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    const fs::path dep = tree.module_dir() / "modules.dep";
    ASSERT_TRUE(has_line(dep, "extra/current/mine.ko: kernel/a/mod1.ko")) << test::slurp(dep);

    // `ln -sfn build-43 current`: a new link renamed over the old one.
    fs::path temp = tree.module_dir() / "extra/.current.tmp";
    fs::create_directory_symlink(build43, temp);
    fs::rename(temp, tree.module_dir() / "extra/current");
    EXPECT_TRUE(pipeline.run_until([&] {
        std::string text = test::slurp(dep);
        return text.find("mine.ko") == std::string::npos &&
               has_line(dep, "extra/current/other.ko:");
    })) << test::slurp(dep);
    expect_same_as_kmod(tree.root(), tree.version());

    // A fresh checkout: the target directory deleted and made again, then built into.
    fs::remove_all(build43);
    EXPECT_TRUE(pipeline.run_until([&] {
        return test::slurp(dep).find("other.ko") == std::string::npos;
    })) << test::slurp(dep);
    fs::create_directories(build43);
    pipeline.run_for(100ms);
    fs::copy_file(fixture("mod3"), build43 / "again.ko");
    EXPECT_TRUE(pipeline.run_until([&] {
        return has_line(dep, "extra/current/again.ko: kernel/a/mod1.ko");
    })) << test::slurp(dep);
    fs::copy_file(fixture("devname_only"), build43 / "more.ko");
    EXPECT_TRUE(pipeline.run_until([&] { return has_line(dep, "extra/current/more.ko:"); }))
        << test::slurp(dep);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(WatchPipeline, ABurstOfTwoThousandFilesGivesFewRebuildsAndKmodsOutput)
{
    TempTree tree;
    populate(tree);
    Pipeline pipeline(tree.root(), {50ms, 1000ms});
    ASSERT_TRUE(pipeline.is_ready());
    const size_t before = pipeline.rebuilds();
    const fs::path burst = tree.module_dir() / "kernel/burst";
    std::atomic<bool> copied{false};
    test::BurstTiming timing(50ms);
    std::thread installer([&] {
        fs::create_directories(burst);
        char name[32];
        for (int i = 0; i < 2000; ++i) {
            std::snprintf(name, sizeof name, "m%04d.ko", i);
            fs::copy_file(fixture("devname_only"), burst / name);
            timing.change();
        }
        copied = true;
    });
    const fs::path dep = tree.module_dir() / "modules.dep";
    bool done = pipeline.run_until(
        [&] {
            return copied && !pipeline.loop().has_pending() &&
                   has_line(dep, "kernel/burst/m1999.ko:");
        },
        60s);
    installer.join();
    ASSERT_TRUE(done);
    const size_t rebuilds = pipeline.rebuilds() - before;
    std::printf("2000 files in %lld ms, %zu pause(s) over 50 ms: %zu rebuild(s)\n",
                static_cast<long long>(timing.duration().count()), timing.pauses(), rebuilds);
    EXPECT_GE(rebuilds, 1U);
    EXPECT_LE(rebuilds, timing.max_batches(1000ms));
    EXPECT_EQ(pipeline.service().engine(tree.version())->index().candidate_count(), 2003U);
    expect_same_as_kmod(tree.root(), tree.version());
}

TEST(WatchPipeline, ANewKernelVersionDirectoryGetsItsOwnIndex)
{
    TempTree tree;
    populate(tree);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    const fs::path other = tree.root() / "lib/modules/2.0.0-new";
    fs::create_directories(other / "kernel/a");
    fs::copy_file(fixture("mod1"), other / "kernel/a/mod1.ko");
    fs::copy_file(fixture("mod2"), other / "kernel/a/mod2.ko");
    EXPECT_TRUE(pipeline.run_until(
        [&] { return has_line(other / "modules.dep", "kernel/a/mod2.ko: kernel/a/mod1.ko"); }));
    EXPECT_EQ(pipeline.service().versions(),
              (std::vector<std::string>{tree.version(), "2.0.0-new"}));
    for (const VersionReport& report : pipeline.reports())
        EXPECT_EQ(report.version, "2.0.0-new") << "the other version is left alone";
    expect_same_as_kmod(tree.root(), "2.0.0-new");

    fs::remove_all(other);
    EXPECT_TRUE(pipeline.run_until([&] { return pipeline.service().versions().size() == 1; }));
}

TEST(WatchPipeline, OurOwnWritesDoNotComeBackAsChanges)
{
    TempTree tree;
    populate(tree);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    tree.add("kernel/b/mod3.ko", fixture("mod3"));
    const fs::path dep = tree.module_dir() / "modules.dep";
    ASSERT_TRUE(pipeline.run_until([&] {
        return has_line(dep, "kernel/b/mod3.ko: kernel/a/mod1.ko") &&
               !pipeline.loop().has_pending();
    }));
    ASSERT_FALSE(pipeline.reports().empty());
    EXPECT_EQ(pipeline.reports().back().action, Action::Written);
    EXPECT_GT(pipeline.reports().back().stats.files_written, 0U);

    const size_t batches = pipeline.loop().batches_seen();
    EXPECT_EQ(pipeline.run_for(500ms), 0U);
    EXPECT_EQ(pipeline.loop().batches_seen(), batches) << "not even a pending change";
    EXPECT_FALSE(pipeline.loop().has_pending());
}

TEST(WatchPipeline, AnOverflowRescansEveryVersionAndFindsWhatWasMissed)
{
    TempTree tree;
    populate(tree);
    Pipeline pipeline(tree.root());
    ASSERT_TRUE(pipeline.is_ready());
    tree.add("kernel/b/mod3.ko", fixture("mod3"));
    // The kernel's queue limit cannot be forced: the events are read and thrown away, as an
    // overflow would have dropped them, and the overflow is fed in by hand.
    (void)test_support::collect(pipeline.watcher());
    EXPECT_EQ(pipeline.run_for(200ms), 0U);
    const fs::path dep = tree.module_dir() / "modules.dep";
    ASSERT_EQ(test::slurp(dep).find("mod3"), std::string::npos);

    ChangeSet lost = pipeline.watcher().translate({{-1, IN_Q_OVERFLOW, 0, ""}});
    ASSERT_TRUE(lost.rescan_all);
    auto reports = pipeline.service().apply(lost);
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_TRUE(reports[0].was_full_walk);
    EXPECT_EQ(reports[0].action, Action::Written);
    EXPECT_TRUE(has_line(dep, "kernel/b/mod3.ko: kernel/a/mod1.ko")) << test::slurp(dep);
    expect_same_as_kmod(tree.root(), tree.version());
}

} // namespace
} // namespace kmodd::service
