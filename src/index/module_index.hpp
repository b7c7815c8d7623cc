// SPDX-License-Identifier: LGPL-2.1-or-later
// The module index of one kernel version: modules, symbol owners, aliases, dependencies.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/byte_io.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "elf/module_info.hpp"
#include "index/depmod_config.hpp"
#include "index/diagnostic.hpp"
#include "index/parse_cache.hpp"
#include "index/parse_cache_format.hpp"
#include "index/vmlinux_symbols.hpp"

namespace kmodd::index {

/// Identity of a file's content as far as the parse cache is concerned.
struct FileKey {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0; ///< tells a `cp -p` over the file (same size and mtime) apart
    bool operator==(const FileKey&) const = default;
};

/// The FileKey of a file whose stat is `st`.
[[nodiscard]] FileKey file_key_of(const struct stat& st);

/// What a walk read from one directory of the tree, kept so that the next walk reads the
/// directory again only when it changed, as git's untracked cache does: a directory whose
/// identity (device, inode, size, mtime and ctime in nanoseconds) is the same, and did not
/// change shortly before the listing was taken, holds the same entries in the same readdir
/// order (which decides the priority of two files of one module name). Only what the walk
/// uses is kept: subdirectories and module files.
struct DirListing {
    struct Entry {
        std::string name;
        uint8_t type = 0;    ///< its d_type as read (DT_REG, DT_DIR, DT_LNK, DT_UNKNOWN ...)
        bool is_dir = false; ///< what it was found to be: a directory, or else a module file
        bool operator==(const Entry&) const = default;
    };
    std::string path;
    FileKey key; ///< the directory's (following symlinks), taken before it was read
    std::vector<Entry> entries;
    bool operator==(const DirListing&) const = default;
};

/// A walk's use of directory listings (ModuleIndex::list_files()).
struct WalkMemo {
    /// The last walk's listings: a directory found with the same key is not read again. The
    /// walk moves those it takes into `recorded`: what stays here is only their number.
    std::vector<DirListing> previous;
    /// This walk's listings, in walk order, for the next walk; a directory that changed
    /// within ParseCache::kRacyMarginNs before `since_ns` is left out (read again next time).
    std::vector<DirListing> recorded;
    int64_t since_ns = 0;
    /// Whether `recorded` may be kept: false when the walk said anything (a problem with an
    /// entry must be found, and said, by the next walk again).
    bool complete = true;
    /// Whether `recorded` is `previous` as it was, listing for listing.
    bool recorded_unchanged = false;
    /// Directories read by this walk, and those taken from `previous` instead.
    size_t read_count = 0;
    size_t replayed_count = 0;
    /// `previous` by path, made by the walk.
    std::unordered_map<std::string_view, const DirListing*> previous_by_path;
    /// Slots of `recorded` that `previous` fills once the walk is done, with the index of the
    /// listing in `previous` (a replayed listing is moved, not copied: ~5,000 names a tree).
    std::vector<std::pair<size_t, size_t>> replayed;
    /// The module dir, open during the walk (-1 when it could not be): a replayed entry under
    /// it is looked up from it.
    int module_dir_fd = -1;
};

/// What the index keeps of a parsed module file: only what resolving and the outputs need,
/// in compact form. The rest of .modinfo is dropped, and the symbol names live once in the
/// index's symbol table (Candidate::export_ids, import_ids). Immutable once made, shared by
/// index generations.
struct ParsedModule {
    /// Bits of import_flags.
    static constexpr uint8_t kImportIsWeak = 1;    ///< STB_WEAK: never reported as unknown
    static constexpr uint8_t kImportHasDot = 2;    ///< the name had a '.' (PPC64) stripped
    static constexpr uint8_t kImportHasPrefix = 4; ///< the name had the -P prefix stripped

