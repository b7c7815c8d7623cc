// SPDX-License-Identifier: LGPL-2.1-or-later
// A thread with a queue of tasks: the daemon's index, kernel and reader workers.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace kmodd::daemon {

/// A thread that runs posted tasks one after the other, in order. The daemon keeps three: the
/// index worker (rebuilds, modprobe.d re-reads), the kernel worker (loads and unloads, one at
/// a time) and the reader worker (module files read for GetModuleInfo, the sysfs scans), so a
/// slow load never holds up a rebuild and the other way round. Tasks hand their results back to the
/// event loop with EventLoop::post. The destructor finishes the queued tasks, then joins.
class Worker {
public:
    explicit Worker(std::string name);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    /// Queues `task`. Safe from any thread.
    void post(std::function<void()> task);
    /// Returns once every task queued before the call has run. Not from the worker's thread.
    void wait_idle();

private:
    void run();

    std::string name_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> tasks_;
    bool is_stopping_ = false;
    std::thread thread_;
};

} // namespace kmodd::daemon
