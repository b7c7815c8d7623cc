// SPDX-License-Identifier: LGPL-2.1-or-later
// The module requests of the daemon's core without D-Bus: Load, Unload, ListDeps, ListLoaded
// and GetModuleInfo over a frozen snapshot of the index.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "base/result.hpp"
#include "depmod/index_reader.hpp"
#include "index/diagnostic.hpp"
#include "index/module_index.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/state_store.hpp"
#include "service/load_outcome.hpp"
#include "service/request_error.hpp"
#include "sys/kernel.hpp"

namespace kmodd::loader {
class Resolver;
}

namespace kmodd::service {

/// Everything a request reads about one kernel release, frozen: the on-disk index
/// (modules.*.bin, mapped) and the modprobe.d configuration read at the same moment.
/// Immutable after open(), so it is shared between threads (by shared_ptr) and a request
/// keeps the snapshot it started with while a newer one is published.
class IndexSnapshot {
public:
    struct Options {
        std::string module_dir;                     ///< <modules dir>/<release>
        std::string release;                        ///< the kernel release (directory name)
        std::vector<std::string> config_paths;      ///< modprobe.d; empty: kmod's default dirs
        std::string cmdline_path = "/proc/cmdline"; ///< kernel command line ("" = none)
        uint64_t generation = 0;                    ///< the publication this snapshot shows
        /// Module files the index left out because they cannot be used: module name ->
        /// "'<path>': <reason>" (a request for one says why instead of "not found").
        std::map<std::string, std::string> unusable;
    };

    /// Opens the index files of `options.module_dir` and reads the configuration. Errors:
    /// ModuleDatabase::open's (ENOENT when the release has no index yet). Problems in the
    /// configuration are not errors: they are kept in diagnostics().
    [[nodiscard]] static base::Result<std::shared_ptr<const IndexSnapshot>>
    open(const Options& options);

    [[nodiscard]] const std::string& release() const { return release_; }
    [[nodiscard]] uint64_t generation() const { return generation_; }
    [[nodiscard]] const depmod::ModuleDatabase& database() const { return database_; }
    [[nodiscard]] const loader::ModprobeConfig& config() const { return config_; }
    [[nodiscard]] const index::Diagnostics& diagnostics() const { return diagnostics_; }
    [[nodiscard]] const std::map<std::string, std::string>& unusable() const { return unusable_; }

private:
    IndexSnapshot(std::string release, uint64_t generation, depmod::ModuleDatabase database,
                  loader::ModprobeConfig config, index::Diagnostics diagnostics);

