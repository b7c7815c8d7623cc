// SPDX-License-Identifier: LGPL-2.1-or-later
// The parse cache's file: what goes in comes out, only for the same file, never when racy, and
// a damaged or foreign file is an error instead of a wrong answer.
#include "index/parse_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/byte_io.hpp"
#include "base/crc32c.hpp"
#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;
using kmodd::index::CacheKey;
using kmodd::index::ParseCache;
using kmodd::index::ParseCacheWriter;

constexpr int64_t kStarted = 1'800'000'000'000'000'000;
constexpr int64_t kOld = kStarted - 10'000'000'000; // ten seconds before the run

kmodd::elf::ModuleInfo sample_info()
{
    kmodd::elf::ModuleInfo info;
    info.modinfo = {{"license", "GPL"},
                    {"alias", "pci:v00008086d0000100Esv*sd*bc*sc*i*"},
                    {"softdep", "pre: crc32c"},
                    {"vermagic", "6.1.0 SMP"},
                    {"alias", "e1000-alias"}};
    info.exports = {{"e1000_export", 0x1234abcdULL}, {"other", 0xffffffff00000001ULL}};
    info.imports = {{"printk", 0x11}, {"maybe_there", 0, true}};
    return info;
}

CacheKey key(int64_t mtime = kOld, int64_t ctime = kOld)
{
    return CacheKey{2049, 77, 4096, mtime, ctime, ""};
}

std::string one_entry_cache(const CacheKey& k = key())
{
    ParseCacheWriter writer(kStarted);
    writer.add("/lib/modules/6.1.0/kernel/e1000.ko", k, sample_info());
    return writer.serialize();
}

TEST(ParseCache, AnEntryComesBackWithTheModinfoTheIndexKeepsAndEverySymbol)
{
    auto cache = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(cache) << cache.error().message;
    EXPECT_EQ(cache->size(), 1U);
    EXPECT_EQ(cache->started_ns(), kStarted);
    auto info = cache->find("/lib/modules/6.1.0/kernel/e1000.ko", key());
    ASSERT_TRUE(info);
    ASSERT_EQ(info->modinfo.size(), 3U) << "license and vermagic are not used by the index";
    EXPECT_EQ(info->modinfo[0].key, "alias");
    EXPECT_EQ(info->modinfo[1].value, "pre: crc32c");
    EXPECT_EQ(info->modinfo[2].value, "e1000-alias");
    ASSERT_EQ(info->exports.size(), 2U);
    EXPECT_EQ(info->exports[1].name, "other");
    EXPECT_EQ(info->exports[1].crc, 0xffffffff00000001ULL);
    ASSERT_EQ(info->imports.size(), 2U);
    EXPECT_EQ(info->imports[0].crc, 0x11U);
    EXPECT_FALSE(info->imports[0].is_weak);
    EXPECT_TRUE(info->imports[1].is_weak);
}

TEST(ParseCache, AnEntryReadInPlaceHoldsWhatACopiedOneHoldsAndItsWholeRecord)
{
    auto cache = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(cache);
    const std::string path = "/lib/modules/6.1.0/kernel/e1000.ko";
    auto info = cache->find(path, key());
    ASSERT_TRUE(info);
    kmodd::elf::ModuleInfoView view;
    view.modinfo.push_back({"left", "over"}); // from a module read before: replaced
    auto record = cache->find_view(path, key(), view);
    ASSERT_TRUE(record);
    EXPECT_EQ(record->whole, cache->raw_entry(path, key()).value());
    EXPECT_TRUE(record->whole.starts_with(record->head));
    ASSERT_EQ(view.modinfo.size(), info->modinfo.size());
    for (size_t i = 0; i < view.modinfo.size(); ++i) {
        EXPECT_EQ(view.modinfo[i].key, info->modinfo[i].key);
        EXPECT_EQ(view.modinfo[i].value, info->modinfo[i].value);
    }
    ASSERT_EQ(view.exports.size(), info->exports.size());
    for (size_t i = 0; i < view.exports.size(); ++i) {
        EXPECT_EQ(view.exports[i].name, info->exports[i].name);
        EXPECT_EQ(view.exports[i].crc, info->exports[i].crc);
    }
    ASSERT_EQ(view.imports.size(), info->imports.size());
    for (size_t i = 0; i < view.imports.size(); ++i) {
        EXPECT_EQ(view.imports[i].name, info->imports[i].name);
        EXPECT_EQ(view.imports[i].crc, info->imports[i].crc);
        EXPECT_EQ(view.imports[i].is_weak, info->imports[i].is_weak);
    }

    // Another file's key: nothing, and the view is left as it was.
    CacheKey changed = key();
    changed.size += 1;
    EXPECT_FALSE(cache->find_view(path, changed, view));
    EXPECT_EQ(view.exports.size(), info->exports.size());
}