    /// The .modinfo entries depmod's outputs use (kKeptModinfoKeys), in section order, each
    /// as "key=value" followed by a NUL; none when `cached_modinfo` holds them.
    std::string modinfo;
    /// Instead of `modinfo`, for a module read from a parse cache that stays mapped while it
    /// lives (`backing` keeps it): the record's .modinfo part as the cache stores it (a u32
    /// count, then each key and value as a u32 length and its bytes, checked when the record
    /// was read), which holds other keys too (the description).
    std::string_view cached_modinfo;
    std::shared_ptr<const void> backing;
    /// The CRC of each export (as Candidate::export_ids) and import (as import_ids): the low
    /// halves, and the high halves only when one of them is not zero. No import CRCs when
    /// the index does not keep them (Settings::keep_import_crcs).
    std::vector<uint32_t> export_crcs_low, export_crcs_high;
    std::vector<uint32_t> import_crcs_low, import_crcs_high;
    /// Per import, kImport* bits; empty when no import has any.
    std::vector<uint8_t> import_flags;

    /// The .modinfo keys kept in `modinfo`.
    static constexpr std::string_view kKeptModinfoKeys[] = {"alias", "softdep", "weakdep"};

    /// What the index keeps of `info`: imports looked up without PPC64's '.' and the -P
    /// `prefix` ('\0': none), import CRCs only when `keep_import_crcs`.
    [[nodiscard]] static std::shared_ptr<const ParsedModule>
    make(const elf::ModuleInfoView& info, char prefix, bool keep_import_crcs);
    /// The same, for `info` read from a parse cache record whose .modinfo part is
    /// `cached_modinfo`, in memory `backing` keeps: the entries are read from there, not copied.
    [[nodiscard]] static std::shared_ptr<const ParsedModule>
    make(const elf::ModuleInfoView& info, char prefix, bool keep_import_crcs,
         std::string_view cached_modinfo, std::shared_ptr<const void> backing);

    /// Whether `key` is one of kKeptModinfoKeys.
    [[nodiscard]] static bool keeps_modinfo_key(std::string_view key);

