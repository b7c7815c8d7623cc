// SPDX-License-Identifier: LGPL-2.1-or-later
// Every kernel version's index, updated from batches of changes and written to disk.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "depmod/depmod.hpp"
#include "index/diagnostic.hpp"
#include "service/changes.hpp"

namespace kmodd::service {

/// Whether `name` can be a kernel release: a directory name under the modules dir (not
/// empty, no '/', not "." or "..", at most 255 bytes).
[[nodiscard]] bool is_kernel_release_name(std::string_view name);

/// What the service indexes and how it writes.
struct ServiceOptions {
    std::string base_dir;                  ///< root the modules dir lives under ("" = /)
    std::vector<std::string> config_paths; ///< depmod.d; empty: kmod's default dirs
    depmod::KmodFormat format;             ///< whose output the files reproduce
    bool durable = true;                   ///< fsync the outputs
    unsigned parse_threads = 0;            ///< 0: one per core
    /// Where the parse caches live (depmod::parse_cache_path()); empty: no cache.
    std::string cache_dir;
    /// More changed paths than this for one version in one batch: walk the whole version
    /// instead (unchanged files are not parsed again, and a walk costs less than thousands
    /// of single updates).
    size_t full_walk_threshold = 256;
};

/// What one rebuild did for one kernel version.
struct VersionReport {
    enum class Action {
        Current,   ///< indexed in memory; the outputs on disk already matched (at start)
        Written,   ///< the outputs were rewritten (those whose content changed)
        Unchanged, ///< the changes did not change the module set: nothing written
        Removed,   ///< the version vanished or is no kernel dir any more: index dropped
        Failed,    ///< `error` says why; the index keeps what it read, the next batch retries
    };
    std::string version;
    Action action = Action::Unchanged;
    bool was_full_walk = false;     ///< the whole version dir was walked (not single paths)
    depmod::GenerationStats stats;  ///< figures of the write (Written only)
    uint64_t generation = 0;        ///< outputs written for this version since the start
    size_t modules = 0;             ///< module files in the index now
    index::Diagnostics diagnostics; ///< what the engine noticed and went on with
    base::Error error;              ///< Failed only
};

/// One in-memory index (a depmod::Depmod) per kernel version under <base>/lib/modules,
/// created when a version appears, updated incrementally from the watcher's changes, and
/// the modules.* files written after each change. A directory counts as a kernel version
/// when it holds kernel/, modules.order or modules.builtin, as installed with a kernel, or
/// any module file or link to one, as kmod's depmod indexes any tree it is given (`build`
/// and `source` are not looked into). A directory without any (what an uninstalled kernel
/// leaves behind) gets no index files, and a version whose modules all go loses its index.
///
/// Thread-safety: none inside. The object is used by one thread at a time (the daemon's
/// worker); the calls return results by value, and the hints for the watcher are taken
/// with watch_hints() on that same thread and handed to the event loop.
class IndexService {
public:
    explicit IndexService(ServiceOptions options);
    ~IndexService();
    IndexService(const IndexService&) = delete;
    IndexService& operator=(const IndexService&) = delete;

    /// "<base>/lib/modules".
    [[nodiscard]] const std::string& modules_dir() const { return modules_dir_; }

    /// Indexes every kernel version found; writes a version's outputs only when those on
    /// disk are missing or differ from what the tree gives (content compared, so deleted
    /// modules and a changed depmod.d count as stale too, unlike depmod -A).
    [[nodiscard]] std::vector<VersionReport> start();

    /// Applies one batch of changes: single paths through the engine's update_path, a full
    /// walk for a rescanned or new version (or too many paths), then writes. Versions that
    /// vanished are dropped. One report per version touched.
    [[nodiscard]] std::vector<VersionReport> apply(const ChangeSet& changes);

    /// Throws the index of `version` away and builds it again from the module files (a full
    /// depmod), then writes every output. The generation count goes on. nullopt when
    /// `version` is not a kernel directory (any index it had is dropped).
    [[nodiscard]] std::optional<VersionReport> rebuild(const std::string& version);

    /// What the watcher must watch beyond the trees, for every indexed version.
    [[nodiscard]] std::vector<WatchHints> watch_hints() const;

    /// The module files of `version` that the index left out because they cannot be used:
    /// module name -> "'<path>': <reason>". Empty when the version is not indexed.
    [[nodiscard]] std::map<std::string, std::string>
    unusable_modules(const std::string& version) const;

    /// Where the output state of `version` is kept (beside its parse cache, see
    /// depmod::OutputState); empty without a cache directory.
    [[nodiscard]] std::string output_state_path(const std::string& version) const;

    /// The indexed versions, sorted.
    [[nodiscard]] std::vector<std::string> versions() const;

    /// The engine of `version`, null when not indexed. Valid until the next call that
    /// changes the service.
    [[nodiscard]] const depmod::Depmod* engine(const std::string& version) const;

private:
    [[nodiscard]] depmod::DepmodOptions depmod_options(const std::string& version) const;

    struct Version {
        std::unique_ptr<depmod::Depmod> engine;
        uint64_t generation = 0;
        bool needs_write = false; ///< a write failed: the outputs lag the index
    };

    [[nodiscard]] bool is_kernel_dir(const std::string& version) const;
    [[nodiscard]] std::vector<std::string> find_kernel_dirs() const;
    [[nodiscard]] std::optional<VersionReport>
    apply_version(const std::string& version, const VersionChanges* changes, bool is_start);
    [[nodiscard]] bool outputs_match_disk(const Version& entry,
                                          index::Diagnostics& diagnostics) const;

    ServiceOptions options_;
    std::string modules_dir_;
    std::map<std::string, Version> versions_;
};

} // namespace kmodd::service
