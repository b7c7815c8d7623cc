// SPDX-License-Identifier: LGPL-2.1-or-later
// Work spread over threads gets done with the threads the system gives, none included.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <vector>

#include "base/threads.hpp"
#include "thread_limit.hpp"

namespace kmodd::base {
namespace {

/// Counts every item of `items` once, however many threads run it.
struct CountItems {
    std::vector<std::atomic<int>>& items;
    std::atomic<size_t>& next;
    void operator()() const
    {
        for (size_t i = next.fetch_add(1); i < items.size(); i = next.fetch_add(1))
            items[i].fetch_add(1);
    }
};

bool each_done_once(const std::vector<std::atomic<int>>& items)
{
    for (const auto& item : items) {
        if (item.load() != 1)
            return false;
    }
    return true;
}

TEST(RunOnThreads, RunsTheWorkOnTheCallerAndTheThreadsAskedFor)
{
    std::vector<std::atomic<int>> items(10000);
    std::atomic<size_t> next{0};
    std::atomic<int> runs{0};
    const unsigned ran = run_on_threads(3, [&] {
        runs.fetch_add(1);
        CountItems{items, next}();
    });
    EXPECT_EQ(ran, 4U);
    EXPECT_EQ(runs.load(), 4);
    EXPECT_TRUE(each_done_once(items));
}

TEST(RunOnThreads, WhenTheSystemRefusesEveryThreadTheCallerDoesAllTheWork)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to set a task limit up";
    const int status = test::run_where_threads_are_refused([] {
        std::vector<std::atomic<int>> items(1000);
        std::atomic<size_t> next{0};
        const unsigned ran = run_on_threads(3, CountItems{items, next});
        if (ran != 1)
            return 1;
        return each_done_once(items) ? 0 : 2;
    });
    EXPECT_EQ(status, 0) << "1: it said threads ran, 2: items were not done once each";
}

TEST(TryStartThread, GivesNoThreadWhenTheSystemRefusesOne)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to set a task limit up";
    const int status = test::run_where_threads_are_refused([] {
        std::thread refused = try_start_thread([] {});
        return refused.joinable() ? 1 : 0;
    });
    EXPECT_EQ(status, 0);
    std::thread started = try_start_thread([] {});
    ASSERT_TRUE(started.joinable());
    started.join();
}

} // namespace
} // namespace kmodd::base
