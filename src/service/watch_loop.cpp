// SPDX-License-Identifier: LGPL-2.1-or-later
// The watcher and the debouncer in one pollable fd.
#include "service/watch_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cstdint>

namespace kmodd::service {

base::Result<std::unique_ptr<WatchLoop>>
WatchLoop::create(TreeWatcher& watcher, Debouncer::Settings settings, Debouncer::Now now)
{
    base::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll.is_valid())
        return base::errno_error(errno, "cannot create an epoll instance");
    // steady_clock is CLOCK_MONOTONIC: the debouncer's deadlines are absolute times on it.
    base::UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer.is_valid())
        return base::errno_error(errno, "cannot create a timerfd");
    for (int fd : {watcher.fd(), timer.get()}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0)
            return base::errno_error(errno, "cannot add an fd to the epoll set");
    }
    return std::unique_ptr<WatchLoop>(new WatchLoop(watcher, Debouncer(settings, std::move(now)),
                                                    std::move(epoll), std::move(timer)));
}

WatchLoop::WatchLoop(TreeWatcher& watcher, Debouncer debouncer, base::UniqueFd epoll,
                     base::UniqueFd timer)
    : watcher_(watcher), debouncer_(std::move(debouncer)), epoll_(std::move(epoll)),
      timer_(std::move(timer))
{
}

base::Result<ChangeSet> WatchLoop::dispatch()
{
    uint64_t expirations = 0;
    // EAGAIN when the timer did not expire: nothing to clear.
    (void)!::read(timer_.get(), &expirations, sizeof expirations);

    auto changes = watcher_.read_changes();
    if (!changes)
        return base::Unexpected(changes.error());
    if (!changes->empty()) {
        pending_.merge(*changes);
        debouncer_.note_event();
        ++batches_seen_;
    }
    ChangeSet ready;
    if (debouncer_.fire_if_due())
        ready = std::exchange(pending_, ChangeSet{});
    if (auto armed = arm_timer(); !armed)
        return base::Unexpected(armed.error());
    return ready;
}

base::Result<ChangeSet> WatchLoop::wait(std::chrono::milliseconds timeout)
{
    epoll_event event{};
    int n = 0;
    do {
        n = ::epoll_wait(epoll_.get(), &event, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return base::errno_error(errno, "cannot wait for events");
    return dispatch();
}

base::Result<void> WatchLoop::arm_timer()
{
    itimerspec spec{};
    if (auto deadline = debouncer_.deadline()) {
        auto since_boot =
            std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch());
        // Zero would disarm the timer: a deadline at the clock's origin is "now".
        if (since_boot.count() <= 0)
            since_boot = std::chrono::nanoseconds(1);
        spec.it_value.tv_sec = static_cast<time_t>(since_boot.count() / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(since_boot.count() % 1'000'000'000);
    }
    if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) < 0)
        return base::errno_error(errno, "cannot arm the debounce timer");
    return {};
}

} // namespace kmodd::service
