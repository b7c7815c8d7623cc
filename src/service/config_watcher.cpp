// SPDX-License-Identifier: LGPL-2.1-or-later
// The modprobe.d watch: inotify on its folders, or on the parents of its files.
#include "service/config_watcher.hpp"

#include <algorithm>
#include <filesystem>

namespace kmodd::service {

namespace {

constexpr uint32_t kMask =
    IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;

} // namespace

base::Result<std::unique_ptr<ConfigWatcher>>
ConfigWatcher::create(const std::vector<std::string>& paths)
{
    auto inotify = sys::Inotify::open();
    if (!inotify)
        return base::Unexpected(inotify.error());
    std::unique_ptr<ConfigWatcher> watcher(new ConfigWatcher(std::move(*inotify)));
    for (const std::string& path : paths)
        watcher->add(path);
    return watcher;
}

void ConfigWatcher::add(const std::string& path)
{
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
        if (auto wd = inotify_.add_watch(path, kMask))
            watches_[*wd] = Watch{path, "", false};
        return;
    }
    const std::filesystem::path location(path);
    std::string parent = location.has_parent_path() ? location.parent_path().string() : ".";
    bool is_file = std::filesystem::exists(location, error);
    if (auto wd = inotify_.add_watch(parent, kMask))
        watches_[*wd] = Watch{parent, location.filename().string(), !is_file};
}

base::Result<bool> ConfigWatcher::read_changes()
{
    auto events = inotify_.read_events();
    if (!events)
        return base::Unexpected(events.error());
    bool is_changed = false;
    for (const sys::InotifyEvent& event : *events) {
        auto it = watches_.find(event.wd);
        if (it == watches_.end() || event.name.empty())
            continue;
        const Watch watch = it->second; // add() below may change the map
        if (!watch.only_name.empty() && event.name != watch.only_name)
            continue;
        std::string path = watch.dir + "/" + event.name;
        std::error_code error;
        if (watch.is_awaited_dir && std::filesystem::is_directory(path, error))
            add(path);
        is_changed = true;
    }
    return is_changed;
}

std::vector<std::string> ConfigWatcher::watched_dirs() const
{
    std::vector<std::string> dirs;
    for (const auto& [wd, watch] : watches_) {
        if (watch.only_name.empty())
            dirs.push_back(watch.dir);
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

} // namespace kmodd::service