    /// Calls `visit(key, value)` for each kept .modinfo entry, in section order.
    template <typename Visit> void for_each_modinfo(Visit&& visit) const
    {
        if (backing) {
            base::ByteReader in(cached_modinfo);
            cache_format::read_modinfo_entries(in,
                                               [&](std::string_view key, std::string_view value) {
                                                   if (keeps_modinfo_key(key))
                                                       visit(key, value);
                                               });
            return;
        }
        std::string_view rest = modinfo;
        while (!rest.empty()) {
            size_t end = rest.find('\0');
            std::string_view entry = rest.substr(0, end);
            size_t equals = entry.find('=');
            visit(entry.substr(0, equals), entry.substr(equals + 1));
            rest.remove_prefix(end + 1);
        }
    }
    [[nodiscard]] uint64_t export_crc(size_t i) const
    {
        return export_crcs_high.empty() ? export_crcs_low[i]
                                        : uint64_t{export_crcs_high[i]} << 32 | export_crcs_low[i];
    }
    [[nodiscard]] uint64_t import_crc(size_t i) const
    {
        return import_crcs_high.empty() ? import_crcs_low[i]
                                        : uint64_t{import_crcs_high[i]} << 32 | import_crcs_low[i];
    }
    [[nodiscard]] uint8_t import_flag_bits(size_t i) const
    {
        return import_flags.empty() ? 0 : import_flags[i];
    }
    [[nodiscard]] bool is_weak_import(size_t i) const
    {
        return (import_flag_bits(i) & kImportIsWeak) != 0;
    }
};

/// The interned symbol ids of a module's exports or of its imports: owned, or read in place
/// from a parse cache record (native u32 values, not always 4-byte aligned) in memory that the
/// module's ParsedModule::backing keeps. As small as a std::vector (24 bytes).
class SymbolIds {
public:
    /// Owned: a copy of `ids`.
    void assign(std::span<const uint32_t> ids) { copy(ids.data(), ids.size()); }
    /// Owned: a copy of the u32 values `bytes` holds (any alignment).
    void assign_bytes(std::string_view bytes)
    {
        copy(bytes.data(), bytes.size() / sizeof(uint32_t));
    }
    /// Owned: room for `count` ids, returned for the caller to fill in.
    [[nodiscard]] uint32_t* fill(size_t count)
    {
        owned_.reset();
        if (count != 0)
            owned_ = std::make_unique_for_overwrite<uint32_t[]>(count);
        data_ = reinterpret_cast<const char*>(owned_.get());
        size_ = static_cast<uint32_t>(count);
        is_view_ = false;
        return owned_.get();
    }
    /// Read in place: `bytes` holds whole u32 values, and outlives this.
    void view(std::string_view bytes)
    {
        owned_.reset();
        data_ = bytes.data();
        size_ = static_cast<uint32_t>(bytes.size() / sizeof(uint32_t));
        is_view_ = true;
    }
    void clear() { assign({}); }
    [[nodiscard]] bool is_view() const { return is_view_; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }
    [[nodiscard]] uint32_t operator[](size_t i) const
    {
        uint32_t id = 0;
        std::memcpy(&id, data_ + i * sizeof id, sizeof id);
        return id;
    }
    /// All of them in one span: the owned ones, or the viewed ones copied into `scratch`.
    [[nodiscard]] std::span<const uint32_t> span(std::vector<uint32_t>& scratch) const
    {
        if (!is_view_)
            return {owned_.get(), size_};
        scratch.resize(size_);
        if (size_ != 0)
            std::memcpy(scratch.data(), data_, size_ * sizeof(uint32_t));
        return scratch;
    }

private:
    void copy(const void* ids, size_t count)
    {
        if (uint32_t* into = fill(count); count != 0)
            std::memcpy(into, ids, count * sizeof(uint32_t));
    }

    std::unique_ptr<uint32_t[]> owned_;
    const char* data_ = nullptr; ///< owned_'s, or the cache's bytes
    uint32_t size_ = 0;
    bool is_view_ = false;
};

/// One module file found in the tree (several files may carry the same module name; the
/// depmod.d priorities pick one).
struct Candidate {
    std::string path;        ///< "<module dir>/<relpath>", or the path inside an external dir
    uint32_t relpath_at = 0; ///< where relpath() starts in `path`; 0 for external modules
    std::string name;        ///< normalised module name
    size_t dir_len = 0;      ///< length of the directory part of `path` (no trailing '/')
    uint64_t seq = 0;        ///< discovery order: the first found wins a priority tie
    FileKey key;
    std::string symlink_target; ///< resolved target when `path` itself is a symlink
    /// What the file says; for a file that could not be parsed, an empty module (no modinfo,
    /// no symbols): kmod's depmod lists such a file without dependencies, so the outputs do.
    std::shared_ptr<const ParsedModule> parsed;
    std::string error;           ///< why the file could not be parsed; empty when it was
    uint32_t name_hash = 0;      ///< kmod_hash(name): kmod's hash-table order
    uint32_t order_key_size = 0; ///< length of order_key() in relpath()
    SymbolIds export_ids;        ///< interned symbol of each export (prefix stripped)
    SymbolIds import_ids;        ///< interned symbol of each import (lookup name)

