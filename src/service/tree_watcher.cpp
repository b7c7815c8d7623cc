// SPDX-License-Identifier: LGPL-2.1-or-later
// inotify over the module trees and the folders behind their symlinks.
#include "service/tree_watcher.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <unordered_set>

#include "base/file.hpp"
#include "index/names.hpp"

namespace kmodd::service {

namespace {

// One mask for every watch: an inode can be a tree directory and a target directory at once,
// and a second inotify_add_watch replaces the mask.
constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR | IN_EXCL_UNLINK;
constexpr uint32_t kAppeared = IN_CREATE | IN_MOVED_TO;
constexpr uint32_t kVanished = IN_DELETE | IN_MOVED_FROM;
// Deeper than any real tree; stops a walk that a loop the inode check misses would make.
constexpr int kMaxDepth = 64;

/// The inputs of the engine among the modules.* names of a version dir; every other
/// modules.* name is an output (or a temp file of one, as kmod's depmod names them).
bool is_engine_input(const std::string& name)
{
    return name == "modules.order" || name == "modules.builtin" ||
           name == "modules.builtin.modinfo";
}

/// A temp file of base::publish_files (".<name>.kmodd-<pid>-<n>"): our own write in progress.
bool is_publish_temp(const std::string& name)
{
    return name.starts_with('.') && name.find(".kmodd-") != std::string::npos;
}

bool is_directory(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_same_or_below(const std::string& path, const std::string& dir)
{
    return path == dir ||
           (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

std::string parent_of(const std::string& path)
{
    size_t slash = path.rfind('/');
    return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

TreeWatcher::TreeWatcher(Settings settings, sys::Inotify inotify)
    : settings_(std::move(settings)), inotify_(std::move(inotify))
{
    while (settings_.modules_dir.size() > 1 && settings_.modules_dir.back() == '/')
        settings_.modules_dir.pop_back();
}

base::Result<std::unique_ptr<TreeWatcher>> TreeWatcher::create(Settings settings)
{
    auto inotify = sys::Inotify::open();
    if (!inotify)
        return base::Unexpected(inotify.error());
    std::unique_ptr<TreeWatcher> watcher(new TreeWatcher(std::move(settings), std::move(*inotify)));
    if (auto watched = watcher->watch_everything(); !watched)
        return base::Unexpected(watched.error());
    return watcher;
}

base::Result<void> TreeWatcher::watch_everything()
{
    auto wd = inotify_.add_watch(settings_.modules_dir, kWatchMask);
    if (!wd)
        return base::Unexpected(wd.error());
    watches_[*wd].is_modules_dir = true;
    auto dir = base::open_directory(AT_FDCWD, settings_.modules_dir);
    if (!dir)
        return base::Unexpected(dir.error());
    DIR* stream = ::fdopendir(dir->release());
    if (stream == nullptr)
        return base::errno_error(errno, "cannot list '" + settings_.modules_dir + "'");
    std::vector<std::string> versions;
    while (const dirent* entry = ::readdir(stream)) {
        std::string name = entry->d_name;
        if (name != "." && name != ".." && is_directory(settings_.modules_dir + "/" + name))
            versions.push_back(std::move(name));
    }
    ::closedir(stream);
    for (const std::string& version : versions)
        watch_tree({version, settings_.modules_dir + "/" + version, true, false}, 0);
    for (const WatchHints& hints : hints_) {
        for (const std::string& external : hints.external_dirs)
            watch_tree({hints.version, external, false, true}, 0);
    }
    watch_targets();
    return {};
}

int TreeWatcher::add_watch(const std::string& path)
{
    auto wd = inotify_.add_watch(path, kWatchMask);
    if (wd)
        return *wd;
    // Gone (or no longer a directory) before we got to it: its parent's event says so.
    if (wd.error().code != ENOENT && wd.error().code != ENOTDIR)
        problems_.push_back(wd.error().message + "; changes inside will be missed");
    return -1;
}

bool TreeWatcher::is_excluded(const std::string& name) const
{
    return std::find(settings_.excluded_names.begin(), settings_.excluded_names.end(), name) !=
           settings_.excluded_names.end();
}

void TreeWatcher::watch_tree(const TreeDir& dir, int depth)
{
    if (depth > kMaxDepth) {
        problems_.push_back("'" + dir.path + "': nested too deeply, not watched");
        return;
    }
    int wd = add_watch(dir.path);
    if (wd < 0)
        return;
    Watch& watch = watches_[wd];
    // The same inode as this directory or one of its ancestors: already walked, or a loop.
    for (const TreeDir& known : watch.tree_dirs) {
        if (known.version == dir.version && is_same_or_below(dir.path, known.path))
            return;
    }
    watch.tree_dirs.push_back(dir);
    note_directory_link(dir);

    // Walk after the watch exists: what appears from now on is an event, what is already
    // there is found here.
    std::vector<std::string> subdirs;
    if (DIR* stream = ::opendir(dir.path.c_str())) {
        while (const dirent* entry = ::readdir(stream)) {
            std::string name = entry->d_name;
            if (name == "." || name == ".." || is_excluded(name))
                continue;
            bool is_dir = entry->d_type == DT_DIR;
            if (entry->d_type == DT_LNK || entry->d_type == DT_UNKNOWN)
                is_dir = is_directory(dir.path + "/" + name);
            if (is_dir)
                subdirs.push_back(std::move(name));
        }
        ::closedir(stream);
    }
    for (const std::string& name : subdirs)
        watch_tree({dir.version, dir.path + "/" + name, false, false}, depth + 1);
}

void TreeWatcher::note_directory_link(const TreeDir& dir)
{
    struct stat st {};
    if (dir.is_external_root || ::lstat(dir.path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode))
        return;
    char* real = ::realpath(dir.path.c_str(), nullptr);
    if (real == nullptr)
        return;
    std::string target = real;
    ::free(real);
    std::vector<Link>& links = dir_links_by_target_[target];
    for (const Link& link : links) {
        if (link.version == dir.version && link.path == dir.path)
            return;
    }
    links.push_back({dir.version, dir.path});
    const std::string parent = parent_of(target);
    int wd = add_watch(parent);
    if (wd >= 0)
        watches_[wd].target_dir = parent;
}

bool TreeWatcher::forget_tree(const std::string& path, const std::string& version)
{
    // A symlinked directory that left the tree: its target is no concern of ours any more. (A
    // target that only vanished keeps its entry: it may come back.)
    for (auto it = dir_links_by_target_.begin(); it != dir_links_by_target_.end();) {
        std::erase_if(it->second, [&](const Link& link) {
            struct stat st {};
            bool is_still_link = ::lstat(link.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
            return link.version == version && is_same_or_below(link.path, path) && !is_still_link;
        });
        it = it->second.empty() ? dir_links_by_target_.erase(it) : std::next(it);
    }
    bool forgot = false;
    for (auto& [wd, watch] : watches_) {
        auto gone =
            std::remove_if(watch.tree_dirs.begin(), watch.tree_dirs.end(), [&](const TreeDir& dir) {
                return dir.version == version && is_same_or_below(dir.path, path);
            });
        forgot = forgot || gone != watch.tree_dirs.end();
        watch.tree_dirs.erase(gone, watch.tree_dirs.end());
    }
    drop_unused_watches();
    return forgot;
}

void TreeWatcher::drop_unused_watches()
{
    for (auto it = watches_.begin(); it != watches_.end();) {
        if (it->second.is_unused()) {
            // EINVAL when the kernel already dropped it (the directory was deleted).
            (void)inotify_.remove_watch(it->first);
            it = watches_.erase(it);
        } else {
            ++it;
        }
    }
}

void TreeWatcher::watch_targets()
{
    std::set<std::string> needed;
    for (const auto& [real_path, links] : links_by_target_)
        needed.insert(parent_of(real_path));
    for (const auto& [real_path, links] : dir_links_by_target_)
        needed.insert(parent_of(real_path));
    for (auto& [wd, watch] : watches_) {
        if (!watch.target_dir.empty() && !needed.contains(watch.target_dir))
            watch.target_dir.clear();
    }
    for (const std::string& dir : needed) {
        int wd = add_watch(dir);
        if (wd >= 0)
            watches_[wd].target_dir = dir;
    }
    drop_unused_watches();
}

void TreeWatcher::set_hints(const std::vector<WatchHints>& hints)
{
    std::unordered_map<std::string, std::vector<Link>> next;
    std::unordered_set<std::string> linked;
    std::set<std::string> versions;
    for (const WatchHints& version_hints : hints) {
        versions.insert(version_hints.version);
        for (const LinkedFile& link : version_hints.links) {
            next[link.real_path].push_back({version_hints.version, link.path});
            linked.insert(link.path);
        }
    }
    // A link whose target is gone is no module to the index, but a developer rebuilding the
    // target brings it back: keep watching where it pointed.
    for (const auto& [real_path, links] : links_by_target_) {
        for (const Link& link : links) {
            if (linked.contains(link.path) || !versions.contains(link.version))
                continue;
            struct stat st {};
            if (::lstat(link.path.c_str(), &st) == 0 && S_ISLNK(st.st_mode) &&
                ::stat(link.path.c_str(), &st) < 0 && errno == ENOENT)
                next[real_path].push_back(link);
        }
    }
    links_by_target_ = std::move(next);

    std::set<std::pair<std::string, std::string>> old_externals;
    std::set<std::pair<std::string, std::string>> new_externals;
    for (const WatchHints& version_hints : hints_) {
        for (const std::string& dir : version_hints.external_dirs)
            old_externals.emplace(version_hints.version, dir);
    }
    for (const WatchHints& version_hints : hints) {
        for (const std::string& dir : version_hints.external_dirs)
            new_externals.emplace(version_hints.version, dir);
    }
    for (const auto& [version, dir] : old_externals) {
        if (!new_externals.contains({version, dir}))
            forget_tree(dir, version);
    }
    for (const auto& [version, dir] : new_externals) {
        if (!old_externals.contains({version, dir}))
            watch_tree({version, dir, false, true}, 0);
    }
    hints_ = hints;
    watch_targets();
}

std::vector<std::string> TreeWatcher::take_problems()
{
    return std::exchange(problems_, {});
}

base::Result<ChangeSet> TreeWatcher::read_changes()
{
    auto events = inotify_.read_events();
    if (!events)
        return base::Unexpected(events.error());
    return translate(*events);
}

ChangeSet TreeWatcher::translate(const std::vector<sys::InotifyEvent>& events)
{
    ChangeSet changes;
    bool is_lost = false;
    for (const sys::InotifyEvent& event : events) {
        if ((event.mask & IN_Q_OVERFLOW) != 0) {
            is_lost = true;
            continue;
        }
        auto it = watches_.find(event.wd);
        if (it == watches_.end())
            continue; // a watch we dropped; its events are covered by its parent's
        if ((event.mask & IN_IGNORED) != 0) {
            watches_.erase(it);
            continue;
        }
        // Handlers add and drop watches: work on a copy of the roles.
        const Watch watch = it->second;
        if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
            // Directories inside a watched parent are handled by the parent's event; only
            // the roots have none.
            if (watch.is_modules_dir)
                is_lost = true;
            for (const TreeDir& dir : watch.tree_dirs) {
                if (dir.is_external_root) {
                    changes.versions[dir.version].paths.insert(dir.path);
                    forget_tree(dir.path, dir.version);
                }
            }
            continue;
        }
        if (event.name.empty())
            continue;
        if (watch.is_modules_dir)
            on_version_entry(event.name, event.mask, changes);
        for (const TreeDir& dir : watch.tree_dirs)
            on_tree_entry(dir, event.name, event.mask, changes);
        if (!watch.target_dir.empty())
            on_target_entry(watch.target_dir, event.name, event.mask, changes);
    }
    if (is_lost) {
        changes.rescan_all = true;
        resync();
    }
    return changes;
}

void TreeWatcher::on_version_entry(const std::string& name, uint32_t mask, ChangeSet& changes)
{
    const std::string path = settings_.modules_dir + "/" + name;
    if ((mask & kAppeared) != 0) {
        if ((mask & IN_ISDIR) != 0 || is_directory(path)) {
            watch_tree({name, path, true, false}, 0);
            changes.versions[name].rescan = true;
        }
    } else if ((mask & kVanished) != 0) {
        if (forget_tree(path, name) || (mask & IN_ISDIR) != 0)
            changes.versions[name].rescan = true;
    }
}

void TreeWatcher::on_tree_entry(const TreeDir& dir, const std::string& name, uint32_t mask,
                                ChangeSet& changes)
{
    if (is_excluded(name) || is_publish_temp(name))
        return;
    const std::string path = dir.path + "/" + name;
    auto report = [&] { changes.versions[dir.version].paths.insert(path); };
    if (dir.is_version_root && name.starts_with("modules.")) {
        if (is_engine_input(name))
            report();
        return;
    }
    if ((mask & IN_ISDIR) != 0) {
        if ((mask & kAppeared) != 0)
            watch_tree({dir.version, path, false, false}, 0);
        else if ((mask & kVanished) != 0)
            forget_tree(path, dir.version);
        report();
        return;
    }
    if (index::has_module_extension(name)) {
        report();
        return;
    }
    // A symlink to a directory arrives without IN_ISDIR.
    if ((mask & kAppeared) != 0 && is_directory(path)) {
        watch_tree({dir.version, path, false, false}, 0);
        report();
    } else if ((mask & kVanished) != 0 && forget_tree(path, dir.version)) {
        report();
    }
}

void TreeWatcher::on_target_entry(const std::string& dir, const std::string& name, uint32_t mask,
                                  ChangeSet& changes)
{
    const std::string target = dir + "/" + name;
    if (auto it = links_by_target_.find(target); it != links_by_target_.end()) {
        for (const Link& link : it->second)
            changes.versions[link.version].paths.insert(link.path);
    }
    auto it = dir_links_by_target_.find(target);
    if (it == dir_links_by_target_.end() || (mask & IN_ISDIR) == 0)
        return;
    // Copied: watch_tree() may add to the map.
    const std::vector<Link> links = it->second;
    for (const Link& link : links) {
        // Made again: a new inode behind the same link, to be watched and walked. Gone: the
        // engine's walk of the link finds nothing there.
        if ((mask & kAppeared) != 0)
            watch_tree({link.version, link.path, false, false}, 0);
        changes.versions[link.version].paths.insert(link.path);
    }
}

void TreeWatcher::resync()
{
    for (auto& [wd, watch] : watches_) {
        watch.is_modules_dir = false;
        watch.tree_dirs.clear();
    }
    if (auto watched = watch_everything(); !watched)
        problems_.push_back(watched.error().message + "; nothing will be noticed");
    drop_unused_watches();
}

} // namespace kmodd::service