TEST(ParseCache, AnyDifferenceInTheFilesIdentityMeansNoEntry)
{
    auto cache = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(cache);
    const std::string path = "/lib/modules/6.1.0/kernel/e1000.ko";
    EXPECT_FALSE(cache->find("/lib/modules/6.1.0/kernel/other.ko", key()));
    for (int field = 0; field < 6; ++field) {
        CacheKey changed = key();
        switch (field) {
        case 0:
            changed.dev += 1;
            break;
        case 1:
            changed.ino += 1;
            break;
        case 2:
            changed.size += 1;
            break;
        case 3:
            changed.mtime_ns += 1;
            break;
        case 4:
            changed.ctime_ns += 1;
            break; // cp -p: only the ctime tells
        case 5:
            changed.symlink_target = "/home/dev/e1000.ko";
            break;
        }
        EXPECT_FALSE(cache->find(path, changed)) << "field " << field;
    }
}

TEST(ParseCache, AnEntryWhoseFileChangedJustBeforeTheRunIsNotTrusted)
{
    const int64_t racy = kStarted - ParseCache::kRacyMarginNs / 2;
    for (const CacheKey& k : {key(racy, kOld), key(kOld, racy), key(kStarted + 5, kStarted + 5)}) {
        auto cache = ParseCache::parse(one_entry_cache(k));
        ASSERT_TRUE(cache);
        EXPECT_FALSE(cache->find("/lib/modules/6.1.0/kernel/e1000.ko", k))
            << "mtime " << k.mtime_ns << " ctime " << k.ctime_ns;
    }
}

TEST(ParseCache, EveryTruncationIsAnErrorNotAShorterCache)
{
    const std::string whole = one_entry_cache();
    for (size_t size = 0; size < whole.size(); ++size) {
        auto cache = ParseCache::parse(whole.substr(0, size));
        ASSERT_FALSE(cache) << "truncated to " << size << " bytes";
        EXPECT_EQ(cache.error().code, EINVAL);
    }
    EXPECT_FALSE(ParseCache::parse(whole + "x")) << "bytes after the end";
}

TEST(ParseCache, EveryFlippedByteIsCaughtByTheHeaderChecksOrTheChecksum)
{
    const std::string whole = one_entry_cache();
    for (size_t at = 0; at < whole.size(); ++at) {
        // The 4 padding bytes of the header carry nothing.
        if (at >= 44 && at < 48)
            continue;
        std::string damaged = whole;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
        EXPECT_FALSE(ParseCache::parse(damaged)) << "byte " << at;
    }
}

