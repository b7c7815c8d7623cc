// SPDX-License-Identifier: LGPL-2.1-or-later
// Deterministic mutation loops: every input gives an error or a value, never a crash, a hang
// or a read out of bounds (run under ASan+UBSan in the sanitizer build).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

using test::fixture_path;
using test::RawElf;
using test::read_bytes;

/// Walks a parsed result so that a dangling or garbage string would be noticed by ASan.
size_t touch(const ModuleInfo& info)
{
    size_t total = 0;
    for (const ModinfoEntry& entry : info.modinfo)
        total += entry.key.size() + entry.value.size();
    for (const ExportedSymbol& symbol : info.exports)
        total += symbol.name.size();
    for (const ImportedSymbol& symbol : info.imports)
        total += symbol.name.size();
    return total;
}

/// A byte range of the image worth aiming at.
struct Range {
    size_t begin;
    size_t size;
};

std::vector<Range> interesting_ranges(std::string image)
{
    std::vector<Range> ranges{{0, std::min<size_t>(64, image.size())}};
    RawElf raw(image);
    uint64_t table = raw.section_header_offset();
    uint64_t table_size = uint64_t{raw.section_count()} * raw.section_header_size();
    if (table + table_size <= image.size())
        ranges.push_back({static_cast<size_t>(table), static_cast<size_t>(table_size)});
    for (const char* name : {".symtab", "__versions", ".modinfo", "__ksymtab_strings"}) {
        std::optional<size_t> section = raw.find_section(name);
        if (!section)
            continue;
        uint64_t offset = raw.section_offset(*section);
        uint64_t size = std::min<uint64_t>(raw.section_size(*section), 4096);
        if (size > 0 && offset + size <= image.size())
            ranges.push_back({static_cast<size_t>(offset), static_cast<size_t>(size)});
    }
    ranges.push_back({0, image.size()});
    return ranges;
}

/// Applies deterministic random changes (1 to 4 per round, aimed at the headers and the
/// sections the reader uses) to a copy of an image, and undoes them.
class Mutator {
public:
    Mutator(const std::string& original, uint32_t seed)
        : original_(original), image_(original), random_(seed),
          ranges_(interesting_ranges(original))
    {
    }

    /// Mutates the image; returns it or, one time in eight, a prefix of it.
    std::string_view mutate()
    {
        const uint64_t values[] = {0,          1,      0x7f,       0x80,
                                   0xff,       0xffff, 0x7fffffff, 0xffffffff,
                                   size() - 1, size(), size() + 1, UINT64_MAX};
        size_t changes = 1 + random_() % 4;
        for (size_t change = 0; change < changes; ++change) {
            const Range& range = ranges_[random_() % ranges_.size()];
            size_t pos = range.begin + random_() % range.size;
            switch (random_() % 3) {
            case 0:
                set(pos, static_cast<char>(image_[pos] ^ (1 << (random_() % 8))));
                break;
            case 1:
                set(pos, static_cast<char>(random_()));
                break;
            default: {
                uint64_t value = values[random_() % std::size(values)];
                size_t width = (random_() % 2 == 0) ? 4 : 8;
                for (size_t i = 0; i < width && pos + i < image_.size(); ++i)
                    set(pos + i, static_cast<char>(value >> (8 * i)));
            }
            }
        }
        std::string_view view = image_;
        if (random_() % 8 == 0)
            view = view.substr(0, random_() % image_.size());
        return view;
    }

    void restore()
    {
        for (size_t pos : touched_)
            image_[pos] = original_[pos];
        touched_.clear();
    }

private:
    [[nodiscard]] uint64_t size() const { return original_.size(); }

    void set(size_t pos, char value)
    {
        image_[pos] = value;
        touched_.push_back(pos);
    }

    const std::string& original_;
    std::string image_;
    std::mt19937 random_;
    std::vector<Range> ranges_;
    std::vector<size_t> touched_;
};

/// Parses `rounds` mutations of `original`; returns how many still parsed.
int fuzz(const std::string& original, uint32_t seed, int rounds)
{
    Mutator mutator(original, seed);
    int parsed = 0;
    for (int round = 0; round < rounds; ++round) {
        auto info = parse_module(mutator.mutate());
        if (info) {
            ++parsed;
            touch(*info);
        }
        mutator.restore();
    }
    return parsed;
}

/// The fixture modules this build made (the big-endian one needs the s390x cross compiler,
/// which packaging/install-deps.sh installs); each must be there.
std::vector<std::string> fixture_modules()
{
    std::vector<std::string> names{"sample-le64.ko", "sample-le32.ko", "edge-le64.ko",
                                   "bare-le64.ko"};
    if (KMODD_ELF_HAVE_S390X)
        names.emplace_back("sample-be64.ko");
    return names;
}

