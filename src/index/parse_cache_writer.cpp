// SPDX-License-Identifier: LGPL-2.1-or-later
// Writing a parse cache file: records streamed to a temp file as a scan makes them, then the
// symbol table, the header and a rename.
#include <fcntl.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "base/byte_io.hpp"
#include "base/crc32c.hpp"
#include "base/file.hpp"
#include "base/strings.hpp"
#include "index/parse_cache.hpp"
#include "index/parse_cache_format.hpp"

namespace kmodd::index {

using namespace cache_format;

namespace {

/// Records are written out once this many bytes of them wait.
constexpr size_t kSpillBytes = size_t{1} << 20;

/// The directory of `path` ("." when it names none) and its last component.
std::pair<std::string, std::string> dir_and_name(const std::string& path)
{
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos)
        return {".", path};
    return {path.substr(0, slash), path.substr(slash + 1)};
}

} // namespace

ParseCacheWriter::ParseCacheWriter(int64_t started_ns) : started_ns_(started_ns)
{
    append_symbol_table(symbol_table_, '\0', {}, {}, {});
}

void ParseCacheWriter::add(const std::string& path, const CacheKey& key,
                           const elf::ModuleInfo& info, std::span<const uint32_t> export_ids,
                           std::span<const uint32_t> import_ids)
{
    // Built outside the lock, in a buffer each thread keeps.
    thread_local std::string record;
    record.clear();
    base::put_string(record, path);
    append_cache_key(record, key);
    append_info_record(record, info);
    append_ids(record, export_ids, import_ids);
    take(record);
}

void ParseCacheWriter::add_raw(std::string_view record)
{
    std::lock_guard guard(lock_);
    borrowed_.push_back(record);
    payload_size_ += record.size();
    ++count_;
}

void ParseCacheWriter::add_renumbered(std::string_view head, std::span<const uint32_t> export_ids,
                                      std::span<const uint32_t> import_ids)
{
    thread_local std::string record;
    record.assign(head);
    append_ids(record, export_ids, import_ids);
    take(record);
}

void ParseCacheWriter::take(std::string_view record)
{
    std::lock_guard guard(lock_);
    pending_.append(record);
    payload_size_ += record.size();
    ++count_;
    ++fresh_count_;
    if (!stream_path_.empty() && pending_.size() >= kSpillBytes)
        spill_locked();
}

void ParseCacheWriter::set_symbol_table(std::string table)
{
    std::lock_guard guard(lock_);
    if (!table.empty())
        symbol_table_ = std::move(table);
}

void ParseCacheWriter::spill_locked()
{
    if (stream_error_)
        return;
    if (!file_.is_open()) {
        const auto [dir, name] = dir_and_name(stream_path_);
        auto file = base::StreamedFile::create(dir, name);
        if (!file) {
            stream_error_ = file.error();
            return;
        }
        file_ = std::move(*file);
        if (auto written = file_.append(std::string(kHeaderSize, '\0')); !written) {
            stream_error_ = written.error();
            return;
        }
    }
    // Records may go in any order: in the order of the older cache, those that lay side by side
    // there go out in one write.
    std::sort(borrowed_.begin(), borrowed_.end(), [](std::string_view a, std::string_view b) {
        return std::less<const char*>{}(a.data(), b.data());
    });
    for (size_t i = 0; i < borrowed_.size();) {
        const char* start = borrowed_[i].data();
        size_t size = borrowed_[i].size();
        for (++i; i < borrowed_.size() && borrowed_[i].data() == start + size; ++i)
            size += borrowed_[i].size();
        const std::string_view run(start, size);
        written_crc_ = base::crc32c(written_crc_, run);
        if (auto written = file_.append(run); !written) {
            stream_error_ = written.error();
            return;
        }
    }
    borrowed_.clear();
    written_crc_ = base::crc32c(written_crc_, pending_);
    if (auto written = file_.append(pending_); !written) {
        stream_error_ = written.error();
        return;
    }
    fresh_streamed_ = fresh_streamed_ || !pending_.empty();
    pending_.clear();
}