TEST(ParseCache, ABigCacheWhoseChecksumIsWorkedOutAsideIsStillCheckedWhole)
{
    // Over a MiB of entries: the checksum runs beside the reading of the entries.
    ParseCacheWriter writer(kStarted);
    constexpr int kEntries = 8000;
    for (int i = 0; i < kEntries; ++i)
        writer.add("/lib/modules/6.1.0/kernel/m" + std::to_string(i) + ".ko", key(), sample_info());
    const std::string whole = writer.serialize();
    ASSERT_GT(whole.size(), size_t{1} << 20);
    auto intact = ParseCache::parse(whole);
    ASSERT_TRUE(intact) << intact.error().message;
    EXPECT_EQ(intact->size(), size_t{kEntries});
    EXPECT_TRUE(intact->find("/lib/modules/6.1.0/kernel/m7999.ko", key()));
    // A flipped byte at the start, middle or end of the entries: the checksum says so, even
    // where the entries also no longer parse.
    for (const size_t at : {size_t{48}, whole.size() / 2, whole.size() - 1}) {
        std::string damaged = whole;
        damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
        auto cache = ParseCache::parse(damaged);
        ASSERT_FALSE(cache) << "byte " << at;
        EXPECT_NE(cache.error().message.find("checksum mismatch"), std::string::npos)
            << cache.error().message;
    }
}

TEST(ParseCache, KeepsTheDescriptionForTheModuleSearchUnderTheSameRulesAsTheRest)
{
    kmodd::elf::ModuleInfo info = sample_info();
    info.modinfo.insert(info.modinfo.begin() + 1, {"description", "Intel(R) PRO/1000 driver"});
    ParseCacheWriter writer(kStarted);
    writer.add("/m/e1000.ko", key(), info);
    writer.add("/m/plain.ko", key(), sample_info());
    writer.add("/m/racy.ko", key(kStarted - 1), info);
    auto cache = ParseCache::parse(writer.serialize());
    ASSERT_TRUE(cache) << cache.error().message;
    EXPECT_EQ(cache->description("/m/e1000.ko", key()), "Intel(R) PRO/1000 driver");
    EXPECT_EQ(cache->description("/m/plain.ko", key()), "") << "a module without one";
    CacheKey other = key();
    other.ctime_ns += 1;
    EXPECT_FALSE(cache->description("/m/e1000.ko", other)) << "another key: read the file";
    EXPECT_FALSE(cache->description("/m/racy.ko", key(kStarted - 1))) << "racy: read the file";
    EXPECT_FALSE(cache->description("/m/none.ko", key()));
    // The index gets it too, and ignores it (ParsedModule keeps only its own keys).
    auto found = cache->find("/m/e1000.ko", key());
    ASSERT_TRUE(found);
    EXPECT_EQ(found->modinfo.size(), 4U);
}

TEST(ParseCache, AFutureVersionOrTheOtherByteOrderIsRefusedWithTheReason)
{
    std::string future = one_entry_cache();
    future[8] = 5; // version, little-endian
    auto cache = ParseCache::parse(future);
    ASSERT_FALSE(cache);
    EXPECT_NE(cache.error().message.find("version 5"), std::string::npos) << cache.error().message;
    std::string older = one_entry_cache();
    older[8] = 1; // before the checksum covered the payload first
    EXPECT_FALSE(ParseCache::parse(older));
    older[8] = 2; // before descriptions were kept: a cache from then would have none
    EXPECT_FALSE(ParseCache::parse(older));
    older[8] = 3; // before symbol ids: its entries end where ids would begin
    EXPECT_FALSE(ParseCache::parse(older));

    std::string swapped = one_entry_cache();
    std::swap(swapped[12], swapped[15]);
    std::swap(swapped[13], swapped[14]);
    cache = ParseCache::parse(swapped);
    ASSERT_FALSE(cache);
    EXPECT_NE(cache.error().message.find("byte order"), std::string::npos) << cache.error().message;
}

/// `bytes` with the checksum made right again, so that the reader walks the damaged entries.
std::string with_checksum_fixed(std::string bytes)
{
    const uint32_t value =
        kmodd::base::crc32c(kmodd::base::crc32c(0, std::string_view(bytes).substr(48)),
                            std::string_view(bytes).substr(16, 24));
    std::memcpy(bytes.data() + 40, &value, sizeof value);
    return bytes;
}