TEST(Robustness, MutatedFixturesGiveAnErrorOrAValue)
{
    uint32_t seed = 1;
    for (const std::string& name : fixture_modules()) {
        std::string path = fixture_path(name);
        ASSERT_EQ(::access(path.c_str(), R_OK), 0) << path << " was not built";
        ASSERT_TRUE(parse_module(read_bytes(path))) << name << " itself must parse";
        int parsed = fuzz(read_bytes(path), seed++, 4000);
        // Many mutations hit bytes nobody reads: the loop must not only produce errors.
        EXPECT_GT(parsed, 0) << name;
        EXPECT_LT(parsed, 4000) << name;
    }
}

TEST(Robustness, MutatedRealModulesGiveAnErrorOrAValue)
{
    std::string dir = test::debian_modules_dir();
    if (dir.empty())
        GTEST_SKIP() << "the Debian module tree is not present";
    uint32_t seed = 100;
    for (const char* name : {"kernel/lib/libcrc32c", "kernel/drivers/usb/storage/usb-storage",
                             "kernel/net/mac80211/mac80211"}) {
        // Debian 12 ships .ko files, Debian 13 .ko.xz: the image is what the reader sees.
        std::string image;
        for (const char* suffix : {".ko", ".ko.xz", ".ko.zst"}) {
            const std::string path = dir + "/" + name + suffix;
            if (::access(path.c_str(), R_OK) != 0)
                continue;
            image = read_bytes(path);
            if (std::string_view(suffix) != ".ko") {
                auto plain = decompress(image);
                ASSERT_TRUE(plain) << path << ": " << plain.error().message;
                image = std::move(*plain);
            }
            break;
        }
        ASSERT_FALSE(image.empty()) << name << ".ko* is not in the Debian tree " << dir;
        ASSERT_TRUE(parse_module(image)) << name << " itself must parse";
        int parsed = fuzz(image, seed++, 2000);
        EXPECT_GT(parsed, 0) << name;
    }
}

TEST(Robustness, AFileParsesLikeTheSameBytesInMemory)
{
    // load_module_file reads uncompressed files through libelf (pread), parse_module reads
    // memory: on valid and broken images alike, both must agree.
    test::TempDir dir;
    std::string path = dir.path() + "/mutated.ko";
    uint32_t seed = 50;
    size_t agreed = 0;
    for (const std::string& name : fixture_modules()) {
        if (!name.starts_with("sample-"))
            continue;
        std::string fixture = fixture_path(name);
        ASSERT_EQ(::access(fixture.c_str(), R_OK), 0) << fixture << " was not built";
        std::string original = read_bytes(fixture);
        Mutator mutator(original, seed++);
        for (int round = 0; round < 400; ++round) {
            std::string_view image = round == 0 ? std::string_view(original) : mutator.mutate();
            test::write_bytes(path, image);
            auto from_memory = parse_module(image);
            struct stat st {};
            auto from_file = load_module_file(AT_FDCWD, path, st);
            ASSERT_EQ(from_memory.has_value(), from_file.has_value())
                << name << " round " << round << ": "
                << (from_memory ? from_file.error().message : from_memory.error().message);
            if (from_memory)
                EXPECT_EQ(test::describe(*from_memory), test::describe(*from_file)) << round;
            else
                EXPECT_EQ(from_memory.error().code, from_file.error().code) << round;
            mutator.restore();
            ++agreed;
        }
    }
    EXPECT_GE(agreed, 800U) << "the two little-endian samples at least";
}

TEST(Robustness, MutatedCompressedModulesGiveAnErrorOrAValue)
{
    std::mt19937 random(7);
    // packaging/install-deps.sh installs xz, zstd and gzip: every copy must be there.
    for (const char* suffix : {"xz", "zst", "gz"}) {
        std::string path = fixture_path(std::string("sample-le64.ko.") + suffix);
        ASSERT_EQ(::access(path.c_str(), R_OK), 0) << path << " was not built";
        const std::string original = read_bytes(path);
        auto intact = decompress(original);
        ASSERT_TRUE(intact) << suffix << ": " << intact.error().message;
        ASSERT_TRUE(parse_module(*intact)) << suffix;
        std::string bytes = original;
        int failed = 0;
        for (int round = 0; round < 1000; ++round) {
            size_t pos = random() % bytes.size();
            bytes[pos] = static_cast<char>(random());
            std::string_view view = bytes;
            if (round % 4 == 0)
                view = view.substr(0, random() % bytes.size());
            if (auto plain = decompress(view); plain) {
                if (auto info = parse_module(*plain); info)
                    touch(*info);
            } else {
                EXPECT_FALSE(plain.error().message.empty()) << suffix << " round " << round;
                ++failed;
            }
            bytes[pos] = original[pos];
        }
        // Every truncation fails, so a loop that never fails did not decompress anything.
        EXPECT_GE(failed, 250) << suffix;
    }
}

} // namespace
} // namespace kmodd::elf