std::string ParseCacheWriter::header(uint64_t count, uint64_t payload_size,
                                     uint32_t payload_crc) const
{
    std::string out(kMagic, sizeof kMagic);
    base::put_value(out, kFormatVersion);
    base::put_value(out, kByteOrderMark);
    base::put_value(out, started_ns_);
    base::put_value(out, count);
    base::put_value(out, payload_size);
    base::put_value(out, base::crc32c(payload_crc, std::string_view(out).substr(
                                                       kCheckedHeaderStart, kCheckedHeaderSize)));
    base::put_value(out, uint32_t{0});
    return out;
}

std::string ParseCacheWriter::serialize() const
{
    std::lock_guard guard(lock_);
    uint32_t crc = written_crc_;
    for (std::string_view record : borrowed_)
        crc = base::crc32c(crc, record);
    crc = base::crc32c(base::crc32c(crc, pending_), symbol_table_);
    std::string out = header(count_, payload_size_ + symbol_table_.size(), crc);
    out.reserve(kHeaderSize + payload_size_ + symbol_table_.size());
    for (std::string_view record : borrowed_)
        out.append(record);
    out.append(pending_);
    out.append(symbol_table_);
    return out;
}

base::Result<void> ParseCacheWriter::save(const std::string& path)
{
    std::lock_guard guard(lock_);
    if (!stream_path_.empty() && stream_path_ != path)
        return base::make_error(EINVAL, "the cache streams to " + base::quoted(stream_path_));
    stream_path_ = path;
    spill_locked();
    if (!stream_error_) {
        written_crc_ = base::crc32c(written_crc_, symbol_table_);
        if (auto written = file_.append(symbol_table_); !written)
            stream_error_ = written.error();
    }
    if (!stream_error_) {
        if (auto written = file_.write_at(
                0, header(count_, payload_size_ + symbol_table_.size(), written_crc_));
            !written)
            stream_error_ = written.error();
    }
    if (!stream_error_) {
        if (auto committed = file_.commit(); !committed)
            stream_error_ = committed.error();
    }
    if (stream_error_) {
        file_.abandon();
        return base::make_error(stream_error_->code,
                                base::quoted(path) + ": " + stream_error_->message);
    }
    return {};
}

size_t ParseCacheWriter::fresh_count() const
{
    std::lock_guard guard(lock_);
    return fresh_count_;
}

void ParseCacheWriter::limit_delta_to(size_t records)
{
    std::lock_guard guard(lock_);
    delta_limit_ = records;
}

bool ParseCacheWriter::saves_delta_only() const
{
    std::lock_guard guard(lock_);
    return fresh_count_ > 0 && fresh_count_ <= delta_limit_ && !fresh_streamed_;
}

base::Result<void> ParseCacheWriter::save_fresh_only(const std::string& path)
{
    std::lock_guard guard(lock_);
    // The records streamed out stay for a save() of the whole cache.
    if (fresh_streamed_)
        return base::make_error(EINVAL, base::quoted(path) +
                                            ": too many records for a delta, some written out");
    // Whatever was streamed towards the whole cache goes; the cache file stays as it is.
    file_.abandon();
    std::string table;
    append_symbol_table(table, '\0', {}, {}, {});
    const uint32_t crc = base::crc32c(base::crc32c(0, pending_), table);
    std::string out = header(fresh_count_, pending_.size() + table.size(), crc);
    out.reserve(out.size() + pending_.size() + table.size());
    out.append(pending_).append(table);
    const auto [dir, name] = dir_and_name(path);
    auto dir_fd = base::open_directory(AT_FDCWD, dir);
    if (!dir_fd)
        return base::make_error(dir_fd.error().code,
                                base::quoted(path) + ": " + dir_fd.error().message);
    if (auto published = base::publish_file(dir_fd->get(), name, out, false); !published)
        return base::make_error(published.error().code,
                                base::quoted(path) + ": " + published.error().message);
    return {};
}

} // namespace kmodd::index
