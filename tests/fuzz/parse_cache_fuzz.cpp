// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the persisted parse cache reader (index::ParseCache::parse).
//
// An input that starts with the cache's magic is read as a whole cache file. Any other input
// is [u32 entry count][payload] and gets a correct header (checksum, sizes) put around it, so
// that mutations reach the entry reader instead of stopping at the checksum.
//
// Properties: reading never crashes or reads out of bounds; a cache that reads gives, for
// every entry it holds, a parse that survives being written and read again unchanged, and
// nothing for a key that differs; a symbol table it offers holds every id of every entry.
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "base/byte_io.hpp"
#include "base/crc32c.hpp"
#include "fuzz_check.hpp"
#include "index/parse_cache.hpp"

namespace {

using kmodd::fuzz::check;
using kmodd::index::CacheKey;
using kmodd::index::ParseCache;
using kmodd::index::ParseCacheWriter;

constexpr std::string_view kMagic{"kmoddPC\n", 8};

uint32_t crc_of(uint32_t crc, std::string_view bytes)
{
    return kmodd::base::crc32c(crc, bytes);
}

/// A cache file around `payload` (the entries and the symbol table), as format version 4 lays it
/// out: magic, version, byte-order mark, started_ns, count, payload size, CRC-32 of the payload
/// then of those three, padding.
std::string sealed(uint64_t count, std::string_view payload)
{
    std::string out(kMagic);
    kmodd::base::put_value(out, uint32_t{4});
    kmodd::base::put_value(out, uint32_t{0x01020304});
    // Every entry is older than the run that wrote the cache, so none is racy.
    kmodd::base::put_value(out, std::numeric_limits<int64_t>::max());
    kmodd::base::put_value(out, count);
    kmodd::base::put_value(out, static_cast<uint64_t>(payload.size()));
    kmodd::base::put_value(out, crc_of(crc_of(0, payload), std::string_view(out).substr(16, 24)));
    kmodd::base::put_value(out, uint32_t{0});
    return out + std::string(payload);
}

/// One entry written as a cache of its own: what a writer makes of this parse.
std::string written(const std::string& path, const CacheKey& key,
                    const kmodd::elf::ModuleInfo& info, int64_t started_ns)
{
    ParseCacheWriter writer(started_ns);
    writer.add(path, key, info);
    return writer.serialize();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string bytes;
    if (input.starts_with(kMagic)) {
        bytes = std::string(input);
    } else {
        if (input.size() < 4)
            return 0;
        uint32_t count = 0;
        std::memcpy(&count, input.data(), sizeof count);
        bytes = sealed(count, input.substr(4));
    }
    auto cache = ParseCache::parse(std::move(bytes));
    if (!cache) {
        check(!cache.error().message.empty(), "a rejected cache says why");
        return 0;
    }
    const int64_t started = cache->started_ns();
    for (const auto& [path, key] : cache->keys()) {
        auto info = cache->find(path, key);
        check(info.has_value() == cache->raw_entry(path, key).has_value(),
              "find() and raw_entry() agree");
        CacheKey other = key;
        other.ino ^= 1;
        check(!cache->find(path, other), "an entry is found only under its own key");
        if (!info)
            continue; // racy: never used
        kmodd::elf::ModuleInfoView view;
        auto record = cache->find_view(path, key, view);
        check(record.has_value(), "find() and find_view() agree");
        if (cache->symbols()) {
            check(record->ids.size() / 4 == view.exports.size() + view.imports.size(),
                  "with a table, every entry numbers each of its symbols");
            for (size_t at = 0; at + 4 <= record->ids.size(); at += 4) {
                uint32_t id = 0;
                std::memcpy(&id, record->ids.data() + at, 4);
                check(id < cache->symbols()->count, "an offered table holds every id");
            }
        }
        const std::string once = written(path, key, *info, started);
        auto again = ParseCache::parse(once);
        check(again.has_value(), "a written entry reads back");
        auto info_again = again->find(path, key);
        check(info_again.has_value(), "a written entry is found again");
        check(written(path, key, *info_again, started) == once,
              "an entry survives writing and reading unchanged");
    }
    return 0;
}
