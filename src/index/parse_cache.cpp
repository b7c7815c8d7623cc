// SPDX-License-Identifier: LGPL-2.1-or-later
// The persisted parse cache: its records' format, and reading it with every length checked.
#include "index/parse_cache.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <thread>
#include <type_traits>

#include "base/byte_io.hpp"
#include "base/crc32c.hpp"
#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/threads.hpp"
#include "index/module_index.hpp"
#include "index/parse_cache_format.hpp"

namespace kmodd::index {

using namespace cache_format;

namespace {

// A record may not claim more than the payload holds; these bound the counts further so that a
// hostile file cannot make a reader reserve memory it does not back with bytes.
constexpr size_t kMinEntryBytes = 4;

static_assert(std::numeric_limits<unsigned char>::digits == 8);

/// A payload at least this big has its checksum worked out on a thread of its own.
constexpr size_t kChecksumWorthAThread = size_t{1} << 20;

/// Reads a record's ModuleInfo part into `info` (an elf::ModuleInfo, which copies the strings,
/// or an elf::ModuleInfoView, which points into `in`'s bytes), or only checks it (null); false
/// when it is malformed. `symbols` gets its count of exports and imports.
template <typename Info> bool read_info(base::ByteReader& in, Info* info, size_t* symbols = nullptr)
{
    using Text = std::remove_cvref_t<decltype(info->modinfo.front().key)>;
    if (!read_modinfo_entries(in, [&](std::string_view key, std::string_view value) {
            if (info != nullptr)
                info->modinfo.push_back({Text(key), Text(value)});
        }))
        return false;
    uint32_t count = 0;
    if (!in.get_count(count, 12))
        return false;
    const uint32_t exports = count;
    if (info != nullptr)
        info->exports.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view name;
        uint64_t crc = 0;
        if (!in.get_string(name) || !in.get(crc))
            return false;
        if (info != nullptr)
            info->exports.push_back({Text(name), crc});
    }
    if (!in.get_count(count, 13))
        return false;
    if (info != nullptr)
        info->imports.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view name;
        uint64_t crc = 0;
        uint8_t is_weak = 0;
        if (!in.get_string(name) || !in.get(crc) || !in.get(is_weak) || is_weak > 1)
            return false;
        if (info != nullptr)
            info->imports.push_back({Text(name), crc, is_weak == 1});
    }
    if (symbols != nullptr)
        *symbols =
            info != nullptr ? info->exports.size() + info->imports.size() : size_t{exports} + count;
    return true;
}

/// The .modinfo keys a record keeps: those of the index, and the description, which the daemon's
/// module search reads (service::DescriptionCache) and which would otherwise cost a read of
/// every module file after a restart.
bool is_kept_key(std::string_view key)
{
    return key == "description" || std::find(std::begin(ParsedModule::kKeptModinfoKeys),
                                             std::end(ParsedModule::kKeptModinfoKeys),
                                             key) != std::end(ParsedModule::kKeptModinfoKeys);
}

base::Unexpected invalid(const std::string& what)
{
    return base::make_error(EINVAL, what);
}

} // namespace

bool read_info_record(std::string_view bytes, elf::ModuleInfoView& info)
{
    info.clear();
    base::ByteReader in(bytes);
    return read_info(in, &info) && in.left() == 0;
}

CacheKey CacheKey::of(const struct stat& st, std::string symlink_target)
{
    return CacheKey{static_cast<uint64_t>(st.st_dev),
                    static_cast<uint64_t>(st.st_ino),
                    static_cast<int64_t>(st.st_size),
                    static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                    static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec,
                    std::move(symlink_target)};
}

bool is_racy(int64_t mtime_ns, int64_t ctime_ns, int64_t since_ns)
{
    // A time from a damaged file may be anything: no overflow below.
    if (since_ns < std::numeric_limits<int64_t>::min() + ParseCache::kRacyMarginNs)
        return true;
    return std::max(mtime_ns, ctime_ns) >= since_ns - ParseCache::kRacyMarginNs;
}

