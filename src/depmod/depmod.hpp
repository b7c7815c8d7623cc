// SPDX-License-Identifier: LGPL-2.1-or-later
// The depmod engine: an index of one kernel version and the modules.* files written from it.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "depmod/kmod_format.hpp"
#include "depmod/output_state.hpp"
#include "depmod/outputs.hpp"
#include "elf/module_info.hpp"
#include "index/diagnostic.hpp"
#include "index/module_index.hpp"

namespace kmodd::depmod {

/// What a depmod run is asked to do (the command line of kmod's depmod, as data).
struct DepmodOptions {
    std::string base_dir;                          ///< -b: root the module dir lives under ("" = /)
    std::string kernel_version;                    ///< the <version> of /lib/modules/<version>
    std::string module_directory = "/lib/modules"; ///< -m: under base_dir and output_dir
    KmodFormat format;                             ///< the kmod release whose output is written
    std::vector<std::string> config_paths;         ///< -C; empty: kmod's default depmod.d dirs
    std::string output_dir;                        ///< -o: root to write under instead of base_dir
    std::string module_symvers;                    ///< -E
    std::string system_map;                        ///< -F
    bool print_unknown = false;                    ///< -e
    bool warn_dups = false;                        ///< -w
    bool verbose = false;                          ///< -v
    char symbol_prefix = '\0';                     ///< -P
    bool durable = true;                           ///< fsync each file and the directory
    /// The persisted parse cache (index::ParseCache): read before the first scan, rewritten
    /// after it when something was parsed. Empty: none.
    std::string parse_cache;
    bool save_parse_cache = true; ///< false: read the cache only (a dry run)
    unsigned parse_threads = 0;   ///< 0: one per core
    /// Make the outputs on two threads, holding them all until written (OutputBuilder::
    /// set_parallel): for a run that writes once and exits; a daemon keeps its peak low.
    bool parallel_outputs = false;
    /// Modules read from the parse cache keep what they can in its mapping, which stays
    /// mapped while they live (index::ModuleIndex::Settings::read_cache_in_place): for a run
    /// that exits when done.
    bool read_cache_in_place = false;
};

/// The module dir `options` name: "<base_dir>/<module_directory>/<kernel_version>", the
/// module directory taken under the base directory even when absolute (as kmod 34's -m).
[[nodiscard]] std::string module_dir_of(const DepmodOptions& options);

/// Where the parse cache of the run `options` describes lives under `cache_dir` (kmodd's is
/// /var/cache/kmodd): "<cache_dir>/<version>/modules.cache" for the system's own module dir,
/// else "<cache_dir>/trees/<hash of the module dir>/modules.cache", with a file `module-dir`
/// beside it naming the tree (see prune_parse_caches()).
[[nodiscard]] std::string parse_cache_path(const std::string& cache_dir,
                                           const DepmodOptions& options);

/// Removes the caches under "<cache_dir>/trees" whose module dir is gone (runs on temporary
/// trees would otherwise leave one each). Best effort: problems are ignored.
void prune_parse_caches(const std::string& cache_dir);

/// Figures of one index generation.
struct GenerationStats {
    size_t modules = 0;
    size_t files_written = 0; ///< outputs whose content changed and were replaced
    size_t files_parsed = 0;  ///< module files parsed since the previous generation
    size_t files_kept = 0;    ///< outputs not made: their inputs were the last generation's
    std::chrono::microseconds duration{0};
};

/// The depmod engine of one kernel version: keeps the module index in memory and
/// (re)writes the modules.* files. A full run is `scan()` then `write()`; afterwards
/// `update_path()` + `write()` re-parses only what changed and rewrites the outputs.
class Depmod {
public:
    /// Loads the configuration and the -E/-F symbol source. Errors: a symbol file that
    /// cannot be read (ENOENT, EACCES ...).
    [[nodiscard]] static base::Result<std::unique_ptr<Depmod>>
    create(DepmodOptions options, index::Diagnostics& diagnostics);

    /// The module dir being indexed: "<base>/<module_directory>/<version>".
    [[nodiscard]] const std::string& module_dir() const { return index_.settings().module_dir; }
    /// Where the outputs go.
    [[nodiscard]] const std::string& output_dir() const { return output_dir_; }

    /// Full walk of the tree (unchanged files are not parsed again). Right after
    /// outputs_are_current() said false, it takes the walk that call did instead of walking
    /// again.
    [[nodiscard]] base::Result<void> scan(index::Diagnostics& diagnostics);
    /// scan() of the module files `paths` alone instead of the tree (kmod's `depmod VERSION
    /// FILE...`): the index then holds those modules and no other. Errors: EINVAL for a path
    /// that is not absolute ("<path>: not absolute path."), the errno of stat(2) for a file
    /// that cannot be found ("could not create module <path>: <reason>"), as kmod words them.
    [[nodiscard]] base::Result<void> scan_files(const std::vector<std::string>& paths,
                                                index::Diagnostics& diagnostics);