    std::string release_;
    uint64_t generation_;
    depmod::ModuleDatabase database_;
    loader::ModprobeConfig config_;
    index::Diagnostics diagnostics_;
    std::map<std::string, std::string> unusable_;
};

/// One module in the kernel: what lsmod shows, plus who loaded it.
struct LoadedEntry {
    std::string name;
    uint64_t size = 0;
    int refcount = 0;                 ///< -1 when the kernel cannot tell
    std::vector<std::string> holders; ///< sorted
    loader::Origin origin = loader::Origin::External;
};

/// A module parameter as modinfo shows it.
struct ParameterInfo {
    std::string name;
    std::string type;        ///< from parmtype=, may be empty
    std::string description; ///< from parm=, may be empty
};

/// What modinfo shows for a module. Strings are empty and lists empty when the module does
/// not have the field.
struct ModuleDetails {
    std::string name;     ///< normalised module name
    std::string path;     ///< the module file (empty for a builtin module)
    bool builtin = false; ///< built into the kernel image
    std::string version;
    std::string description;
    std::vector<std::string> authors;
    std::string license;
    std::vector<std::string> aliases;
    std::vector<std::string> depends;  ///< from .modinfo depends=, split at ','
    std::vector<std::string> softdeps; ///< the raw softdep= lines
    std::vector<std::string> firmware;
    std::string vermagic;
    std::string srcversion;
    bool intree = false;
    std::string signer;
    std::vector<ParameterInfo> parameters; ///< in .modinfo order
};

/// A module that uses another one: through modules.dep (a hard dependency) or a softdep.
struct ModuleUser {
    std::string name;
    bool is_softdep = false; ///< needed as a softdep, not through modules.dep
    bool is_loaded = false;  ///< the user is in the kernel now
};

/// Why a module is in the kernel (or is not), from the kernel's state and kmodd's records.
struct Explanation {
    std::string name;                 ///< normalised module name
    bool loaded = false;              ///< in the kernel now (not built in)
    bool builtin = false;             ///< built into the kernel image
    int refcount = 0;                 ///< the kernel's reference count (-1: unknown); loaded only
    std::vector<std::string> holders; ///< loaded modules that use it, sorted
    /// Who loaded it: External also when kmodd has no record (or the record is stale: the
    /// module is not loaded any more).
    loader::Origin origin = loader::Origin::External;
    loader::Provenance provenance;     ///< when and by whom, as far as recorded
    std::vector<ModuleUser> needed_by; ///< for a dependency: what kmodd loaded it for
    /// For an External module: whether it was loaded already when kmodd started (the
    /// initramfs, systemd-modules-load, udev) rather than loaded beside kmodd later.
    bool loaded_before_start = false;
    uint64_t start_usec = 0; ///< when kmodd started (CLOCK_REALTIME microseconds)
    /// The explanation for a person, one sentence per line, the chain of users followed
    /// (indented by two blanks per step).
    std::vector<std::string> lines;
};

/// What depends on a module (ListHolders).
struct HolderReport {
    std::vector<std::string> holders; ///< loaded modules using it now (the kernel's holders)
    std::vector<std::string> users;   ///< modules whose modules.dep entry names it, sorted
    /// What Unload would remove, in order (the module first); empty when it is not loaded or
    /// an Unload would fail, and then `unload_error` says why.
    std::vector<std::string> unload;
    std::string unload_error;
};

/// One module FindModules found.
struct FoundModule {
    std::string name;
    std::string description; ///< may be empty
    std::string field;       ///< what matched: "name", "alias" or "description"
    std::string match;       ///< the text that matched (the name, the alias pattern...)
};

/// The descriptions of the module files of a tree (.modinfo description=), read once per
/// file and kept while the file is unchanged (device, inode, size, mtime and ctime), so
/// that a search over descriptions reads only what changed since the last one. With the
/// tree's parse cache (index::ParseCache), a file it holds under the file's key now is not read
/// at all: the first search after a restart reads only what changed since that cache was written.
/// Thread-safe.
class DescriptionCache {
public:
    /// `parse_cache_path`: the parse cache of the tree the snapshots index ("": none).
    explicit DescriptionCache(std::string parse_cache_path = {})
        : parse_cache_path_(std::move(parse_cache_path))
    {
    }

    /// Module name -> description for every module of `snapshot` (files and built-ins;
    /// modules without one are left out). Unreadable files are left out too.
    [[nodiscard]] std::map<std::string, std::string, std::less<>>
    descriptions(const std::shared_ptr<const IndexSnapshot>& snapshot);

    /// How many module files searches read for their description (the rest came from this
    /// cache or the parse cache).
    [[nodiscard]] size_t files_read() const;

private:
    struct Entry {
        index::FileKey key; ///< the file as it was read
        std::string description;
    };
    /// The description of the file `path` (whose stat is `st`) from the parse cache, when it
    /// holds the file under its key now; mutex_ held.
    [[nodiscard]] std::optional<std::string> persisted_description(const std::string& path,
                                                                   const struct stat& st);