    /// The path relative to the module dir (a part of `path`: ~4,000 strings fewer to keep
    /// on a distribution's tree); empty for external modules.
    [[nodiscard]] std::string_view relpath() const
    {
        return relpath_at == 0 ? std::string_view() : std::string_view(path).substr(relpath_at);
    }
    /// What modules.dep and friends print: the relpath, or the full path for externals.
    [[nodiscard]] std::string_view output_path() const
    {
        return relpath_at == 0 ? std::string_view(path) : relpath();
    }
    /// What a modules.order line must equal to name it: the start of relpath (empty for
    /// external modules).
    [[nodiscard]] std::string_view order_key() const { return relpath().substr(0, order_key_size); }
};

/// The module set resolved into kmod depmod's order, with dependencies.
/// Points into the ModuleIndex that made it: valid until that index changes.
struct Resolution {
    struct Module {
        const Candidate* file = nullptr;
        std::vector<uint32_t> deps; ///< direct dependencies (module positions)
        uint32_t dep_sort_idx = 0;  ///< topological rank: users before providers
    };
    /// 8 bytes, not the 24 of a name's view: a distribution's tree has ~21,000, twice.
    struct Symbol {
        uint32_t id = 0;    ///< in the index's symbol table: name_of()
        uint32_t owner = 0; ///< module position
    };
    std::vector<Module> modules; ///< kmod's array order: modules.order first, then hash order
    std::vector<Symbol> symbols; ///< symbols owned by modules, in kmod's symbol-table order
    std::vector<Symbol> symbols_by_name; ///< the same symbols sorted by name (strcmp)
    const std::vector<std::string_view>* symbol_names = nullptr; ///< the index's, by id

    [[nodiscard]] std::string_view name_of(const Symbol& symbol) const
    {
        return (*symbol_names)[symbol.id];
    }

    /// Every module `position` needs, transitively, ordered users before providers (the
    /// order of a modules.dep line; loaders insert it in reverse), into `out`. `seen` is
    /// caller-owned scratch space (sized on first use) for a loop over every module: each
    /// position may be asked once per `seen`.
    void closure(uint32_t position, std::vector<uint32_t>& out, std::vector<uint32_t>& seen) const;
};

/// Sets each module's dep_sort_idx as kmod's depmod ranks them, users before providers, given
/// in `users` how many modules use each (their deps entries); false when some are in a
/// dependency cycle: `users` then holds, per module, how many of its users are left unranked.
bool rank_for_dep_order(std::vector<Resolution::Module>& modules, std::vector<uint32_t>& users);

/// What a run of the resolver reports and checks.
struct ResolveOptions {
    bool check_symvers = false; ///< -E given: compare CRCs
    bool print_unknown = false; ///< -e: report unknown symbols and CRC mismatches
    bool verbose = false;       ///< -v: report each dependency edge
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
        unsigned parse_threads = 0;                 ///< 0: one per core
        std::vector<VmlinuxSymbol> vmlinux_symbols; ///< from -E / -F, plus the loader's own
        /// Whether the CRC of every import is kept. Without them (4 bytes per import, some
        /// 190,000 in a distribution kernel) resolve() must not be asked to compare CRCs
        /// (ResolveOptions check_symvers with print_unknown).
        bool keep_import_crcs = true;
        /// Whether a module read from the parse cache keeps its .modinfo entries and symbol
        /// ids in the cache's mapping (ParsedModule::cached_modinfo, SymbolIds::view()), which
        /// then stays mapped while any such module lives, and the cached modules are read on
        /// one thread before the rest are parsed (with nothing copied, a second thread that
        /// shares the heap's lock and fresh pages slows it down): for a run that exits when
        /// done, with one heap for all threads. A daemon copies them, on every core, and lets
        /// the mapping go once the next cache is saved.
        bool read_cache_in_place = false;
    };

    explicit ModuleIndex(Settings settings);

    /// Walks the module dir and the external dirs, adds what appeared, re-parses what changed
    /// and drops what vanished. Problems with single files are reported in `diagnostics` and
    /// the file is left out; an unreadable module dir is an error.
    [[nodiscard]] base::Result<void> scan(Diagnostics& diagnostics);