TEST(ParseCache, DamagedEntriesWithAValidChecksumAreRefusedOrReadWithinTheirBounds)
{
    ASSERT_TRUE(ParseCache::parse(with_checksum_fixed(one_entry_cache())));
    std::mt19937 random(7);
    const std::string whole = one_entry_cache();
    int refused = 0;
    for (int round = 0; round < 5000; ++round) {
        std::string damaged = whole;
        const int flips = 1 + static_cast<int>(random() % 8);
        for (int i = 0; i < flips; ++i)
            damaged[48 + random() % (damaged.size() - 48)] = static_cast<char>(random());
        // Lengths and counts now point anywhere: the reader must stay inside the bytes (the
        // sanitizer build checks) and refuse what does not add up.
        auto cache = ParseCache::parse(with_checksum_fixed(damaged));
        if (!cache)
            ++refused;
        else if (cache->size() == 1)
            (void)cache->find("/lib/modules/6.1.0/kernel/e1000.ko", key());
    }
    EXPECT_GT(refused, 1000) << "most random damage breaks the structure";
}

TEST(ParseCache, ARecordCopiedRawIntoANewCacheReadsTheSame)
{
    auto old = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(old);
    auto record = old->raw_entry("/lib/modules/6.1.0/kernel/e1000.ko", key());
    ASSERT_TRUE(record);
    ParseCacheWriter writer(kStarted + 1000);
    writer.add_raw(*record);
    auto copy = ParseCache::parse(writer.serialize());
    ASSERT_TRUE(copy) << copy.error().message;
    auto info = copy->find("/lib/modules/6.1.0/kernel/e1000.ko", key());
    ASSERT_TRUE(info);
    EXPECT_EQ(info->imports.size(), 2U);
}

TEST(ParseCache, SaveCreatesTheDirectoryAndReplacesTheFileWhole)
{
    const fs::path dir = fs::temp_directory_path() / ("parse-cache-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::string path = (dir / "a" / "b" / "modules.cache").string();
    ParseCacheWriter writer(kStarted);
    writer.add("/x.ko", key(), sample_info());
    auto saved = writer.save(path);
    ASSERT_TRUE(saved) << saved.error().message;
    auto loaded = ParseCache::load(path);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_TRUE(loaded->find("/x.ko", key()));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir / "a" / "b"), fs::directory_iterator()), 1)
        << "no temp file is left beside it";

    std::ofstream(path, std::ios::trunc) << "garbage";
    loaded = ParseCache::load(path);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find(path), std::string::npos) << "names the file";
    EXPECT_EQ(ParseCache::load((dir / "missing").string()).error().code, ENOENT);
    fs::remove_all(dir);
}

