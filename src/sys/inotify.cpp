// SPDX-License-Identifier: LGPL-2.1-or-later
// inotify calls and their event records.
#include "sys/inotify.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace kmodd::sys {

base::Result<Inotify> Inotify::open()
{
    base::UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd.is_valid())
        return base::errno_error(errno, "cannot create an inotify instance");
    return Inotify(std::move(fd));
}

base::Result<int> Inotify::add_watch(const std::string& path, uint32_t mask)
{
    int wd = ::inotify_add_watch(fd_.get(), path.c_str(), mask);
    if (wd < 0)
        return base::errno_error(errno, "cannot watch '" + path + "'");
    return wd;
}

base::Result<void> Inotify::remove_watch(int wd)
{
    if (::inotify_rm_watch(fd_.get(), wd) < 0)
        return base::errno_error(errno, "cannot remove watch " + std::to_string(wd));
    return {};
}

base::Result<std::vector<InotifyEvent>> Inotify::read_events(size_t max_bytes)
{
    // The buffer must hold at least one event with the longest name, or read() says EINVAL.
    constexpr size_t kMinimum = sizeof(inotify_event) + NAME_MAX + 1;
    std::vector<char> buffer(std::max(max_bytes, kMinimum));
    ssize_t n = 0;
    do {
        n = ::read(fd_.get(), buffer.data(), buffer.size());
    } while (n < 0 && errno == EINTR);
    std::vector<InotifyEvent> events;
    if (n < 0) {
        if (errno == EAGAIN)
            return events;
        return base::errno_error(errno, "cannot read inotify events");
    }
    const auto end = static_cast<size_t>(n);
    size_t offset = 0;
    while (offset + sizeof(inotify_event) <= end) {
        inotify_event header{};
        std::memcpy(&header, buffer.data() + offset, sizeof header);
        offset += sizeof header;
        if (offset + header.len > end)
            break;
        InotifyEvent event{header.wd, header.mask, header.cookie, {}};
        if (header.len > 0) {
            // The name is NUL-padded to its record length.
            const char* name = buffer.data() + offset;
            event.name.assign(name, ::strnlen(name, header.len));
        }
        offset += header.len;
        events.push_back(std::move(event));
    }
    return events;
}

} // namespace kmodd::sys
