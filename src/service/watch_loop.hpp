// SPDX-License-Identifier: LGPL-2.1-or-later
// The watcher and the debouncer in one pollable fd.
#pragma once

#include <chrono>
#include <memory>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "service/changes.hpp"
#include "service/debouncer.hpp"
#include "service/tree_watcher.hpp"

namespace kmodd::service {

/// The watching half of the daemon's loop: an epoll set over the watcher's inotify fd and a
/// timerfd armed at the debouncer's deadline. Changes are gathered until the debouncer fires,
/// then handed out as one ChangeSet. Its epoll fd can sit in the daemon's own epoll set (an
/// epoll fd is readable when one of its fds is ready).
///
/// Not thread-safe: the event loop's thread owns it and the watcher it borrows.
class WatchLoop {
public:
    /// `watcher` must outlive the loop. Errors: epoll or timerfd could not be created.
    [[nodiscard]] static base::Result<std::unique_ptr<WatchLoop>>
    create(TreeWatcher& watcher, Debouncer::Settings settings,
           Debouncer::Now now = &Debouncer::Clock::now);

    /// Readable when dispatch() has something to do.
    [[nodiscard]] int fd() const { return epoll_.get(); }

    /// Handles what is ready without blocking: reads events, feeds the debouncer, re-arms
    /// the timer. Returns the gathered changes when the debounce fired, else an empty set.
    /// Errors: reading inotify or arming the timer failed.
    [[nodiscard]] base::Result<ChangeSet> dispatch();

    /// Waits up to `timeout` for fd() to become readable, then dispatch(). For callers
    /// without a loop of their own (and tests).
    [[nodiscard]] base::Result<ChangeSet> wait(std::chrono::milliseconds timeout);

    /// Whether changes are gathered and waiting for the debounce.
    [[nodiscard]] bool has_pending() const { return debouncer_.has_pending(); }

    /// Reads of inotify that brought relevant changes, since the start (for statistics).
    [[nodiscard]] size_t batches_seen() const { return batches_seen_; }

private:
    WatchLoop(TreeWatcher& watcher, Debouncer debouncer, base::UniqueFd epoll,
              base::UniqueFd timer);
    base::Result<void> arm_timer();

    TreeWatcher& watcher_;
    Debouncer debouncer_;
    base::UniqueFd epoll_;
    base::UniqueFd timer_;
    ChangeSet pending_;
    size_t batches_seen_ = 0;
};

} // namespace kmodd::service