TEST(ParseCache, ADeltaWrittenAfterTheCacheComesFirstWithoutIdsAndAnOlderOneIsIgnored)
{
    const fs::path dir = fs::temp_directory_path() / ("parse-delta-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::string path = (dir / "modules.cache").string();
    const std::string changed = "/lib/modules/6.1.0/kernel/e1000.ko";
    const CacheKey newer_key{2049, 78, 5000, kOld, kOld, ""};
    const std::vector<uint32_t> ids = {0, 1, 2, 3};
    {
        ParseCacheWriter writer(kStarted);
        writer.add(changed, key(), sample_info(), std::span(ids).first(2), std::span(ids).last(2));
        writer.add("/lib/modules/6.1.0/kernel/other.ko", key(), sample_info(),
                   std::span(ids).first(2), std::span(ids).last(2));
        ASSERT_TRUE(writer.save(path));
    }
    auto write_delta = [&](int64_t started_ns) {
        ParseCacheWriter writer(started_ns);
        writer.add(changed, newer_key, sample_info(), std::span(ids).first(2),
                   std::span(ids).last(2));
        EXPECT_EQ(writer.fresh_count(), 1U);
        auto saved = writer.save_fresh_only(ParseCache::delta_path(path));
        ASSERT_TRUE(saved) << saved.error().message;
    };
    write_delta(kStarted + 1000);
    auto loaded = ParseCache::load(path);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->size(), 2U);
    EXPECT_EQ(loaded->delta_size(), 1U);
    kmodd::elf::ModuleInfoView view;
    auto from_delta = loaded->find_view(changed, newer_key, view);
    ASSERT_TRUE(from_delta);
    EXPECT_TRUE(from_delta->whole.empty()) << "not to be copied with its ids";
    EXPECT_TRUE(from_delta->ids.empty()) << "numbered by another run's table";
    EXPECT_EQ(view.exports.size(), 2U);
    EXPECT_FALSE(loaded->raw_entry(changed, newer_key));
    EXPECT_EQ(*loaded->stored_entry(changed)->key, newer_key) << "the delta's is the newest";
    auto from_cache = loaded->find_view(changed, key(), view);
    ASSERT_TRUE(from_cache) << "the cache file's own entry stays usable for its own key";
    EXPECT_EQ(from_cache->ids.size(), 4 * sizeof(uint32_t));

    // Left by a run that rewrote the cache file and died before removing it: ignored.
    write_delta(kStarted - 1000);
    loaded = ParseCache::load(path);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->delta_size(), 0U);
    EXPECT_FALSE(loaded->find(changed, newer_key));

    // A damaged delta makes the whole cache unusable, with the delta named.
    std::ofstream(ParseCache::delta_path(path), std::ios::trunc) << "garbage";
    loaded = ParseCache::load(path);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find(".delta"), std::string::npos) << "names the delta";
    fs::remove_all(dir);
}

TEST(ParseCache, OnlyOneToTheLimitOfFreshRecordsMakeADeltaAndACopiedOneIsNotFresh)
{
    const std::vector<uint32_t> ids = {0, 1, 2, 3};
    ParseCacheWriter writer(kStarted);
    EXPECT_FALSE(writer.saves_delta_only()) << "no limit given: always the whole cache";
    writer.add("/lib/modules/6.1.0/kernel/a.ko", key(), sample_info(), std::span(ids).first(2),
               std::span(ids).last(2));
    EXPECT_FALSE(writer.saves_delta_only());
    writer.limit_delta_to(2);
    EXPECT_TRUE(writer.saves_delta_only());
    writer.add_raw("a record of an older cache, copied as it is");
    EXPECT_TRUE(writer.saves_delta_only()) << "a copied record is in the cache file already";
    writer.add("/lib/modules/6.1.0/kernel/b.ko", key(), sample_info(), std::span(ids).first(2),
               std::span(ids).last(2));
    EXPECT_TRUE(writer.saves_delta_only());
    writer.add("/lib/modules/6.1.0/kernel/c.ko", key(), sample_info(), std::span(ids).first(2),
               std::span(ids).last(2));
    EXPECT_FALSE(writer.saves_delta_only()) << "three fresh records, a limit of two";

    ParseCacheWriter nothing_fresh(kStarted);
    nothing_fresh.limit_delta_to(64);
    nothing_fresh.add_raw("a record of an older cache, copied as it is");
    EXPECT_FALSE(nothing_fresh.saves_delta_only()) << "an empty delta would lose a removal";
}

