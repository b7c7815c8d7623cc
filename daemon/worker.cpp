// SPDX-License-Identifier: LGPL-2.1-or-later
// The worker thread's queue.
#include "worker.hpp"

#include <pthread.h>

#include <future>

namespace kmodd::daemon {

Worker::Worker(std::string name) : name_(std::move(name)), thread_([this] { run(); }) {}

Worker::~Worker()
{
    {
        std::lock_guard lock(mutex_);
        is_stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void Worker::post(std::function<void()> task)
{
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
}

void Worker::wait_idle()
{
    std::promise<void> done;
    std::future<void> waited = done.get_future();
    post([&done] { done.set_value(); });
    waited.wait();
}

void Worker::run()
{
    // Named so that top -H and gdb show which worker is busy (at most 15 characters).
    ::pthread_setname_np(::pthread_self(), name_.substr(0, 15).c_str());
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return is_stopping_ || !tasks_.empty(); });
            if (tasks_.empty())
                return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

} // namespace kmodd::daemon