    /// Whether the outputs on disk are provably what scan() and write() would write now, so
    /// that a run has nothing to do: the output state beside the parse cache (written by the
    /// last write()) names the same inputs, every module file found now has a usable cache
    /// entry and together they have the digest the state recorded, and every output file
    /// holds the bytes it recorded. Module files changed since (at most a few) are parsed again:
    /// when each gives what the parse cache has for it as that generation saw it, the outputs
    /// stand, and the cache, the state and modules.dep's time are brought up to date (see
    /// files_reparsed_unchanged()). When true, `diagnostics` gets what that run would have
    /// said (the walk's and the recorded generation's); otherwise nothing, and the walk it did
    /// (if it got that far) is kept for the scan() that follows. Needs a parse cache
    /// (DepmodOptions::parse_cache); the index stays empty either way.
    [[nodiscard]] bool outputs_are_current(index::Diagnostics& diagnostics);

    /// How many changed module files the last outputs_are_current() that said true parsed to
    /// prove the outputs current (0: nothing had changed).
    [[nodiscard]] size_t files_reparsed_unchanged() const { return files_reparsed_unchanged_; }
    /// How many changed module files the last outputs_are_current() that said true parsed to
    /// make the outputs from the last generation's (they import other symbols or have other
    /// aliases, and export what they did): the outputs are then current, made without a scan.
    [[nodiscard]] size_t files_spliced() const { return files_spliced_; }

    /// The last whole walk's directories: read, and taken from the listings the run before
    /// kept in the output state (unchanged since).
    struct WalkCounts {
        size_t read = 0;
        size_t replayed = 0;
    };
    [[nodiscard]] WalkCounts last_walk_counts() const { return walk_counts_; }

    /// One path changed, appeared or vanished (a module file, a directory, modules.order,
    /// modules.builtin*). Returns true when the outputs may change.
    bool update_path(const std::string& path, index::Diagnostics& diagnostics);

    /// Resolves the current module set and produces the outputs in memory. Fails on a
    /// dependency cycle (every cycle is in `diagnostics`).
    [[nodiscard]] base::Result<std::vector<OutputFile>> generate(index::Diagnostics& diagnostics);

    /// generate() and publish: every changed file is written to a temp file first (each as
    /// soon as it is made, and then freed); only when all are written are they renamed over
    /// the old ones, so a failing run changes nothing.
    /// Only files whose content differs from the file on disk are replaced (one of the same
    /// size is read to compare: the engine keeps no copy of its outputs); a modules.dep kept
    /// as it was gets the current time, as depmod -A compares it with the modules'.
    [[nodiscard]] base::Result<GenerationStats> write(index::Diagnostics& diagnostics);

    /// Removes the temp files that publishing runs killed before they finished (whose process
    /// is gone) left in the output directory and the parse cache's; says so as Info.
    void remove_stale_temp_files(index::Diagnostics& diagnostics) const;

    /// Takes `outputs` (from generate(), which said `said`) as what is on disk already, e.g.
    /// after checking that the files there are current: the next write() then replaces only
    /// what differs. The output state is saved as write() saves it.
    void adopt_as_published(const std::vector<OutputFile>& outputs, const index::Diagnostics& said);

    /// Waits for the parse cache a scan() is saving on another thread (it overlaps making the
    /// outputs) and gives what the save said. write(), scan() and outputs_are_current() do it
    /// themselves, and destruction waits for the save; a caller that stops after scan() calls
    /// it to hear of a failed save now, and one that adopt_as_published() calls it first (the
    /// output state goes into the directory a first save makes).
    void finish_cache_save(index::Diagnostics& diagnostics);