TEST(ParseCache, AStreamedCacheHoldsEveryRecordAndADroppedOneLeavesNothing)
{
    const fs::path dir =
        fs::temp_directory_path() / ("parse-cache-s-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::string path = (dir / "modules.cache").string();
    auto old = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(old);
    auto big = sample_info();
    big.modinfo.push_back({"alias", std::string(1000, 'x')});
    const auto count_files = [&] {
        return std::distance(fs::directory_iterator(dir), fs::directory_iterator());
    };
    {
        ParseCacheWriter writer(kStarted);
        writer.stream_into(path);
        writer.add_raw(*old->raw_entry("/lib/modules/6.1.0/kernel/e1000.ko", key()));
        // Some 3 MB of records: written out as they come, not held until save().
        for (int i = 0; i < 3000; ++i)
            writer.add("/m/" + std::to_string(i) + ".ko", key(), big);
        EXPECT_EQ(count_files(), 1) << "a temp file beside the cache";
        EXPECT_FALSE(fs::exists(path));
        // Too many for a delta: refused, and the whole cache is still saved whole.
        auto delta = writer.save_fresh_only(ParseCache::delta_path(path));
        ASSERT_FALSE(delta);
        EXPECT_EQ(delta.error().code, EINVAL);
        EXPECT_FALSE(fs::exists(ParseCache::delta_path(path)));
        auto saved = writer.save(path);
        ASSERT_TRUE(saved) << saved.error().message;
    }
    auto loaded = ParseCache::load(path);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->size(), 3001U);
    EXPECT_TRUE(loaded->find("/lib/modules/6.1.0/kernel/e1000.ko", key()));
    auto info = loaded->find("/m/2999.ko", key());
    ASSERT_TRUE(info);
    EXPECT_EQ(info->modinfo.back().value, std::string(1000, 'x'));
    EXPECT_EQ(count_files(), 1) << "no temp file is left beside it";

    {
        ParseCacheWriter dropped(kStarted);
        dropped.stream_into(path);
        for (int i = 0; i < 3000; ++i)
            dropped.add("/n/" + std::to_string(i) + ".ko", key(), big);
    }
    EXPECT_EQ(count_files(), 1) << "a writer dropped before save() removes its temp file";
    EXPECT_EQ(ParseCache::load(path)->size(), 3001U) << "and leaves the cache as it was";

    // Somewhere it cannot write: save() says so, naming the path.
    std::ofstream(dir / "file") << "x";
    ParseCacheWriter blocked(kStarted);
    blocked.add("/x.ko", key(), sample_info());
    auto saved = blocked.save((dir / "file" / "modules.cache").string());
    ASSERT_FALSE(saved);
    EXPECT_NE(saved.error().message.find("file/modules.cache"), std::string::npos)
        << saved.error().message;
    fs::remove_all(dir);
}

/// The four lookup names of sample_info()'s symbols as a table: ids 0-3 are e1000_export,
/// other, printk, maybe_there; the orders are any orders of the ids (the reader does not judge
/// them; the index does when it takes them).
std::string sample_table(char prefix = '\0')
{
    const std::vector<std::string_view> names = {"e1000_export", "other", "printk", "maybe_there"};
    const std::vector<uint32_t> order = {3, 2, 1, 0};
    std::string table;
    kmodd::index::append_symbol_table(table, prefix, names, order, order);
    return table;
}

const std::vector<uint32_t> kExportIds = {0, 1};
const std::vector<uint32_t> kImportIds = {2, 3};