int64_t realtime_ns()
{
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

base::Result<ParseCache> ParseCache::parse(std::string bytes)
{
    ParseCache cache;
    auto owned = std::make_shared<const std::string>(std::move(bytes));
    cache.bytes_ = *owned;
    cache.keeper_ = std::move(owned);
    if (auto read = cache.read_entries(); !read)
        return base::Unexpected(read.error());
    return cache;
}

base::Result<ParseCache> ParseCache::load_file(const std::string& path)
{
    auto mapped = base::MappedFile::open(AT_FDCWD, path);
    if (!mapped)
        return base::Unexpected(mapped.error());
    ParseCache cache;
    auto kept = std::make_shared<const base::MappedFile>(std::move(*mapped));
    cache.bytes_ = kept->bytes();
    cache.keeper_ = std::move(kept);
    if (auto read = cache.read_entries(); !read)
        return base::make_error(read.error().code,
                                base::quoted(path) + ": " + read.error().message);
    return cache;
}

base::Result<ParseCache> ParseCache::load(const std::string& path)
{
    auto cache = load_file(path);
    if (!cache)
        return cache;
    auto delta = load_file(delta_path(path));
    if (!delta && delta.error().code != ENOENT)
        return base::Unexpected(delta.error());
    // One older than the cache file was left by a run that rewrote that file and died before
    // it removed the delta: what the delta holds is in the cache file too, or out of date.
    if (delta && delta->started_ns_ >= cache->started_ns_)
        cache->newer_ = std::make_unique<ParseCache>(std::move(*delta));
    return cache;
}

base::Result<void> ParseCache::read_entries()
{
    const std::string_view bytes = bytes_;
    if (bytes.size() < kHeaderSize)
        return (invalid("too short for a cache header"));
    if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
        return (invalid("not a kmodd parse cache"));
    base::ByteReader header(bytes.substr(sizeof kMagic, kHeaderSize - sizeof kMagic));
    uint32_t version = 0, mark = 0, crc = 0, padding = 0;
    uint64_t count = 0, payload_size = 0;
    header.get(version);
    header.get(mark);
    if (mark != kByteOrderMark)
        return (invalid("written on a machine of the other byte order"));
    if (version != kFormatVersion)
        return (invalid("format version " + std::to_string(version) +
                        ", this kmodd reads version " + std::to_string(kFormatVersion)));
    header.get(started_ns_);
    header.get(count);
    header.get(payload_size);
    header.get(crc);
    header.get(padding);
    if (payload_size != bytes.size() - kHeaderSize)
        return (invalid("truncated or extended: the header says " + std::to_string(payload_size) +
                        " bytes of entries, " + std::to_string(bytes.size() - kHeaderSize) +
                        " follow"));
    const std::string_view payload = bytes.substr(kHeaderSize);
    // A big cache's checksum is worked out on another thread while its entries are read: each
    // pass alone is mostly the first touch of the mapped pages. Nothing read is kept unless
    // the checksum matches, and a mismatch is what is said, whatever else is wrong.
    uint32_t computed = 0;
    auto checksum = [&] {
        computed = base::crc32c(base::crc32c(0, payload),
                                bytes.substr(kCheckedHeaderStart, kCheckedHeaderSize));
    };
    std::thread checksum_thread;
    if (payload.size() >= kChecksumWorthAThread)
        checksum_thread = base::try_start_thread(checksum);
    if (!checksum_thread.joinable()) {
        checksum();
        if (computed != crc)
            return (invalid("checksum mismatch"));
    }
    auto read = read_entry_list(payload, count);
    if (checksum_thread.joinable())
        checksum_thread.join();
    if (computed != crc) {
        entries_.clear();
        return (invalid("checksum mismatch"));
    }
    if (!read)
        entries_.clear();
    return read;
}

base::Result<void> ParseCache::read_entry_list(std::string_view payload, uint64_t count)
{
    if (count > payload.size() / kMinEntryBytes)
        return (invalid("more entries than bytes"));

    // The entries point into the bytes (a moved string or mapping stays where it is).
    base::ByteReader in(payload);
    entries_.reserve(count);
    bool every_entry_has_ids = true;
    uint32_t max_id = 0;
    for (uint64_t i = 0; i < count; ++i) {
        const char* start = in.position();
        std::string_view path;
        Entry entry;
        if (!in.get_string(path) || !read_cache_key(in, entry.key))
            return (invalid("entry " + std::to_string(i) + " is malformed"));
        const char* info_start = in.position();
        size_t symbols = 0;
        uint32_t id_count = 0;
        if (!read_info<elf::ModuleInfo>(in, nullptr, &symbols))
            return (invalid("entry " + std::to_string(i) + " (" + base::quoted(path) +
                            ") is malformed"));
        entry.info = std::string_view(info_start, static_cast<size_t>(in.position() - info_start));
        if (!in.get_count(id_count, 4) || (id_count != 0 && id_count != symbols) ||
            !in.get_bytes(entry.ids, size_t{id_count} * 4))
            return (invalid("entry " + std::to_string(i) + " (" + base::quoted(path) +
                            ") has ids that are not its symbols'"));
        every_entry_has_ids &= id_count == symbols;
        for (size_t at = 0; at < entry.ids.size(); at += 4) {
            uint32_t id = 0;
            std::memcpy(&id, entry.ids.data() + at, 4);
            max_id = std::max(max_id, id);
        }
        entry.record = std::string_view(start, static_cast<size_t>(in.position() - start));
        if (!entries_.emplace(path, std::move(entry)).second)
            return (invalid("entry " + std::to_string(i) + " repeats " + base::quoted(path)));
    }
    if (!read_symbols(in, every_entry_has_ids, max_id))
        return (invalid("the symbol table after the entries is malformed"));
    if (in.left() != 0)
        return (invalid("bytes after the symbol table"));
    return {};
}

bool ParseCache::read_symbols(base::ByteReader& in, bool every_entry_has_ids, uint32_t max_id)
{
    CachedSymbols table;
    uint32_t prefix = 0;
    if (!in.get(prefix) || prefix > 0xFF || !in.get_count(table.count, 12))
        return false;
    table.prefix = static_cast<char>(prefix);
    const char* names_start = in.position();
    for (uint32_t i = 0; i < table.count; ++i) {
        std::string_view name;
        if (!in.get_string(name))
            return false;
    }
    table.names = std::string_view(names_start, static_cast<size_t>(in.position() - names_start));
    if (!in.get_bytes(table.hash_order, size_t{table.count} * 4) ||
        !in.get_bytes(table.name_order, size_t{table.count} * 4))
        return false;
    if (table.count != 0 && every_entry_has_ids && max_id < table.count)
        symbols_ = table;
    return true;
}

const ParseCache::Entry* ParseCache::usable_entry(const std::string& path, const CacheKey& key,
                                                  bool* in_delta) const
{
    const Entry* newer = newer_ ? newer_->own_usable_entry(path, key) : nullptr;
    if (in_delta != nullptr)
        *in_delta = newer != nullptr;
    return newer != nullptr ? newer : own_usable_entry(path, key);
}

const ParseCache::Entry* ParseCache::own_usable_entry(const std::string& path,
                                                      const CacheKey& key) const
{
    auto it = entries_.find(path);
    if (it == entries_.end() || !(it->second.key == key))
        return nullptr;
    // Changed shortly before the writing run looked at it: the same times may hide a change.
    if (is_racy(key.mtime_ns, key.ctime_ns, started_ns_))
        return nullptr;
    return &it->second;
}

std::optional<ParseCache::Stored> ParseCache::stored_entry(const std::string& path) const
{
    if (newer_) {
        if (auto newer = newer_->stored_entry(path))
            return newer;
    }
    auto it = entries_.find(path);
    if (it == entries_.end())
        return std::nullopt;
    const Entry& entry = it->second;
    if (is_racy(entry.key.mtime_ns, entry.key.ctime_ns, started_ns_))
        return std::nullopt;
    return Stored{&entry.key, entry.info};
}

std::string_view ParseCache::head_of(const Entry& entry)
{
    const char* head_end = entry.info.data() + entry.info.size();
    return {entry.record.data(), static_cast<size_t>(head_end - entry.record.data())};
}

std::vector<std::pair<std::string_view, std::string_view>> ParseCache::delta_heads() const
{
    std::vector<std::pair<std::string_view, std::string_view>> heads;
    if (!newer_)
        return heads;
    for (const auto& [path, entry] : newer_->entries_) {
        if (is_racy(entry.key.mtime_ns, entry.key.ctime_ns, newer_->started_ns_))
            continue;
        heads.emplace_back(path, head_of(entry));
    }
    return heads;
}

std::vector<std::pair<std::string, CacheKey>> ParseCache::keys() const
{
    std::vector<std::pair<std::string, CacheKey>> keys;
    if (newer_)
        keys = newer_->keys();
    keys.reserve(keys.size() + entries_.size());
    for (const auto& [path, entry] : entries_)
        keys.emplace_back(std::string(path), entry.key);
    return keys;
}

std::optional<std::string_view> ParseCache::raw_entry(const std::string& path,
                                                      const CacheKey& key) const
{
    bool in_delta = false;
    const Entry* entry = usable_entry(path, key, &in_delta);
    return entry != nullptr && !in_delta ? std::optional(entry->record) : std::nullopt;
}

std::optional<elf::ModuleInfo> ParseCache::find(const std::string& path, const CacheKey& key) const
{
    const Entry* entry = usable_entry(path, key);
    if (entry == nullptr)
        return std::nullopt;
    elf::ModuleInfo info;
    base::ByteReader in(entry->info);
    if (!read_info(in, &info))
        return std::nullopt; // checked by parse(): cannot happen
    return info;
}

std::optional<CachedRecord> ParseCache::find_view(const std::string& path, const CacheKey& key,
                                                  elf::ModuleInfoView& info) const
{
    bool in_delta = false;
    const Entry* entry = usable_entry(path, key, &in_delta);
    if (entry == nullptr)
        return std::nullopt;
    const std::shared_ptr<const void>* keeper = in_delta ? &newer_->keeper_ : &keeper_;
    info.clear();
    base::ByteReader in(entry->info);
    if (!read_info(in, &info))
        return std::nullopt; // checked by parse(): cannot happen
    const std::string_view head = head_of(*entry);
    // The delta's ids number the table of the run that wrote it, not this cache's.
    if (in_delta)
        return CachedRecord{{}, head, {}, entry->info, keeper};
    return CachedRecord{entry->record, head, entry->ids, entry->info, keeper};
}

std::optional<std::string> ParseCache::description(const std::string& path,
                                                   const CacheKey& key) const
{
    const Entry* entry = usable_entry(path, key);
    if (entry == nullptr)
        return std::nullopt;
    // The .modinfo entries come first in the record's ModuleInfo part (checked by parse()).
    base::ByteReader in(entry->info);
    std::optional<std::string> description;
    if (!read_modinfo_entries(in, [&](std::string_view name, std::string_view value) {
            if (!description && name == "description")
                description = std::string(value);
        }))
        return std::nullopt;
    return description ? description : std::string();
}

void append_cache_key(std::string& out, const CacheKey& key)
{
    base::put_value(out, key.dev);
    base::put_value(out, key.ino);
    base::put_value(out, key.size);
    base::put_value(out, key.mtime_ns);
    base::put_value(out, key.ctime_ns);
    base::put_string(out, key.symlink_target);
}

bool read_cache_key(base::ByteReader& in, CacheKey& key)
{
    std::string_view target;
    if (!in.get(key.dev) || !in.get(key.ino) || !in.get(key.size) || !in.get(key.mtime_ns) ||
        !in.get(key.ctime_ns) || !in.get_string(target))
        return false;
    key.symlink_target = std::string(target);
    return true;
}

void append_info_record(std::string& out, const elf::ModuleInfo& info)
{
    uint32_t kept = 0;
    for (const auto& entry : info.modinfo)
        kept += is_kept_key(entry.key) ? 1 : 0;
    base::put_value(out, kept);
    for (const auto& entry : info.modinfo) {
        if (!is_kept_key(entry.key))
            continue;
        base::put_string(out, entry.key);
        base::put_string(out, entry.value);
    }
    base::put_value(out, static_cast<uint32_t>(info.exports.size()));
    for (const auto& symbol : info.exports) {
        base::put_string(out, symbol.name);
        base::put_value(out, symbol.crc);
    }
    base::put_value(out, static_cast<uint32_t>(info.imports.size()));
    for (const auto& symbol : info.imports) {
        base::put_string(out, symbol.name);
        base::put_value(out, symbol.crc);
        base::put_value(out, static_cast<uint8_t>(symbol.is_weak ? 1 : 0));
    }
}

void append_symbol_table(std::string& out, char prefix, std::span<const std::string_view> names,
                         std::span<const uint32_t> hash_order, std::span<const uint32_t> name_order)
{
    base::put_value(out, static_cast<uint32_t>(static_cast<unsigned char>(prefix)));
    base::put_value(out, static_cast<uint32_t>(names.size()));
    for (std::string_view name : names)
        base::put_string(out, name);
    out.append(reinterpret_cast<const char*>(hash_order.data()), hash_order.size_bytes());
    out.append(reinterpret_cast<const char*>(name_order.data()), name_order.size_bytes());
}

void cache_format::append_ids(std::string& out, std::span<const uint32_t> export_ids,
                              std::span<const uint32_t> import_ids)
{
    base::put_value(out, static_cast<uint32_t>(export_ids.size() + import_ids.size()));
    for (uint32_t id : export_ids)
        base::put_value(out, id);
    for (uint32_t id : import_ids)
        base::put_value(out, id);
}

} // namespace kmodd::index