    std::string parse_cache_path_;
    std::shared_ptr<const index::ParseCache> parse_cache_; ///< loaded by a search that needed it
    mutable std::mutex mutex_;
    std::map<std::string, Entry, std::less<>> by_path_;
    size_t files_read_ = 0;
    /// The answer for the snapshot read last (weak: a snapshot that is gone never matches).
    std::weak_ptr<const IndexSnapshot> last_snapshot_;
    std::map<std::string, std::string, std::less<>> last_;
};

/// InvalidName for a FindModules pattern that is empty, longer than 4095 bytes or has a
/// control character; nothing for a good one.
[[nodiscard]] std::optional<RequestError> check_pattern(const std::string& pattern);

/// Whether `text` matches a FindModules pattern: a glob (with '*', '?' or '[') matched
/// against the whole text, else a substring; both without regard to case, and with
/// `fold_dashes` '-' and '_' taken as the same (module names and aliases).
[[nodiscard]] bool matches_pattern(std::string_view pattern, std::string_view text,
                                   bool fold_dashes = false);

/// The daemon's module requests, without D-Bus types: Load, Unload, ListDeps, ListLoaded,
/// GetModuleInfo over a snapshot of the index and a kernel (real or sandbox), remembering
/// who loaded what in a StateStore.
///
/// Thread-safety: every method may be called from any thread. load() and unload() are
/// serialised with each other (one kernel change at a time, so overlapping requests for
/// the same modules see each other's results); list_deps(), module_info() and list_loaded()
/// never wait for a load in progress (list_loaded() reports origins as of the last finished
/// load or unload).
class ModuleService {
public:
    /// `kernel` and `state` must outlive the service; `state` may be null (then nothing is
    /// recorded and every loaded module is External).
    ModuleService(sys::Kernel& kernel, loader::StateStore* state);

    /// Loads `name` (module name or alias) with its dependencies and softdeps, as kmod's
    /// `modprobe name params` does (blacklist applied to aliases only). Returns the modules
    /// inserted, in order; empty when all were loaded already or built in. The target is
    /// recorded as `origin` (Explicit, or Autoload for a device's modalias: then a module
    /// that is loaded already is left unrecorded), what it needed Dependency. Errors: InvalidName
    /// (name fails loader::is_valid_module_request, or params contain a newline/NUL), NotFound
    /// (nothing matches in the snapshot), Blacklisted (the name resolved only to blacklisted
    /// modules), Failed (kernel or file error; the message names module and reason; what the call
    /// inserted was removed again).
    [[nodiscard]] RequestResult<std::vector<std::string>>
    load(const IndexSnapshot& snapshot, const std::string& name, const std::string& params,
         loader::Origin origin = loader::Origin::Explicit,
         const loader::Provenance& provenance = {});

    /// How the last load() of `name` ended (a module name or alias, as it was asked for;
    /// '-' and '_' alike): the error with its cause, fix and the kernel's lines, or the
    /// warnings of a successful load. Errors: InvalidName, NotFound (no load of that name
    /// since kmodd started; the latest 512 names are kept).
    [[nodiscard]] RequestResult<LoadOutcome> diagnose(const std::string& name) const;

    /// Unloads `name` and what kmodd loaded only for it (refcount-aware, loader::Loader).
    /// Returns the modules removed, in order. Errors: InvalidName, NotFound (not loaded),
    /// InUse (the message names the holders), Failed.
    [[nodiscard]] RequestResult<std::vector<std::string>> unload(const IndexSnapshot& snapshot,
                                                                 const std::string& name);

    /// The load plan for `name`, in load order, softdeps included, the module itself last:
    /// the module names of modprobe -D's insmod/install/builtin lines, whether loaded or not.
    /// Errors: InvalidName, NotFound.
    [[nodiscard]] RequestResult<std::vector<std::string>> list_deps(const IndexSnapshot& snapshot,
                                                                    const std::string& name) const;

    /// What modinfo shows for `name` (the first module the lookup gives), read from the
    /// module file (compressed files too) or, for a builtin module, from
    /// modules.builtin.modinfo. Errors: InvalidName, NotFound, Failed (unreadable file:
    /// the message names the path).
    [[nodiscard]] RequestResult<ModuleDetails> module_info(const IndexSnapshot& snapshot,
                                                           const std::string& name) const;