    /// A module file a walk found: its path (and the parts of it the index keys on), its
    /// resolved target when the path is a symlink, and its stat (following symlinks) when it
    /// could be taken.
    struct FoundFile {
        std::string path;
        uint32_t relpath_at = 0; ///< where the part under the module dir starts in `path`; 0
                                 ///< for an external directory's file
        std::string name;        ///< the module name
        size_t dir_len = 0;      ///< of the directory part of `path`
        std::string symlink_target;
        struct stat st {};
        bool has_stat = false;
    };
    /// Walks the module dir and the external dirs as scan() does (with the same diagnostics),
    /// without parsing or keeping anything. Errors: as scan().
    /// With `memo`, directories unchanged since the listings in it are not read again, and
    /// the listings of this walk are recorded into it.
    [[nodiscard]] base::Result<std::vector<FoundFile>> list_files(Diagnostics& diagnostics,
                                                                  WalkMemo* memo = nullptr) const;
    /// scan() on what list_files() found moments ago (its diagnostics already given), instead
    /// of walking the tree again.
    void scan(std::vector<FoundFile> walked, Diagnostics& diagnostics);
    /// One module file as the walk would have found it (depmod VERSION FILE...): `path`
    /// absolute; a file outside the module dir gets no relpath (its path is then written, as
    /// for an external directory's). Errors: the errno of stat(2) on it.
    [[nodiscard]] base::Result<FoundFile> describe_file(const std::string& path) const;

    /// The digest of one module file's path, identity and symlink target.
    [[nodiscard]] static uint64_t file_digest(std::string_view path, const FileKey& key,
                                              std::string_view symlink_target);
    /// The digest of every candidate (the sum of their file_digest(), so independent of
    /// order): equal for two module sets whose files are provably the same. Nothing when a
    /// candidate could not be parsed (one pass over them answers both).
    [[nodiscard]] std::optional<uint64_t> files_digest() const;
    /// base::Digest64::of_read() of modules.order as the last scan() or update_path() read it.
    [[nodiscard]] uint64_t modules_order_digest() const { return modules_order_digest_; }

    /// Applies a change of one path (a module file or a directory, existing or not) without
    /// walking the rest of the tree. Returns true when the module set may have changed.
    bool update_path(const std::string& path, Diagnostics& diagnostics);

    /// Orders the modules as kmod's depmod does and computes dependencies. Fails (EINVAL)
    /// when modules depend on each other in a cycle; the message names every cycle.
    /// Warnings (unknown symbols, modules.order problems, each cycle) go to `diagnostics`.
    [[nodiscard]] base::Result<Resolution> resolve(const ResolveOptions& options,
                                                   Diagnostics& diagnostics) const;

    /// A persisted parse cache: a file whose entry matches (see ParseCache::find()) is taken
    /// from it instead of being parsed. Null: none.
    void use_parse_cache(std::shared_ptr<const ParseCache> cache) { cache_ = std::move(cache); }
    /// Where each module file parsed or taken from the cache is recorded, for the next run;
    /// null: nowhere. It must outlive the calls that may parse (scan(), update_path()).
    void record_parses_into(ParseCacheWriter* writer) { cache_writer_ = writer; }

    [[nodiscard]] const Settings& settings() const { return settings_; }
    [[nodiscard]] size_t candidate_count() const { return candidates_.size(); }
    /// Module files parsed since the start (those taken from the parse cache not counted).
    [[nodiscard]] size_t parse_count() const { return parse_count_; }
    /// Module files taken from the parse cache since the start.
    [[nodiscard]] size_t cache_hit_count() const { return cache_hit_count_; }
    /// Of those, the ones whose symbols were numbered by the cache's symbol table (see
    /// ParseCache::symbols()) instead of looked up by name.
    [[nodiscard]] size_t cache_numbered_count() const { return cache_numbered_count_; }

