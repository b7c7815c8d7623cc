// SPDX-License-Identifier: LGPL-2.1-or-later
// Threads that may not be had. A system can refuse a new thread (a task limit: systemd's
// TasksMax, RLIMIT_NPROC, a full pid space); std::thread then throws, and src/ does not throw.
// Work that was only spread over threads for speed is done by the threads there are instead.
#pragma once

#include <memory>
#include <system_error>
#include <thread>

namespace kmodd::base {

/// A thread running a copy of `work`, or an empty (not joinable) std::thread when the system
/// refuses one: the caller then does the work itself.
template <typename Work> [[nodiscard]] std::thread try_start_thread(const Work& work)
{
    try {
        return std::thread(work);
    } catch (const std::system_error&) {
        return {};
    }
}

/// A thread joined when it goes out of scope, whatever happened on the way (a joinable
/// std::thread's destructor would abort). Declared after what the thread uses, it is joined
/// before that goes.
struct JoinedThread {
    JoinedThread() = default;
    JoinedThread(const JoinedThread&) = delete;
    JoinedThread& operator=(const JoinedThread&) = delete;
    ~JoinedThread()
    {
        if (thread.joinable())
            thread.join();
    }

    std::thread thread;
};

/// Runs `work` on the calling thread and on up to `extra_threads` more, and returns once every
/// run of it has returned. `work` shares its items out itself (an atomic counter, say), so the
/// threads that do start do all of it when some are refused. Returns how many threads ran it,
/// the caller's included.
template <typename Work> unsigned run_on_threads(unsigned extra_threads, const Work& work)
{
    // Joined before this returns, whatever happened.
    auto started = std::make_unique<JoinedThread[]>(extra_threads);
    unsigned running = 1;
    for (unsigned t = 0; t < extra_threads; ++t) {
        started[t].thread = try_start_thread([&work] { work(); });
        if (!started[t].thread.joinable())
            break; // the next one would be refused too
        ++running;
    }
    work();
    return running;
}

} // namespace kmodd::base
