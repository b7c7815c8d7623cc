// SPDX-License-Identifier: LGPL-2.1-or-later
// The event loop without a bus: posted work from other threads, fd handlers, timers, stop.
#include "event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include <gtest/gtest.h>

#include "base/unique_fd.hpp"

namespace kmodd::daemon {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<EventLoop> make_loop()
{
    auto loop = EventLoop::create(nullptr);
    EXPECT_TRUE(loop) << loop.error().message;
    return loop ? std::move(*loop) : nullptr;
}

TEST(EventLoop, WorkPostedFromAnotherThreadRunsOnTheLoopInOrder)
{
    auto loop = make_loop();
    ASSERT_TRUE(loop);
    std::vector<int> seen;
    std::thread::id loop_thread = std::this_thread::get_id();
    std::atomic<bool> all_on_loop = true;
    std::thread poster([&] {
        for (int i = 0; i < 100; ++i)
            loop->post([&, i] {
                all_on_loop = all_on_loop && std::this_thread::get_id() == loop_thread;
                seen.push_back(i);
                if (i == 99)
                    loop->stop();
            });
    });
    ASSERT_TRUE(loop->run());
    poster.join();
    ASSERT_EQ(seen.size(), 100U);
    for (int i = 0; i < 100; ++i)
        EXPECT_EQ(seen[static_cast<size_t>(i)], i);
    EXPECT_TRUE(all_on_loop);
}

TEST(EventLoop, AnFdHandlerRunsWhenTheFdIsReadable)
{
    auto loop = make_loop();
    ASSERT_TRUE(loop);
    base::UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_GE(fd.get(), 0);
    uint64_t got = 0;
    ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&](uint32_t events) {
        EXPECT_TRUE(events & EPOLLIN);
        ASSERT_EQ(::read(fd.get(), &got, sizeof got), static_cast<ssize_t>(sizeof got));
        loop->stop();
    }));
    std::thread writer([&] {
        std::this_thread::sleep_for(20ms);
        uint64_t value = 7;
        EXPECT_EQ(::write(fd.get(), &value, sizeof value), static_cast<ssize_t>(sizeof value));
    });
    ASSERT_TRUE(loop->run());
    writer.join();
    EXPECT_EQ(got, 7U);
}

TEST(EventLoop, ATimerTicksUntilTheLoopStops)
{
    auto loop = make_loop();
    ASSERT_TRUE(loop);
    int ticks = 0;
    ASSERT_TRUE(loop->every(5ms, [&] {
        if (++ticks == 3)
            loop->stop();
    }));
    ASSERT_TRUE(loop->run());
    EXPECT_EQ(ticks, 3);
}

} // namespace
} // namespace kmodd::daemon