    /// Every candidate (including unparseable ones), for watchers that need the symlink
    /// targets. Order unspecified.
    [[nodiscard]] std::vector<const Candidate*> candidates() const;

private:
    /// Adds the module files under `dir_fd` to `found`: regular files without their stat (see
    /// stat_found_files()), anything else with it.
    /// With `memo`, the listing of each directory read is recorded into it (keyed by `dir_st`,
    /// the directory's stat taken before it was read) and subdirectories go through
    /// enter_directory().
    void walk(base::UniqueFd directory, const std::string& dir_path, std::vector<FoundFile>& found,
              std::vector<std::pair<dev_t, ino_t>>& stack, Diagnostics& diagnostics,
              WalkMemo* memo = nullptr, const struct stat* dir_st = nullptr) const;
    /// What the walk says of a directory it cannot open.
    [[nodiscard]] static Diagnostic cannot_open_directory(const std::string& path, int err);
    /// The files of the directory `dir_path` (whose stat is `st`; opened as `directory`, or
    /// not yet when that is not valid): from the memo's listing when it is the same directory,
    /// else read by walk().
    void enter_directory(base::UniqueFd directory, const std::string& dir_path,
                         const struct stat& st, std::vector<FoundFile>& found,
                         std::vector<std::pair<dev_t, ino_t>>& stack, Diagnostics& diagnostics,
                         WalkMemo& memo) const;
    /// Fills the slots of `memo.recorded` the walk left for the listings it replayed.
    static void take_replayed_listings(WalkMemo& memo);
    /// Adds the files of `listing` as walk() would find them, or nothing and false when
    /// an entry is not what it was (a symlink's target changed).
    bool replay_directory(const DirListing& listing, std::vector<FoundFile>& found,
                          std::vector<std::pair<dev_t, ino_t>>& stack, Diagnostics& diagnostics,
                          WalkMemo& memo) const;
    /// The module file `path` (`name` in a directory whose path is `dir_len` long), as the walk
    /// finds it (without stat).
    [[nodiscard]] FoundFile found_file(std::string path, size_t dir_len, std::string_view name,
                                       bool is_symlink) const;
    base::Result<void> walk_all(std::vector<FoundFile>& found, Diagnostics& diagnostics,
                                WalkMemo* memo) const;
    /// The module dir as an O_PATH descriptor, for looking up the paths below it (invalid
    /// when it cannot be opened: they are then looked up whole).
    [[nodiscard]] base::UniqueFd open_module_dir_for_lookups() const;
    /// Stats the files walk() left without one, on several threads when they are many; those
    /// below the module dir from `module_dir_fd` (open_module_dir_for_lookups(), or -1).
    void stat_found_files(std::vector<FoundFile>& found, int module_dir_fd) const;
    bool merge(std::vector<FoundFile>& found, const std::string& scope, Diagnostics& diagnostics);
    /// A candidate merge() looks at, with the file as the walk found it (its stat is what the
    /// cache is asked for).
    struct Pending {
        Candidate* candidate;
        const FoundFile* found;
    };
    /// Gives the cache being written (record_parses_into()) the records of `unchanged`
    /// candidates, which merge() does not parse, from the cache read (use_parse_cache()).
    void keep_in_cache_written(const std::vector<Pending>& unchanged) const;
    /// Gives the cache being written the index's symbol table, unless too many of its names
    /// are no module's any more.
    void give_symbol_table_to_cache_written() const;
    bool is_excluded(std::string_view name) const;
    /// Makes the index's symbol table the cache's when the cache's begins with the index's
    /// (the index's empty, or as an earlier adoption or save left both): the names it lacks
    /// are added, in the cache's order, and a table that was empty takes the cache's two
    /// sorted orders too. True when the cache's ids are then the index's.
    bool adopt_cached_symbols();
    /// Sets the two sorted orders from `table`'s when they are orders of all its ids.
    bool take_cached_orders(const CachedSymbols& table);
    /// Drops the symbols from id `count` on (a failed adoption's).
    void truncate_symbols(size_t count);
    /// `candidate`'s export and import ids from a cache entry's ids part: read in place when
    /// `in_place` (its ParsedModule keeps the cache's bytes), else copied.
    static void take_cached_ids(Candidate& candidate, size_t export_count, std::string_view ids,
                                bool in_place);
    /// Symbols no module exports or imports and vmlinux does not export.
    [[nodiscard]] size_t unused_symbol_count() const;
    /// The symbol table as a ParseCacheWriter stores it.
    [[nodiscard]] std::string symbol_table_record() const;
    /// kmod's symbol-table order and strcmp order of symbol ids.
    [[nodiscard]] bool is_before_in_hash_order(uint32_t a, uint32_t b) const;
    [[nodiscard]] bool is_before_in_name_order(uint32_t a, uint32_t b) const
    {
        return symbol_names_[a] < symbol_names_[b];
    }
    bool is_higher_priority(const Candidate& old_file, const Candidate& new_file) const;
    void load_modules_order();
    /// The id of symbol `name` (whose kmod_hash() is `hash`), a new one when it is new.
    uint32_t intern(std::string_view name, uint32_t hash);
    std::string_view store_symbol_name(std::string_view name);
    static size_t slot_of(uint32_t hash, size_t mask);
    /// Rebuilds the open-addressed table with room for `count` names (twice as many slots,
    /// a power of two), at least twice the slots it has.
    void grow_symbol_slots(size_t count = 0);
    /// The names a module's exports and imports are interned by, with their hashes: worked
    /// out by each parsing thread before it takes the lock interning needs.
    struct SymbolLookups {
        std::vector<std::string_view> names; ///< the exports', then the imports'
        std::vector<uint32_t> hashes;
        size_t export_count = 0;
    };
    void look_up_symbols(const elf::ModuleInfoView& info, SymbolLookups& lookups) const;
    void intern_symbols(Candidate& candidate, const SymbolLookups& lookups);
    void sort_new_symbols();
    std::string import_name(const Candidate& c, size_t s) const;

