// SPDX-License-Identifier: LGPL-2.1-or-later
// The persisted parse cache: what the index needs of each module file, kept on disk between
// runs and reused only for a file that is provably the same.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/byte_io.hpp"
#include "base/file.hpp"
#include "base/result.hpp"
#include "elf/module_info.hpp"

namespace kmodd::index {

/// What proves a file unchanged: its identity and times in nanoseconds, and the resolved target
/// when the module's path is a symlink.
struct CacheKey {
    uint64_t dev = 0;
    uint64_t ino = 0;
    int64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    std::string symlink_target;

    /// The key of a file whose stat is `st`.
    [[nodiscard]] static CacheKey of(const struct stat& st, std::string symlink_target);
    bool operator==(const CacheKey&) const = default;
};

/// The symbol table a cache's entries number their symbols by: the names as the index looks
/// them up (without the -P prefix it was made with) in id order, and the ids in the index's
/// two sorted orders. Views into the cache's bytes.
struct CachedSymbols {
    char prefix = '\0';
    uint32_t count = 0;
    std::string_view names;      ///< `count` names, each as base::put_string() writes it
    std::string_view hash_order; ///< `count` native u32 ids: kmod's symbol-table order
    std::string_view name_order; ///< `count` native u32 ids: strcmp order
};

/// An entry of a cache as ParseCache::find_view() gives it.
struct CachedRecord {
    std::string_view whole;   ///< as stored, for ParseCacheWriter::add_raw(); none: the delta's
    std::string_view head;    ///< all but the symbol ids: path, key and ModuleInfo part
    std::string_view ids;     ///< native u32 ids of the exports, then of the imports; or none
    std::string_view modinfo; ///< the ModuleInfo part, from its .modinfo entries on
    /// Keeps the bytes all these views point into (the cache's mapping), also once the
    /// ParseCache is gone, for as long as a copy of it lives.
    const std::shared_ptr<const void>* keeper = nullptr;
};

/// A cache file as read: the entries of the run that wrote it. The format (native byte order
/// only) is a header (magic "kmoddPC\n", format version, byte-order mark, the time the writing
/// run started, entry count, payload size, CRC-32C of the payload and then these three), the
/// entries, in any order, and the symbol table (see CachedSymbols: prefix, count, names, the
/// two orders). An entry is path, key, the parts of the module's ModuleInfo the index uses (the
/// .modinfo entries it keeps and the description, exports and imports with their CRCs) and the
/// ids of its exports and imports in the symbol table (none when its writer had none). Every
/// length is checked against what is left.
///
/// Beside the cache file may lie its delta (delta_path()): a file of the same format with the
/// records of the few modules parsed since (ParseCacheWriter::save_fresh_only()), which a run
/// that changed little writes instead of the whole cache. Its entries come first; their ids are
/// never used (they number another run's table), so their names are looked up again.
class ParseCache {
public:
    /// Entries whose file changed within this time before the writing run started are not
    /// trusted (git's racy-timestamp rule): a change within the file system's timestamp
    /// granularity could have kept every time the same.
    static constexpr int64_t kRacyMarginNs = 2'000'000'000;

    ParseCache() = default;

    /// Reads a cache file's content. Errors: EINVAL for anything that is not a whole, intact
    /// cache of this format version (the message says what is wrong).
    [[nodiscard]] static base::Result<ParseCache> parse(std::string bytes);
    /// Reads the cache file `path`, and its delta when there is one that was written after it.
    /// Errors: ENOENT when there is no cache file, the errno of reading either, or parse()'s
    /// EINVAL; the message names the file.
    [[nodiscard]] static base::Result<ParseCache> load(const std::string& path);
    /// Where the delta of the cache file `path` lies.
    [[nodiscard]] static std::string delta_path(const std::string& path) { return path + ".delta"; }

    /// The cached parse of `path` when its entry has exactly `key` and was not racy when
    /// written; empty otherwise. The ModuleInfo holds only what the index uses, and the
    /// description.
    [[nodiscard]] std::optional<elf::ModuleInfo> find(const std::string& path,
                                                      const CacheKey& key) const;
    /// find() without copying a string: `info` gets views into this cache's bytes (valid while
    /// it lives). Returns the record's parts (its whole as raw_entry() would; no whole and no
    /// ids for an entry of the delta); empty (`info` as it was) when find() would not use the
    /// entry.
    [[nodiscard]] std::optional<CachedRecord>
    find_view(const std::string& path, const CacheKey& key, elf::ModuleInfoView& info) const;
    /// The .modinfo description of `path` when its entry has exactly `key` and was not racy
    /// ("" when the module has none); empty when find() would not use the entry.
    [[nodiscard]] std::optional<std::string> description(const std::string& path,
                                                         const CacheKey& key) const;
    /// The entry of `path` as stored, for copying it into a new cache unchanged; empty when
    /// find() would not use it or it is the delta's.
    [[nodiscard]] std::optional<std::string_view> raw_entry(const std::string& path,
                                                            const CacheKey& key) const;