TEST(ParseCache, TheSymbolTableAndEachEntrysIdsComeBackAsWritten)
{
    ParseCacheWriter writer(kStarted);
    writer.add("/m/e1000.ko", key(), sample_info(), kExportIds, kImportIds);
    writer.set_symbol_table(sample_table('_'));
    auto cache = ParseCache::parse(writer.serialize());
    ASSERT_TRUE(cache) << cache.error().message;
    ASSERT_TRUE(cache->symbols());
    EXPECT_EQ(cache->symbols()->prefix, '_');
    EXPECT_EQ(cache->symbols()->count, 4U);
    kmodd::base::ByteReader names(cache->symbols()->names);
    std::string_view name;
    ASSERT_TRUE(names.get_string(name) && names.get_string(name) && names.get_string(name));
    EXPECT_EQ(name, "printk");
    uint32_t first_by_name = 0;
    std::memcpy(&first_by_name, cache->symbols()->name_order.data(), 4);
    EXPECT_EQ(first_by_name, 3U);

    kmodd::elf::ModuleInfoView view;
    auto record = cache->find_view("/m/e1000.ko", key(), view);
    ASSERT_TRUE(record);
    std::vector<uint32_t> ids(record->ids.size() / 4);
    std::memcpy(ids.data(), record->ids.data(), record->ids.size());
    EXPECT_EQ(ids, (std::vector<uint32_t>{0, 1, 2, 3})) << "the exports' ids, then the imports'";

    // The same entry with other ids: the same parse, the new ids.
    ParseCacheWriter renumbered(kStarted);
    renumbered.add_renumbered(record->head, std::vector<uint32_t>{3, 2},
                              std::vector<uint32_t>{1, 0});
    renumbered.set_symbol_table(sample_table('_'));
    auto again = ParseCache::parse(renumbered.serialize());
    ASSERT_TRUE(again) << again.error().message;
    auto record_again = again->find_view("/m/e1000.ko", key(), view);
    ASSERT_TRUE(record_again);
    EXPECT_EQ(record_again->head, record->head);
    std::memcpy(ids.data(), record_again->ids.data(), record_again->ids.size());
    EXPECT_EQ(ids, (std::vector<uint32_t>{3, 2, 1, 0}));
    ASSERT_EQ(view.imports.size(), 2U);
    EXPECT_TRUE(view.imports[1].is_weak);
}

TEST(ParseCache, ATableIsNotOfferedWhenAnEntryLacksIdsOrHasOnePastItsEnd)
{
    {
        ParseCacheWriter writer(kStarted);
        writer.add("/m/a.ko", key(), sample_info(), kExportIds, kImportIds);
        writer.add("/m/b.ko", key(), sample_info()); // no ids
        writer.set_symbol_table(sample_table());
        auto cache = ParseCache::parse(writer.serialize());
        ASSERT_TRUE(cache) << cache.error().message;
        EXPECT_FALSE(cache->symbols()) << "b's names must be looked up: so must all";
        EXPECT_TRUE(cache->find("/m/b.ko", key())) << "the entries themselves are good";
    }
    {
        ParseCacheWriter writer(kStarted);
        writer.add("/m/a.ko", key(), sample_info(), kExportIds, std::vector<uint32_t>{2, 4});
        writer.set_symbol_table(sample_table());
        auto cache = ParseCache::parse(writer.serialize());
        ASSERT_TRUE(cache) << cache.error().message;
        EXPECT_FALSE(cache->symbols()) << "id 4 of a table of 4";
    }
    {
        ParseCacheWriter writer(kStarted); // never given a table
        writer.add("/m/a.ko", key(), sample_info(), kExportIds, kImportIds);
        auto cache = ParseCache::parse(writer.serialize());
        ASSERT_TRUE(cache) << cache.error().message;
        EXPECT_FALSE(cache->symbols());
    }
    {
        kmodd::elf::ModuleInfo none; // no symbols, so no ids: the table stands
        ParseCacheWriter writer(kStarted);
        writer.add("/m/a.ko", key(), sample_info(), kExportIds, kImportIds);
        writer.add("/m/none.ko", key(), none);
        writer.set_symbol_table(sample_table());
        auto cache = ParseCache::parse(writer.serialize());
        ASSERT_TRUE(cache) << cache.error().message;
        EXPECT_TRUE(cache->symbols());
    }
}

TEST(ParseCache, IdsThatAreNotOneForEachSymbolAreRefused)
{
    auto cache = ParseCache::parse(one_entry_cache());
    ASSERT_TRUE(cache);
    kmodd::elf::ModuleInfoView view;
    auto record = cache->find_view("/lib/modules/6.1.0/kernel/e1000.ko", key(), view);
    ASSERT_TRUE(record);
    ParseCacheWriter writer(kStarted);
    writer.add_renumbered(record->head, std::vector<uint32_t>{0}, {}); // four symbols
    writer.set_symbol_table(sample_table());
    auto bad = ParseCache::parse(writer.serialize());
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("has ids that are not its symbols'"), std::string::npos)
        << bad.error().message;
}

} // namespace
