// SPDX-License-Identifier: LGPL-2.1-or-later
// The module requests of the daemon's core without D-Bus: Load, Unload, ListDeps, ListLoaded
// and GetModuleInfo over a frozen snapshot of the index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "base/result.hpp"
#include "depmod/index_reader.hpp"
#include "index/diagnostic.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/state_store.hpp"
#include "service/request_error.hpp"
#include "sys/kernel.hpp"

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
         loader::Origin origin = loader::Origin::Explicit);

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

private:
    sys::Kernel& kernel_;
    loader::StateStore* state_;
    std::mutex change_mutex_;          ///< held by load() and unload() for their whole run
    mutable std::mutex origins_mutex_; ///< guards origins_
    std::vector<std::pair<std::string, loader::Origin>> origins_; ///< copy of the store's records
};

} // namespace kmodd::service