    /// The entry of `path` whatever its key, as stored: its key and the bytes of its ModuleInfo
    /// part (compare with append_info_record()); the delta's when it has one. Empty when there
    /// is none or it was racy when written.
    struct Stored {
        const CacheKey* key = nullptr;
        std::string_view info;
    };
    [[nodiscard]] std::optional<Stored> stored_entry(const std::string& path) const;

    /// The delta's entries a run may use (not racy when it was written), each as its path and
    /// CachedRecord::head, for a run that writes the next delta without a scan.
    [[nodiscard]] std::vector<std::pair<std::string_view, std::string_view>> delta_heads() const;

    /// Every entry's path and key, in no particular order, the delta's first (for tools and
    /// tests).
    [[nodiscard]] std::vector<std::pair<std::string, CacheKey>> keys() const;

    /// The table the entries' ids refer to; empty when it has no names or some entry with
    /// symbols has no ids or an id past its end (the names are then looked up again).
    [[nodiscard]] const std::optional<CachedSymbols>& symbols() const { return symbols_; }

    /// The cache file's entries, not counting the delta's.
    [[nodiscard]] size_t size() const { return entries_.size(); }
    /// The delta's entries.
    [[nodiscard]] size_t delta_size() const { return newer_ ? newer_->size() : 0; }
    [[nodiscard]] int64_t started_ns() const { return started_ns_; }

private:
    struct Entry {
        CacheKey key;
        std::string_view record; ///< the whole record in bytes_, for raw_entry()
        std::string_view info;   ///< the ModuleInfo part of it
        std::string_view ids;    ///< the ids part's u32 values
    };
    /// The entry of `path` when it has `key` and was not racy (the delta's first); null
    /// otherwise. `in_delta` tells whose it is.
    [[nodiscard]] const Entry* usable_entry(const std::string& path, const CacheKey& key,
                                            bool* in_delta = nullptr) const;
    /// CachedRecord::head of `entry`: its record up to the ids.
    [[nodiscard]] static std::string_view head_of(const Entry& entry);
    /// This file's own entry of `path` when it has `key` and was not racy.
    [[nodiscard]] const Entry* own_usable_entry(const std::string& path, const CacheKey& key) const;
    /// Reads the one cache file `path`.
    [[nodiscard]] static base::Result<ParseCache> load_file(const std::string& path);

    /// Checks the cache in `bytes_` and fills in the entries.
    [[nodiscard]] base::Result<void> read_entries();
    /// read_entries()' reading of the `count` entries in `payload`, and of the symbol table.
    [[nodiscard]] base::Result<void> read_entry_list(std::string_view payload, uint64_t count);
    /// Reads the symbol table at the end of the payload; false when it is malformed.
    bool read_symbols(base::ByteReader& in, bool every_entry_has_ids, uint32_t max_id);

    /// The bytes given to parse() or the file load() mapped (a std::string or a
    /// base::MappedFile), shared with the views CachedRecord::keeper keeps.
    std::shared_ptr<const void> keeper_;
    std::string_view bytes_; ///< what keeper_ holds
    int64_t started_ns_ = 0;
    std::unordered_map<std::string_view, Entry> entries_; ///< keys point into bytes_
    std::optional<CachedSymbols> symbols_;
    std::unique_ptr<ParseCache> newer_; ///< the delta, when one was read
};

/// A new cache file, filled while a scan runs (add() may be called from several threads) and
/// written atomically with save(). With stream_into(), records are written to a temp file beside
/// the cache as they come, once they fill a small buffer, so a full scan never holds them all.
class ParseCacheWriter {
public:
    /// `started_ns`: the realtime clock when the run began to look at files.
    explicit ParseCacheWriter(int64_t started_ns);

    /// Streams the records towards the cache file `path` (see save()).
    void stream_into(std::string path) { stream_path_ = std::move(path); }

