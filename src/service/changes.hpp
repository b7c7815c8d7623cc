// SPDX-License-Identifier: LGPL-2.1-or-later
// What changed in the module trees between two rebuilds, as the watcher reports it.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace kmodd::service {

/// What changed under one kernel version since its last rebuild.
struct VersionChanges {
    bool rescan = false;         ///< walk the whole version dir (it appeared, vanished, moved)
    std::set<std::string> paths; ///< absolute paths as the depmod engine knows them: module
                                 ///< files (symlinks by their link path), directories,
                                 ///< modules.order, modules.builtin, modules.builtin.modinfo
};

/// The changes gathered between two rebuilds, by kernel version. A plain value: the event
/// loop fills it, the rebuilding thread consumes it.
struct ChangeSet {
    bool rescan_all = false; ///< events were lost: rediscover the versions, rescan every one
    std::map<std::string, VersionChanges> versions;

    [[nodiscard]] bool empty() const { return !rescan_all && versions.empty(); }

    /// Adds `other` to this set (used to hold changes while a rebuild is running).
    void merge(const ChangeSet& other)
    {
        rescan_all = rescan_all || other.rescan_all;
        for (const auto& [version, changes] : other.versions) {
            VersionChanges& mine = versions[version];
            mine.rescan = mine.rescan || changes.rescan;
            mine.paths.insert(changes.paths.begin(), changes.paths.end());
        }
    }
};

/// A module file of the index that is a symlink: where the engine knows it and the file it
/// resolves to.
struct LinkedFile {
    std::string path;      ///< the link, as the engine knows it
    std::string real_path; ///< its resolved target (realpath)
};

/// What the watcher must watch beyond the module tree for one kernel version, taken from its
/// index after each rebuild.
struct WatchHints {
    std::string version;
    std::vector<LinkedFile> links;          ///< module files that are symlinks
    std::vector<std::string> external_dirs; ///< depmod.d "external" directories
};

} // namespace kmodd::service