    /// The kernel's modules (/proc/modules order) with their origin. Errors: Failed.
    [[nodiscard]] RequestResult<std::vector<LoadedEntry>> list_loaded() const;

    /// Why the records of who loaded what could not be written (loader::StateStore::unsaved;
    /// they are kept in memory and every later load or unload writes them again), or "".
    [[nodiscard]] std::string records_problem() const;

    /// Notes the modules in the kernel now as loaded before kmodd started (call once, at
    /// start): explain() tells them from modules loaded beside kmodd later.
    void note_start();

    /// What Unload would remove for `name`, in order, without changing anything. Errors: those
    /// of unload(). Waits for a load or unload in progress.
    [[nodiscard]] RequestResult<std::vector<std::string>> plan_unload(const IndexSnapshot& snapshot,
                                                                      const std::string& name);

    /// Why `name` (a module name or alias) is loaded: kmodd's record, the chain of modules it
    /// was loaded for, or what kmodd cannot know. Errors: InvalidName, NotFound (neither in
    /// the index nor in the kernel).
    [[nodiscard]] RequestResult<Explanation> explain(const IndexSnapshot& snapshot,
                                                     const std::string& name) const;

    /// The loaded modules holding `name`, the modules of the index that need it, and what an
    /// Unload would remove. Errors: InvalidName, NotFound. Waits for a load or unload in
    /// progress (the unload plan reads the records).
    [[nodiscard]] RequestResult<HolderReport> holders(const IndexSnapshot& snapshot,
                                                      const std::string& name);

    /// The modules of `snapshot` whose modules.dep entry names `name`'s module, sorted.
    /// Errors: InvalidName, NotFound.
    [[nodiscard]] RequestResult<std::vector<std::string>> users(const IndexSnapshot& snapshot,
                                                                const std::string& name) const;

    /// The modules of `snapshot` whose name, an alias or the description (from
    /// `descriptions`) matches `pattern` (matches_pattern), sorted by name, each once with
    /// the first field that matched. Errors: check_pattern's.
    [[nodiscard]] static RequestResult<std::vector<FoundModule>>
    find(const IndexSnapshot& snapshot, const std::string& pattern,
         const std::map<std::string, std::string, std::less<>>& descriptions);

private:
    /// load() after its argument checks; fills `outcome`'s diagnosis or warnings.
    [[nodiscard]] RequestResult<std::vector<std::string>>
    load_noting(const IndexSnapshot& snapshot, const std::string& name, const std::string& params,
                loader::Origin origin, const loader::Provenance& provenance, LoadOutcome& outcome);
    /// Keeps `outcome` as its module's last (diagnose()).
    void remember(LoadOutcome outcome);
    /// The unload of `name`, for real or as a plan. change_mutex_ is held by the caller.
    [[nodiscard]] RequestResult<std::vector<std::string>>
    unload_locked(const IndexSnapshot& snapshot, const std::string& name, bool dry_run);
    /// Copies the store's records (and whether they are saved) into records_ (after a load
    /// or unload).
    void copy_records();
    /// Appends the sentences of why `name` is loaded to `lines`, following the chain of
    /// users; `depth` is the indentation step. records_mutex_ is held.
    void explain_lines(loader::Resolver& resolver, const std::string& name, int depth,
                       std::set<std::string>& seen, std::vector<std::string>& lines) const;

    sys::Kernel& kernel_;
    loader::StateStore* state_;
    std::mutex change_mutex_;          ///< held by load() and unload() for their whole run
    mutable std::mutex records_mutex_; ///< guards records_ and the start facts
    std::map<std::string, loader::Record, std::less<>> records_; ///< copy of the store's records
    std::string records_problem_; ///< the store's unsaved() message, as of the last copy
    std::set<std::string, std::less<>> loaded_at_start_;
    uint64_t start_usec_ = 0;
    mutable std::mutex outcomes_mutex_;                        ///< guards outcomes_
    std::map<std::string, LoadOutcome, std::less<>> outcomes_; ///< by normalised name
};

} // namespace kmodd::service