    /// Records the parse of `path`. Only what the index uses, and the description, is kept,
    /// with the ids of its exports and imports in the table set_symbol_table() is given (none:
    /// the next run cannot use that table and looks every name up).
    void add(const std::string& path, const CacheKey& key, const elf::ModuleInfo& info,
             std::span<const uint32_t> export_ids = {}, std::span<const uint32_t> import_ids = {});
    /// Records an entry of an older cache as it is (see ParseCache::raw_entry()), its ids too:
    /// only for a table that gives each of those ids the name the older one gave it. The bytes
    /// are borrowed: that cache must outlive save() (and serialize()).
    void add_raw(std::string_view record);
    /// Records an entry of an older cache (CachedRecord::head) with other ids.
    void add_renumbered(std::string_view head, std::span<const uint32_t> export_ids,
                        std::span<const uint32_t> import_ids);
    /// The symbol table (see append_symbol_table()) written after the records; none when never
    /// given.
    void set_symbol_table(std::string table);

    /// The cache file's content, for a writer that streams nowhere.
    [[nodiscard]] std::string serialize() const;
    /// The records add() and add_renumbered() made: those not copied from an older cache as
    /// they were.
    [[nodiscard]] size_t fresh_count() const;
    /// Lets the fresh records go into a delta when they are at least one and at most `records`
    /// (none by default).
    void limit_delta_to(size_t records);
    /// Whether the fresh records, as they are now, make a delta (save_fresh_only()) and not a
    /// whole cache: then no symbol table is needed (a delta has none).
    [[nodiscard]] bool saves_delta_only() const;
    /// Replaces the file `path` atomically with a cache of only the fresh records and no symbol
    /// table: the delta of the cache they would otherwise be saved into (ParseCache). Errors:
    /// EINVAL when some fresh record was already streamed out (too many for a delta; save()
    /// then still writes the whole cache), else as save().
    [[nodiscard]] base::Result<void> save_fresh_only(const std::string& path);
    /// Replaces the file `path` (the stream_into() path when streaming) atomically: temp file,
    /// rename; no fsync (a file torn by a crash fails its checksum and is rebuilt). Creates its
    /// directory (mode 0755) when missing. Errors: the errno of the step that failed (also of
    /// an earlier streamed write), naming the path.
    [[nodiscard]] base::Result<void> save(const std::string& path);

    [[nodiscard]] size_t size() const { return count_; }

private:
    /// Adds a record this writer made.
    void take(std::string_view record);
    /// Writes the borrowed and pending records to the file (opening it first); lock_ held.
    void spill_locked();
    /// The header of a file of `count` records and `payload_size` bytes (the symbol table
    /// too), given the CRC-32 of the whole payload.
    [[nodiscard]] std::string header(uint64_t count, uint64_t payload_size,
                                     uint32_t payload_crc) const;

    int64_t started_ns_;
    std::string stream_path_;
    mutable std::mutex lock_;
    base::StreamedFile file_;
    std::optional<base::Error> stream_error_; ///< the first failed write; later records dropped
    std::string pending_;                     ///< records add() made, not written yet
    std::vector<std::string_view> borrowed_;  ///< records add_raw() was given, not written yet
    std::string symbol_table_;                ///< written after the last record; none: empty
    uint64_t payload_size_ = 0;               ///< every record's bytes, written or not
    uint32_t written_crc_ = 0;                ///< CRC-32 of the bytes written to file_
    uint64_t count_ = 0;
    uint64_t fresh_count_ = 0;    ///< of count_, the records made by take()
    uint64_t delta_limit_ = 0;    ///< see limit_delta_to()
    bool fresh_streamed_ = false; ///< some of them went out to file_
};

/// A CacheKey as a cache record stores it (the output state stores keys the same way), and
/// reading it back; false when the bytes run out.
void append_cache_key(std::string& out, const CacheKey& key);
[[nodiscard]] bool read_cache_key(base::ByteReader& in, CacheKey& key);

/// The ModuleInfo part of a cache record for `info`, as the writer stores it: what the index
/// uses and the description. Two parses that give the same bytes here make the same outputs.
void append_info_record(std::string& out, const elf::ModuleInfo& info);
/// Reads such bytes (ParseCache::Stored::info) into `info`, whose views then point into
/// `bytes`; false when they are malformed.
[[nodiscard]] bool read_info_record(std::string_view bytes, elf::ModuleInfoView& info);

/// A cache's symbol table (CachedSymbols) as a writer stores it: `names` in id order (lookup
/// names, without the -P `prefix`) and the ids in the two orders.
void append_symbol_table(std::string& out, char prefix, std::span<const std::string_view> names,
                         std::span<const uint32_t> hash_order,
                         std::span<const uint32_t> name_order);

/// Whether a file with these times may have changed unseen by a run that looked at it at
/// `since_ns` (ParseCache::kRacyMarginNs before it, or later).
[[nodiscard]] bool is_racy(int64_t mtime_ns, int64_t ctime_ns, int64_t since_ns);

/// The realtime clock in nanoseconds, for ParseCacheWriter.
[[nodiscard]] int64_t realtime_ns();

} // namespace kmodd::index
