// SPDX-License-Identifier: LGPL-2.1-or-later
// Watching the module trees (and the targets of their symlinks) for changes to index.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "service/changes.hpp"
#include "sys/inotify.hpp"

namespace kmodd::service {

/// Watches a modules dir (e.g. /lib/modules) with inotify and says which paths of which
/// kernel version changed, as the depmod engine knows them:
/// - the modules dir itself, for kernel versions that appear or vanish;
/// - every directory of every version, recursively (following directory symlinks, skipping
///   `excluded_names`), including directories created later: those are walked when they
///   appear, since files may land in them before their watch exists;
/// - the directories holding the targets of symlinked module files and the depmod.d external
///   directories, both learnt from the index through set_hints(); a change to a target file
///   is reported as a change of the link path(s) pointing to it;
/// - the directories holding the targets of symlinked directories of the trees, so that a
///   target directory deleted and made again (a fresh checkout of a driver) is walked again.
/// Only module files (*.ko*), directories, modules.order, modules.builtin and
/// modules.builtin.modinfo are reported: the engine's own outputs (modules.dep, *.bin, ...)
/// and their temp files are not changes. Queue overflow reports `rescan_all` and re-walks
/// every watch. Removed or moved-away directories drop their watches.
///
/// Not thread-safe: the event loop's thread owns it.
class TreeWatcher {
public:
    struct Settings {
        std::string modules_dir; ///< the parent of the kernel version dirs
        /// Directory entries never descended into (kmod's depmod skips these too; add the
        /// depmod.d `exclude` names).
        std::vector<std::string> excluded_names{"build", "source"};
    };

    /// Opens inotify and watches the modules dir and every version below it. Errors: inotify
    /// could not be created; the modules dir cannot be watched (ENOENT, EACCES, ENOSPC).
    [[nodiscard]] static base::Result<std::unique_ptr<TreeWatcher>> create(Settings settings);

    /// The inotify fd to poll for EPOLLIN.
    [[nodiscard]] int fd() const { return inotify_.fd(); }

    /// Reads what is queued (without blocking) and translates it. Errors: read() failed.
    [[nodiscard]] base::Result<ChangeSet> read_changes();

    /// Translates raw events into changes and keeps the watches current (new directories
    /// watched and walked, removed ones forgotten, a full re-walk after IN_Q_OVERFLOW).
    /// Public so that tests can feed events the kernel cannot be made to produce.
    [[nodiscard]] ChangeSet translate(const std::vector<sys::InotifyEvent>& events);

    /// Replaces what is watched beyond the module trees: call after each rebuild with every
    /// version's hints. A link seen before that still exists but now dangles (its target
    /// being rebuilt) keeps its target directory watched, so the new target is noticed.
    void set_hints(const std::vector<WatchHints>& hints);

    /// Things that went wrong while watching (a directory that could not be watched: its
    /// changes will be missed) since the last call, as sentences.
    [[nodiscard]] std::vector<std::string> take_problems();

    /// Number of inotify watches held (an inode reached by several paths counts once).
    [[nodiscard]] size_t watch_count() const { return watches_.size(); }

    [[nodiscard]] const std::string& modules_dir() const { return settings_.modules_dir; }

private:
    /// A directory of a version's tree (or of an external dir) under one of its names.
    struct TreeDir {
        std::string version;
        std::string path;
        bool is_version_root = false;  ///< <modules dir>/<version>
        bool is_external_root = false; ///< a depmod.d external dir (no parent watched)
    };
    /// What one watch descriptor stands for; an inode can play several roles.
    struct Watch {
        bool is_modules_dir = false;
        std::vector<TreeDir> tree_dirs;
        std::string target_dir; ///< non-empty: holds targets of symlinked module files
        [[nodiscard]] bool is_unused() const
        {
            return !is_modules_dir && tree_dirs.empty() && target_dir.empty();
        }
    };
    struct Link {
        std::string version;
        std::string path;
    };

    TreeWatcher(Settings settings, sys::Inotify inotify);

    base::Result<void> watch_everything();
    void watch_tree(const TreeDir& dir, int depth);
    bool forget_tree(const std::string& path, const std::string& version);
    void watch_targets();
    void drop_unused_watches();
    int add_watch(const std::string& path);
    [[nodiscard]] bool is_excluded(const std::string& name) const;

    void on_version_entry(const std::string& name, uint32_t mask, ChangeSet& changes);
    void on_tree_entry(const TreeDir& dir, const std::string& name, uint32_t mask,
                       ChangeSet& changes);
    void on_target_entry(const std::string& dir, const std::string& name, uint32_t mask,
                         ChangeSet& changes);
    void note_directory_link(const TreeDir& dir);
    void resync();

    Settings settings_;
    sys::Inotify inotify_;
    std::unordered_map<int, Watch> watches_;
    std::vector<WatchHints> hints_;
    std::unordered_map<std::string, std::vector<Link>> links_by_target_; ///< real path -> links
    /// Symlinked directories of the trees: their target's real path -> the links. The
    /// target's parent is watched, so a target deleted and made again is walked again.
    std::unordered_map<std::string, std::vector<Link>> dir_links_by_target_;
    std::vector<std::string> problems_;
};

} // namespace kmodd::service
