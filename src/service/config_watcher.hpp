// SPDX-License-Identifier: LGPL-2.1-or-later
// Watches the modprobe.d configuration (files and folders) so that its changes count at once.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "sys/inotify.hpp"

namespace kmodd::service {

/// Watches modprobe.d paths with inotify and says when one of them changed (kmod reads the
/// configuration on every call, so the daemon must read it again when it changes):
/// - a folder that exists: every entry created, written, deleted or moved in it;
/// - a file (editors replace files by rename) or a folder that does not exist yet: its parent,
///   for that one name; a folder that appears is then watched itself.
/// Not thread-safe: the event loop's thread owns it.
class ConfigWatcher {
public:
    /// Watches `paths` (files or folders; missing ones through their parent). A path whose
    /// parent cannot be watched either is left out. Errors: inotify cannot be opened.
    [[nodiscard]] static base::Result<std::unique_ptr<ConfigWatcher>>
    create(const std::vector<std::string>& paths);

    /// The fd to poll for EPOLLIN.
    [[nodiscard]] int fd() const { return inotify_.fd(); }

    /// Reads the queued events: true when a watched path changed (a folder that appeared is
    /// watched from now on). Errors: the inotify fd cannot be read.
    [[nodiscard]] base::Result<bool> read_changes();

    /// The folders watched now, sorted (for tests and diagnostics).
    [[nodiscard]] std::vector<std::string> watched_dirs() const;

private:
    /// A watched folder: all of it, or one name in it.
    struct Watch {
        std::string dir;
        std::string only_name;       ///< non-empty: only this entry counts
        bool is_awaited_dir = false; ///< `only_name` is a folder to watch once it appears
    };

    explicit ConfigWatcher(sys::Inotify inotify) : inotify_(std::move(inotify)) {}
    void add(const std::string& path);

    sys::Inotify inotify_;
    std::map<int, Watch> watches_; ///< by watch descriptor
};

} // namespace kmodd::service