    Settings settings_;
    /// By path; the key is the candidate's own `path`.
    std::unordered_map<std::string_view, std::unique_ptr<Candidate>> candidates_;
    uint64_t next_seq_ = 0;
    size_t parse_count_ = 0;
    size_t cache_hit_count_ = 0;
    size_t cache_numbered_count_ = 0;
    std::shared_ptr<const ParseCache> cache_;
    ParseCacheWriter* cache_writer_ = nullptr;
    std::string modules_order_text_;                          ///< the file, for the keys below
    std::unordered_map<std::string_view, int> modules_order_; ///< line -> kmod's sort key
    bool modules_order_ok_ = false; ///< false: missing or corrupted, no sorting
    uint64_t modules_order_digest_ = 0;
    Diagnostic modules_order_problem_; ///< reported by each resolve when not ok

    // Every symbol name seen, interned once: resolving then works on flat arrays.
    std::vector<std::unique_ptr<char[]>> name_blocks_; ///< where the names are stored
    char* name_block_next_ = nullptr;
    size_t name_block_free_ = 0;
    std::vector<std::string_view> symbol_names_; ///< id -> name
    std::vector<uint32_t> symbol_hashes_;        ///< id -> kmod_hash(name)
    /// The ids by name hash (open addressing, at most half full): a quarter of the memory of
    /// an unordered_map.
    std::vector<uint32_t> symbol_slots_;
    static constexpr uint32_t kNoSymbol = UINT32_MAX;
    std::vector<uint32_t> ids_in_hash_order_; ///< kmod's symbol-table iteration order
    std::vector<uint32_t> ids_in_name_order_; ///< strcmp order
    size_t sorted_symbol_count_ = 0;          ///< ids below this are in the two orders
    std::vector<uint8_t> is_vmlinux_;         ///< id -> exported by vmlinux (-E/-F)
    std::vector<uint64_t> vmlinux_crc_;       ///< id -> its CRC there
};

} // namespace kmodd::index
