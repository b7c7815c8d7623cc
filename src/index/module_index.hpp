// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "elf/module_info.hpp"
#include "index/depmod_config.hpp"
#include "index/diagnostic.hpp"
#include "index/vmlinux_symbols.hpp"

namespace kmodd::index {

/// Identity of a file's content as far as the parse cache is concerned.
struct FileKey {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileKey&) const = default;
};

/// A parsed module file: immutable once made, shared by index generations.
struct ParsedModule {
    elf::ModuleInfo info;
};

/// One module file found in the tree (several files may carry the same module name; the
/// depmod.d priorities pick one).
struct Candidate {
    std::string path;    ///< "<module dir>/<relpath>", or the path inside an external dir
    std::string relpath; ///< relative to the module dir; empty for external modules
    std::string name;    ///< normalised module name
    size_t dir_len = 0;  ///< length of the directory part of `path` (no trailing '/')
    uint64_t seq = 0;    ///< discovery order: the first found wins a priority tie
    FileKey key;
    std::string symlink_target; ///< resolved target when `path` itself is a symlink
    std::shared_ptr<const ParsedModule> parsed; ///< null when the file could not be parsed
    std::string error;                          ///< why `parsed` is null
    uint32_t name_hash = 0;            ///< kmod_hash(name): kmod's hash-table order
    std::string order_key;             ///< what a modules.order line must equal to name it
    std::vector<uint32_t> export_ids;  ///< interned symbol of each export (prefix stripped)
    std::vector<uint32_t> import_ids;  ///< interned symbol of each import (lookup name)

    /// What modules.dep and friends print: the relpath, or the full path for externals.
    [[nodiscard]] const std::string& output_path() const { return relpath.empty() ? path : relpath; }
};

/// The module set resolved into kmod depmod's order, with dependencies.
/// Points into the ModuleIndex that made it: valid until that index changes.
struct Resolution {
    struct Module {
        const Candidate* file = nullptr;
        std::vector<uint32_t> deps; ///< direct dependencies (module positions)
        uint32_t dep_sort_idx = 0;  ///< topological rank: users before providers
    };
    struct Symbol {
        std::string_view name;
        uint32_t owner = 0; ///< module position
    };
    std::vector<Module> modules; ///< kmod's array order: modules.order first, then hash order
    std::vector<Symbol> symbols; ///< symbols owned by modules, in kmod's symbol-table order
    std::vector<Symbol> symbols_by_name; ///< the same symbols sorted by name (strcmp)

    /// Every module `position` needs, transitively, ordered users before providers (the
    /// order of a modules.dep line; loaders insert it in reverse), into `out`. `seen` is
    /// caller-owned scratch space (sized on first use) for a loop over every module: each
    /// position may be asked once per `seen`.
    void closure(uint32_t position, std::vector<uint32_t>& out, std::vector<uint32_t>& seen) const;
};

/// What a run of the resolver reports and checks.
struct ResolveOptions {
    bool check_symvers = false;  ///< -E given: compare CRCs
    bool print_unknown = false;  ///< -e: report unknown symbols and CRC mismatches
    bool verbose = false;        ///< -v: report each dependency edge
};

/// The module index of one kernel version: every module file of the tree with its parsed
/// content, kept current incrementally. A full scan is the incremental update applied to
/// every file; files whose identity (device, inode, size, mtime) did not change are not
/// parsed again.
class ModuleIndex {
public:
    struct Settings {
        std::string module_dir; ///< absolute "<basedir>/lib/modules/<version>"
        DepmodConfig config;
        char symbol_prefix = '\0';
        unsigned parse_threads = 0; ///< 0: one per core
        std::vector<VmlinuxSymbol> vmlinux_symbols; ///< from -E / -F, plus the loader's own
    };

    explicit ModuleIndex(Settings settings);

    /// Walks the module dir and the external dirs, adds what appeared, re-parses what changed
    /// and drops what vanished. Problems with single files are reported in `diagnostics` and
    /// the file is left out; an unreadable module dir is an error.
    [[nodiscard]] base::Result<void> scan(Diagnostics& diagnostics);

    /// Applies a change of one path (a module file or a directory, existing or not) without
    /// walking the rest of the tree. Returns true when the module set may have changed.
    bool update_path(const std::string& path, Diagnostics& diagnostics);

    /// Orders the modules as kmod's depmod does and computes dependencies. Fails (EINVAL)
    /// when modules depend on each other in a cycle; the message names every cycle.
    /// Warnings (unknown symbols, modules.order problems, each cycle) go to `diagnostics`.
    [[nodiscard]] base::Result<Resolution> resolve(const ResolveOptions& options,
                                                   Diagnostics& diagnostics) const;

    [[nodiscard]] const Settings& settings() const { return settings_; }
    [[nodiscard]] size_t candidate_count() const { return candidates_.size(); }
    [[nodiscard]] size_t parse_count() const { return parse_count_; }

    /// Every candidate (including unparseable ones), for watchers that need the symlink
    /// targets. Order unspecified.
    [[nodiscard]] std::vector<const Candidate*> candidates() const;

private:
    struct Found;
    void walk(int dir_fd, const std::string& dir_path, bool is_external, std::vector<Found>& found,
              std::vector<std::pair<dev_t, ino_t>>& stack, Diagnostics& diagnostics) const;
    bool merge(std::vector<Found>& found, const std::string& scope, Diagnostics& diagnostics);
    std::shared_ptr<const ParsedModule> parse(const std::string& path, FileKey& key,
                                              std::string& error) const;
    bool is_excluded(std::string_view name) const;
    bool is_higher_priority(const Candidate& old_file, const Candidate& new_file) const;
    void load_modules_order();
    uint32_t intern(std::string_view name);
    void intern_symbols(Candidate& candidate);
    void sort_new_symbols();

    Settings settings_;
    std::unordered_map<std::string, Candidate> candidates_; ///< by path
    uint64_t next_seq_ = 0;
    size_t parse_count_ = 0;
    std::unordered_map<std::string, int> modules_order_; ///< line -> kmod's sort key
    bool modules_order_ok_ = false;          ///< false: missing or corrupted, no sorting
    Diagnostic modules_order_problem_;       ///< reported by each resolve when not ok

    // Every symbol name seen, interned once: resolving then works on flat arrays.
    std::deque<std::string> symbol_names_;                  ///< id -> name
    std::unordered_map<std::string_view, uint32_t> symbol_ids_;
    std::vector<uint32_t> symbol_buckets_;      ///< id -> kmod symbol-table bucket
    std::vector<uint32_t> ids_in_hash_order_;   ///< kmod's symbol-table iteration order
    std::vector<uint32_t> ids_in_name_order_;   ///< strcmp order
    size_t sorted_symbol_count_ = 0;            ///< ids below this are in the two orders
    std::vector<uint8_t> is_vmlinux_;           ///< id -> exported by vmlinux (-E/-F)
    std::vector<uint64_t> vmlinux_crc_;         ///< id -> its CRC there
};

} // namespace kmodd::index