    [[nodiscard]] const index::ModuleIndex& index() const { return index_; }

private:
    Depmod(DepmodOptions options, index::ModuleIndex::Settings settings);
    void load_builtin_inputs();
    /// The digest of every input but the module files, given those read with the tree, for a
    /// run with -v (`verbose`) or without.
    [[nodiscard]] uint64_t inputs_digest(uint64_t modules_order, uint64_t builtin,
                                         uint64_t builtin_modinfo, bool verbose) const;
    /// inputs_digest() of what the index read with the tree, for this run's -v.
    [[nodiscard]] uint64_t current_inputs_digest() const;
    /// outputs_are_current() for module files whose keys differ from the published generation's
    /// (`state`), found by the walk that began at `started_ns`: those files parsed again, then
    /// the output files read. When proven, `state` is saved as it now stands (with the keys
    /// and listings_ of this walk).
    [[nodiscard]] bool
    prove_reparsed_unchanged(OutputState& state,
                             const std::vector<index::ModuleIndex::FoundFile>& files,
                             int64_t started_ns);
    /// A module file that changed and parses to another cache record than the published
    /// generation's: its index in the walk, the parse, that record's ModuleInfo part and its key.
    struct Reparsed {
        size_t file = 0;
        elf::ModuleInfo info;
        std::string_view cached;
        index::CacheKey key;
    };
    /// Whether this run and the published generation (`state`) allow splice_outputs().
    [[nodiscard]] bool may_splice(const OutputState& state) const;
    /// outputs_are_current() for module files (`changed`, of the walk `files` that began at
    /// `started_ns`) that import other symbols or have other aliases, export what they did, and
    /// have no soft or weak dependencies or device names: the outputs made from the published
    /// generation's graph and files (output_splice.cpp) and published, the changed modules'
    /// records put into the parse cache's delta and `state` saved with the files' keys now
    /// (`current`, their digest) and `renewed`. False, with nothing published, for anything
    /// else: a full run does the work.
    [[nodiscard]] bool splice_outputs(OutputState& state,
                                      const std::vector<index::ModuleIndex::FoundFile>& files,
                                      std::vector<Reparsed>& changed, int64_t started_ns,
                                      uint64_t current, std::vector<OutputState::Renewed> renewed);
    void save_output_state(std::vector<OutputState::File> files, const index::Diagnostics& said,
                           index::Diagnostics& diagnostics,
                           OutputState::Graph graph = OutputState::Graph());
    /// The graph of `resolution` for the output state, its files numbered in walk order.
    [[nodiscard]] OutputState::Graph graph_of(const index::Resolution& resolution) const;
    /// The output directory, made first when given as -o (kmod makes it too).
    [[nodiscard]] base::Result<base::UniqueFd> open_output_directory() const;
    /// write() but the wait for the parse cache's save.
    [[nodiscard]] base::Result<GenerationStats>
    generate_and_publish(index::Diagnostics& diagnostics);
    /// Saves `writer` (whose kept records borrow from `borrowed_from`) on another thread: the
    /// whole cache, or only its fresh records as the delta of `borrowed_from` (`delta_only`).
    void start_cache_save(std::unique_ptr<index::ParseCacheWriter> writer,
                          std::shared_ptr<const index::ParseCache> borrowed_from, bool delta_only);

    DepmodOptions options_;
    index::ModuleIndex index_;
    index::ResolveOptions resolve_options_;
    std::string output_dir_;
    BuiltinInputs builtin_;
    index::Diagnostics builtin_problems_; ///< missing modules.builtin files
    uint64_t builtin_digest_ = 0;         ///< base::Digest64::of_read() of modules.builtin
    uint64_t builtin_modinfo_digest_ = 0; ///< ... and of modules.builtin.modinfo
    uint64_t options_digest_ = 0;         ///< options but -v, configuration, -E/-F, kmodd's version
    /// When the first scan() began to look at files (see OutputState::keys_since_ns).
    int64_t scan_started_ns_ = 0;
    /// The walk outputs_are_current() did, for the scan() that follows it: what it found, what
    /// it said and when it began.
    struct Walk {
        std::vector<index::ModuleIndex::FoundFile> files;
        index::Diagnostics said;
        int64_t started_ns = 0;
    };
    std::optional<Walk> last_walk_;
    /// The directory listings of the last whole walk, kept in the output state for the next
    /// run's walk; empty when that walk said anything.
    std::vector<index::DirListing> listings_;
    WalkCounts walk_counts_;
    /// Takes the counts of a whole walk and, when it may be kept, its listings.
    void keep_listings(index::WalkMemo& memo);
    OutputBuilder outputs_;
    /// What the last published build left on disk, as its output state describes it: a build
    /// on the same inputs may keep some of those files (OutputBuilder::Keeper).
    struct Published {
        uint64_t inputs = 0; ///< inputs_digest()
        std::vector<OutputState::File> files;
    };
    std::optional<Published> published_;
    size_t parses_at_last_write_ = 0;
    size_t last_module_count_ = 0;
    size_t files_reparsed_unchanged_ = 0;
    size_t files_spliced_ = 0;
    /// The parse cache a proof that failed read, for the scan() that follows it.
    std::shared_ptr<const index::ParseCache> proof_cache_;
    /// The parse cache save scan() started: what it said, once done.
    std::future<index::Diagnostics> cache_save_;
};

} // namespace kmodd::depmod
