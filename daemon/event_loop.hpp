// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's one event loop: epoll over the bus, watched fds, timers and work posted by workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <sdbus-c++/IConnection.h>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace kmodd::daemon {

/// kmodd's one event loop: an epoll set over the bus connection, the fds handed to add(),
/// periodic timers and an eventfd through which other threads post work. Everything that
/// touches the bus runs on the thread inside run(): bus messages are processed there (the
/// sdbus-c++ 1.2 connection is driven by getEventLoopPollData + processPendingRequest,
/// re-armed on every turn since its events and timeout change with what is queued), and
/// work from other threads arrives through post().
class EventLoop {
public:
    using Handler = std::function<void(uint32_t events)>;

    /// `bus` may be null: a loop of fds, timers and posted work only (its tests run so).
    /// Errors: epoll or eventfd could not be created.
    [[nodiscard]] static base::Result<std::unique_ptr<EventLoop>> create(sdbus::IConnection* bus);

    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    /// Calls `handler` on the loop thread whenever `fd` has `events` (EPOLLIN...). The fd
    /// stays owned by the caller. Errors: epoll_ctl's.
    [[nodiscard]] base::Result<void> add(int fd, uint32_t events, Handler handler);

    /// Calls `tick` every `interval` on the loop thread. Errors: timerfd's.
    [[nodiscard]] base::Result<void> every(std::chrono::microseconds interval,
                                           std::function<void()> tick);

    /// Runs `task` on the loop thread soon. Safe from any thread, also after stop().
    void post(std::function<void()> task);

    /// Turns until stop() is called on the loop thread. Errors: epoll_wait failed; ENOTCONN
    /// when the bus connection is lost.
    [[nodiscard]] base::Result<void> run();

    /// Makes run() return after the current turn. Loop thread only.
    void stop() { is_stopping_ = true; }

    /// After run() returned: runs what was posted since (the replies of work that finished
    /// after stop()), until nothing more is. Loop thread only.
    void finish_posted()
    {
        while (run_posted()) {
        }
    }

private:
    [[nodiscard]] base::Result<void> run_turns();
    EventLoop(sdbus::IConnection* bus, base::UniqueFd epoll, base::UniqueFd wake);
    bool run_posted();
    /// Makes the epoll set wait for what the bus asks (its fd and events may change).
    base::Result<void> arm_bus(const sdbus::IConnection::PollData& data);

    sdbus::IConnection* bus_;
    base::UniqueFd epoll_;
    base::UniqueFd wake_;
    int bus_fd_ = -1;
    uint32_t bus_events_ = 0;
    std::map<int, Handler> handlers_;
    std::deque<base::UniqueFd> timers_;
    std::mutex mutex_;
    std::deque<std::function<void()>> posted_;
    bool is_stopping_ = false;
};

} // namespace kmodd::daemon
