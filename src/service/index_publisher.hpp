// SPDX-License-Identifier: LGPL-2.1-or-later
// The index pipeline's last step: batches of changes applied, and the served release's
// snapshot opened and published for requests.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "service/changes.hpp"
#include "service/index_service.hpp"
#include "service/module_service.hpp"

namespace kmodd::service {

/// What one batch (or the start) gave, handed from the index worker to the event loop.
struct Publication {
    std::vector<VersionReport> reports;
    std::vector<WatchHints> hints; ///< for the watcher, after the batch
    /// The served release's new snapshot; null when its index was not rewritten (or could
    /// not be read: see `snapshot_error`).
    std::shared_ptr<const IndexSnapshot> snapshot;
    bool is_release_gone = false; ///< the served release vanished: requests find nothing
    std::optional<base::Error> snapshot_error; ///< the index was written but cannot be read
};

/// Keeps the index of every kernel version (an IndexService) and the snapshot requests of the
/// served release read. start(), apply() and reread_config() run on one thread at a time (the
/// daemon's index worker), so the snapshot opened last has read the newest files; current()
/// and publish() are safe from any thread.
class IndexPublisher {
public:
    struct Settings {
        ServiceOptions index;                     ///< what is indexed and how it is written
        std::string release;                      ///< the served kernel release
        std::vector<std::string> modprobe_config; ///< modprobe.d; empty: kmod's default dirs
        std::string cmdline_path = "/proc/cmdline";
    };

    explicit IndexPublisher(Settings settings);

    [[nodiscard]] const std::string& release() const { return settings_.release; }
    [[nodiscard]] const std::string& modules_dir() const { return index_.modules_dir(); }

    /// Indexes every version (IndexService::start) and opens the served release's snapshot
    /// as publication 1.
    [[nodiscard]] Publication start();

    /// What start_published() gives.
    struct Published {
        std::shared_ptr<const IndexSnapshot> snapshot;
        uint32_t modules = 0; ///< as the output state counts them (unusable files included)
    };
    /// The served release's snapshot from the index files on disk, before any file of the
    /// tree is looked at, when its output state (depmod::OutputState, kept beside the parse
    /// cache) proves that those files hold what kmodd or kmodctl published last: they answer
    /// as they did then, while start() (run next) checks that the tree is still what they were
    /// made from. nullopt without a cache directory, a state, or files that match it.
    [[nodiscard]] std::optional<Published> open_published() const;

    /// Applies a batch of changes, then rebuilds the versions in `forced` from scratch; opens
    /// a new snapshot when the served release's index was rewritten.
    [[nodiscard]] Publication apply(const ChangeSet& changes,
                                    const std::vector<std::string>& forced);

    /// The served release's snapshot again, with modprobe.d read anew (same publication
    /// number). Null when the release has no index. Errors: the index cannot be read.
    [[nodiscard]] base::Result<std::shared_ptr<const IndexSnapshot>> reread_config() const;

    /// What requests read now; null when the served release has no index.
    [[nodiscard]] std::shared_ptr<const IndexSnapshot> current() const;
    void publish(std::shared_ptr<const IndexSnapshot> snapshot);

    /// Modules in the served release's index as `report` counts them, less the files it could
    /// not use (as ModuleCount counts).
    [[nodiscard]] static uint32_t
    usable_count(const VersionReport& report, const std::shared_ptr<const IndexSnapshot>& snapshot);

private:
    [[nodiscard]] base::Result<std::shared_ptr<const IndexSnapshot>>
    open_snapshot(uint64_t generation) const;
    void take_snapshot(Publication& publication, uint64_t generation) const;

    Settings settings_;
    IndexService index_;
    mutable std::mutex mutex_;
    std::shared_ptr<const IndexSnapshot> current_;
};

} // namespace kmodd::service
