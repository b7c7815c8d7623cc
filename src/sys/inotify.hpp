// SPDX-License-Identifier: LGPL-2.1-or-later
// A thin owner of an inotify instance.
#pragma once

#include <sys/inotify.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace kmodd::sys {

/// One inotify event as the kernel reported it. `wd` is -1 for IN_Q_OVERFLOW; `name` is empty
/// for events about the watched directory itself.
struct InotifyEvent {
    int wd = -1;
    uint32_t mask = 0;
    uint32_t cookie = 0;
    std::string name;
};

/// An inotify instance (IN_NONBLOCK | IN_CLOEXEC). Owns its fd; moving transfers it. Not
/// thread-safe: one thread at a time.
class Inotify {
public:
    /// Errors: the errno of inotify_init1 (EMFILE: too many instances for the user, ...).
    [[nodiscard]] static base::Result<Inotify> open();

    /// The fd to poll for EPOLLIN; events are taken with read_events().
    [[nodiscard]] int fd() const { return fd_.get(); }

    /// inotify_add_watch: returns the watch descriptor. Watching an inode that is already
    /// watched returns its descriptor again and replaces its mask. Errors: ENOENT, ENOTDIR
    /// (with IN_ONLYDIR), EACCES, ENOSPC (fs.inotify.max_user_watches reached).
    [[nodiscard]] base::Result<int> add_watch(const std::string& path, uint32_t mask);

    /// inotify_rm_watch. The kernel then queues IN_IGNORED for `wd`. Errors: EINVAL when
    /// `wd` is not a watch (any more: a deleted directory drops its own watch).
    [[nodiscard]] base::Result<void> remove_watch(int wd);

    /// Reads the events queued now, at most about `max_bytes` of them (one read()); an
    /// empty vector when none are queued. Errors: the errno of read other than EAGAIN.
    [[nodiscard]] base::Result<std::vector<InotifyEvent>> read_events(size_t max_bytes = 65536);

private:
    explicit Inotify(base::UniqueFd fd) : fd_(std::move(fd)) {}
    base::UniqueFd fd_;
};

} // namespace kmodd::sys
