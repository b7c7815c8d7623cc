// SPDX-License-Identifier: LGPL-2.1-or-later
// The epoll loop that drives the sdbus-c++ connection beside kmodd's own fds.
#include "event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <sdbus-c++/IConnection.h>

#include "sdbus_compat.hpp"

namespace kmodd::daemon {

base::Result<std::unique_ptr<EventLoop>> EventLoop::create(sdbus::IConnection* bus)
{
    base::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (epoll.get() < 0)
        return base::errno_error(errno, "epoll_create1");
    base::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (wake.get() < 0)
        return base::errno_error(errno, "eventfd");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = wake.get();
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) < 0)
        return base::errno_error(errno, "epoll_ctl");
    std::unique_ptr<EventLoop> loop(new EventLoop(bus, std::move(epoll), std::move(wake)));
    if (bus != nullptr) {
        if (auto armed = loop->arm_bus(bus->getEventLoopPollData()); !armed)
            return base::Unexpected(armed.error());
    }
    return loop;
}

EventLoop::EventLoop(sdbus::IConnection* bus, base::UniqueFd epoll, base::UniqueFd wake)
    : bus_(bus), epoll_(std::move(epoll)), wake_(std::move(wake))
{
}

EventLoop::~EventLoop() = default;

base::Result<void> EventLoop::add(int fd, uint32_t events, Handler handler)
{
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) < 0)
        return base::errno_error(errno, "epoll_ctl");
    handlers_[fd] = std::move(handler);
    return {};
}

base::Result<void> EventLoop::every(std::chrono::microseconds interval, std::function<void()> tick)
{
    base::UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (timer.get() < 0)
        return base::errno_error(errno, "timerfd_create");
    itimerspec spec{};
    spec.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1000000);
    spec.it_interval.tv_nsec = static_cast<long>(interval.count() % 1000000) * 1000;
    spec.it_value = spec.it_interval;
    if (::timerfd_settime(timer.get(), 0, &spec, nullptr) < 0)
        return base::errno_error(errno, "timerfd_settime");
    int fd = timer.get();
    timers_.push_back(std::move(timer));
    return add(fd, EPOLLIN, [fd, tick = std::move(tick)](uint32_t) {
        uint64_t expirations = 0;
        if (::read(fd, &expirations, sizeof expirations) > 0)
            tick();
    });
}

void EventLoop::post(std::function<void()> task)
{
    {
        std::lock_guard lock(mutex_);
        posted_.push_back(std::move(task));
    }
    uint64_t one = 1;
    // Only fails when the counter would overflow, and then the loop is awake anyway.
    [[maybe_unused]] ssize_t written = ::write(wake_.get(), &one, sizeof one);
}

bool EventLoop::run_posted()
{
    std::deque<std::function<void()>> tasks;
    {
        std::lock_guard lock(mutex_);
        tasks.swap(posted_);
    }
    for (auto& task : tasks)
        task();
    return !tasks.empty();
}

base::Result<void> EventLoop::arm_bus(const sdbus::IConnection::PollData& data)
{
    // poll(2) and epoll share the values of IN, OUT, ERR and HUP.
    uint32_t events = static_cast<uint32_t>(data.events);
    if (data.fd == bus_fd_ && events == bus_events_)
        return {};
    epoll_event event{};
    event.events = events;
    event.data.fd = data.fd;
    int op = data.fd == bus_fd_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (bus_fd_ >= 0 && data.fd != bus_fd_)
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, bus_fd_, nullptr);
    if (::epoll_ctl(epoll_.get(), op, data.fd, &event) < 0)
        return base::errno_error(errno, "epoll_ctl (bus)");
    bus_fd_ = data.fd;
    bus_events_ = events;
    return {};
}

base::Result<void> EventLoop::run()
{
    // The bus connection fails only when it is gone (dbus-daemon restarted or killed): kmodd
    // cannot serve without it, so it stops with a failure and systemd's Restart= starts it
    // again on the new bus. Every record is on disk already (each change is written at once).
    try {
        return run_turns();
    } catch (const sdbus::Error& error) {
        return base::make_error(ENOTCONN, "lost its connection to the bus (" + error.getMessage() +
                                              "); exiting so that the service manager starts "
                                              "kmodd again");
    }
}

base::Result<void> EventLoop::run_turns()
{
    while (!is_stopping_) {
        bool is_busy = false;
        if (bus_ != nullptr)
            is_busy = dbus::process_pending(*bus_);
        is_busy = run_posted() || is_busy;
        if (is_stopping_)
            break;
        if (is_busy)
            continue; // what just ran may have queued messages: process before sleeping
        int timeout = -1;
        if (bus_ != nullptr) {
            sdbus::IConnection::PollData data = bus_->getEventLoopPollData();
            if (auto armed = arm_bus(data); !armed)
                return armed;
            timeout = data.getPollTimeout();
        }
        epoll_event events[16];
        int count = ::epoll_wait(epoll_.get(), events, 16, timeout);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            return base::errno_error(errno, "epoll_wait");
        }
        for (int i = 0; i < count; ++i) {
            int fd = events[i].data.fd;
            if (fd == wake_.get()) {
                uint64_t counter = 0;
                [[maybe_unused]] ssize_t got = ::read(wake_.get(), &counter, sizeof counter);
                continue;
            }
            if (fd == bus_fd_)
                continue; // processed at the top of the next turn
            auto it = handlers_.find(fd);
            if (it != handlers_.end())
                it->second(events[i].events);
        }
    }
    return {};
}

} // namespace kmodd::daemon
