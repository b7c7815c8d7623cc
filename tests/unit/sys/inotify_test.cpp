// SPDX-License-Identifier: LGPL-2.1-or-later
// The inotify wrapper on a temporary directory.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>

#include <algorithm>

#include "sys/inotify.hpp"
#include "temp_tree.hpp"

namespace kmodd::sys {
namespace {

std::vector<InotifyEvent> read_after_poll(Inotify& inotify)
{
    pollfd p{inotify.fd(), POLLIN, 0};
    ::poll(&p, 1, 2000);
    auto events = inotify.read_events();
    EXPECT_TRUE(events.has_value());
    return events ? *events : std::vector<InotifyEvent>{};
}

TEST(Inotify, TheFdIsNonBlockingAndCloseOnExec)
{
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    EXPECT_NE(::fcntl(inotify->fd(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(inotify->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(Inotify, ReadingWithNothingQueuedGivesNoEvents)
{
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    auto events = inotify->read_events();
    ASSERT_TRUE(events.has_value());
    EXPECT_TRUE(events->empty());
}

TEST(Inotify, ReportsACreatedFileByNameWithItsWatch)
{
    test::TempTree tree;
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    auto wd = inotify->add_watch(tree.module_dir().string(), IN_CREATE | IN_CLOSE_WRITE);
    ASSERT_TRUE(wd.has_value());
    tree.write("a-rather-long-file-name.ko", "x");
    auto events = read_after_poll(*inotify);
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].wd, *wd);
    EXPECT_EQ(events[0].mask, IN_CREATE);
    EXPECT_EQ(events[0].name, "a-rather-long-file-name.ko");
    EXPECT_EQ(events[1].mask, IN_CLOSE_WRITE);
}

TEST(Inotify, AMoveCarriesTheSameCookieOnBothHalves)
{
    test::TempTree tree;
    tree.write("old.ko", "x");
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    ASSERT_TRUE(inotify->add_watch(tree.module_dir().string(), IN_MOVE).has_value());
    test::fs::rename(tree.module_dir() / "old.ko", tree.module_dir() / "new.ko");
    auto events = read_after_poll(*inotify);
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].name, "old.ko");
    EXPECT_EQ(events[1].name, "new.ko");
    EXPECT_NE(events[0].cookie, 0U);
    EXPECT_EQ(events[0].cookie, events[1].cookie);
}

TEST(Inotify, RemovingAWatchQueuesIgnoredAndASecondRemoveFails)
{
    test::TempTree tree;
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    auto wd = inotify->add_watch(tree.module_dir().string(), IN_CREATE);
    ASSERT_TRUE(wd.has_value());
    ASSERT_TRUE(inotify->remove_watch(*wd).has_value());
    auto events = read_after_poll(*inotify);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_NE(events[0].mask & IN_IGNORED, 0U);
    auto again = inotify->remove_watch(*wd);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code, EINVAL);
}

TEST(Inotify, WatchingAMissingPathFailsWithEnoentAndNamesIt)
{
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    auto wd = inotify->add_watch("/nonexistent/kmodd-dir", IN_CREATE);
    ASSERT_FALSE(wd.has_value());
    EXPECT_EQ(wd.error().code, ENOENT);
    EXPECT_NE(wd.error().message.find("'/nonexistent/kmodd-dir'"), std::string::npos);
}

TEST(Inotify, ASmallBufferStillReadsWholeEventsAndLeavesTheRestQueued)
{
    test::TempTree tree;
    auto inotify = Inotify::open();
    ASSERT_TRUE(inotify.has_value());
    ASSERT_TRUE(inotify->add_watch(tree.module_dir().string(), IN_CREATE).has_value());
    for (int i = 0; i < 100; ++i)
        tree.write("file" + std::to_string(i) + ".ko", "");
    auto first = inotify->read_events(1);
    ASSERT_TRUE(first.has_value());
    EXPECT_GE(first->size(), 1U);
    EXPECT_LT(first->size(), 100U);
    size_t total = first->size();
    while (true) {
        auto more = inotify->read_events();
        ASSERT_TRUE(more.has_value());
        if (more->empty())
            break;
        total += more->size();
    }
    EXPECT_EQ(total, 100U);
}

} // namespace
} // namespace kmodd::sys
