// SPDX-License-Identifier: LGPL-2.1-or-later
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

using test::describe;
using test::ElfBuilder;
using test::fixture_path;
using test::RawElf;
using test::read_bytes;
using test::StringTable;

constexpr uint64_t kNoCrc = UINT64_MAX;

const char* const kSampleDescription = "modinfo license=GPL\n"
                                       "modinfo alias=pci:v00008086d*\n"
                                       "modinfo softdep=pre: crc32c\n"
                                       "modinfo depends=mod1\n"
                                       "modinfo vermagic=6.1.0 SMP mod_unload\n"
                                       "modinfo parm=debug:int\n"
                                       "modinfo alias=fs-sample\n"
                                       "export sample_read 0x1234abcd\n"
                                       "export sample_write 0xbadf00d\n"
                                       "export sample_abs 0xdeadbeef\n"
                                       "export sample_global 0x5555aaaa\n"
                                       "import mod1_fn 0x22222222\n"
                                       "import mod2_fn 0x0\n"
                                       "import maybe_fn 0x33333333 weak\n"
                                       "import module_layout 0x11111111\n"
                                       "import mod1_fn 0x44444444\n";

ModuleInfo parse_or_fail(std::string_view image)
{
    auto info = parse_module(image);
    EXPECT_TRUE(info.has_value()) << (info ? "" : info.error().message);
    return info ? *info : ModuleInfo{};
}

ModuleInfo parse_fixture(std::string_view name)
{
    return parse_or_fail(read_bytes(fixture_path(name)));
}

// --- Modules compiled from tests/fixtures/elf ---------------------------------------------

TEST(ParseModule, ReadsEverythingDepmodNeedsFromAnElf64LittleEndianModule)
{
    EXPECT_EQ(describe(parse_fixture("sample-le64.ko")), kSampleDescription);
}

TEST(ParseModule, GivesTheSameInfoForTheElf32LittleEndianBuild)
{
    EXPECT_EQ(describe(parse_fixture("sample-le32.ko")), kSampleDescription);
}

TEST(ParseModule, GivesTheSameInfoForTheElf64BigEndianBuild)
{
    if (!KMODD_ELF_HAVE_S390X)
        GTEST_SKIP() << "s390x-linux-gnu-gcc is not installed";
    EXPECT_EQ(describe(parse_fixture("sample-be64.ko")), kSampleDescription);
}

TEST(ParseModule, IgnoresKsymtabStringsWhenCrcSymbolsExist)
{
    ModuleInfo info = parse_fixture("sample-le64.ko");
    for (const ExportedSymbol& symbol : info.exports)
        EXPECT_NE(symbol.name, "only_in_ksymtab_strings");
}

TEST(ParseModule, SplitsModinfoLikeKmod)
{
    ModuleInfo info = parse_fixture("edge-le64.ko");
    std::string modinfo;
    for (const ModinfoEntry& entry : info.modinfo)
        modinfo += "[" + entry.key + "|" + entry.value + "]";
    // Leading and repeated NULs skipped, a string without '=' is a key with an empty
    // value, the value keeps later '=', the last string has no NUL.
    EXPECT_EQ(modinfo, "[license|GPL][flag_without_value|][parm|level=3][|no_key][last|no_nul]");
}

TEST(ParseModule, FallsBackToKsymtabStringsWithoutCrcSymbols)
{
    ModuleInfo info = parse_fixture("edge-le64.ko");
    ASSERT_EQ(info.exports.size(), 3U);
    EXPECT_EQ(info.exports[0].name, "alpha");
    EXPECT_EQ(info.exports[1].name, "beta");
    EXPECT_EQ(info.exports[2].name, "gamma");
    for (const ExportedSymbol& symbol : info.exports)
        EXPECT_EQ(symbol.crc, 0U);
}

TEST(ParseModule, MatchesAVersionRecordWhoseNameFillsItsWholeField)
{
    ModuleInfo info = parse_fixture("edge-le64.ko");
    EXPECT_EQ(describe(ModuleInfo{{}, {}, info.imports}),
              "import imported_function_whose_name_fills_a_whole_version_field 0x5a5a5a5a\n"
              "import unversioned_fn 0x0\n"
              "import module_layout 0x1\n");
}

TEST(ParseModule, GivesEmptyListsForAModuleWithoutModinfoExportsOrVersions)
{
    EXPECT_EQ(describe(parse_fixture("bare-le64.ko")), "import bare_dependency 0x0\n");
}

TEST(ParseModule, ParsesAnImageInReadOnlyMemory)
{
    // libelf's elf_memory takes a char*; a write to the image would fault here.
    for (const char* name : {"sample-le64.ko", "sample-le32.ko", "sample-be64.ko"}) {
        std::string path = fixture_path(name);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; // the big-endian build is optional
        struct stat st {};
        ASSERT_EQ(::fstat(fd, &st), 0);
        auto size = static_cast<size_t>(st.st_size);
        void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);
        ASSERT_NE(map, MAP_FAILED);
        auto info = parse_module(std::string_view(static_cast<const char*>(map), size));
        ::munmap(map, size);
        ASSERT_TRUE(info.has_value()) << name;
        EXPECT_EQ(describe(*info), kSampleDescription) << name;
    }
}

TEST(ParseModule, ParsesAnImageAtAnOddAddress)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    std::string shifted = "x" + image;
    EXPECT_EQ(describe(parse_or_fail(std::string_view(shifted).substr(1))), kSampleDescription);
}

TEST(ParseModule, GivesTheSameResultsOnTwoThreadsAtOnce)
{
    std::string le = read_bytes(fixture_path("sample-le64.ko"));
    std::string be32 = read_bytes(fixture_path("sample-le32.ko"));
    std::atomic<int> mismatches{0};
    auto work = [&](const std::string& image) {
        for (int i = 0; i < 300; ++i) {
            auto info = parse_module(image);
            if (!info || describe(*info) != kSampleDescription)
                ++mismatches;
        }
    };
    std::thread first(work, std::cref(le));
    std::thread second(work, std::cref(be32));
    first.join();
    second.join();
    EXPECT_EQ(mismatches.load(), 0);
}

// --- Inputs that are not valid modules -----------------------------------------------------

TEST(ParseModule, RejectsAnEmptyImage)
{
    auto info = parse_module({});
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, ENOEXEC);
    EXPECT_EQ(info.error().message, "not an ELF file");
}

TEST(ParseModule, RejectsBytesThatAreNotElf)
{
    auto info = parse_module(std::string(4096, 'A'));
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, ENOEXEC);
}

TEST(ParseModule, RejectsUnknownClassesAndByteOrders)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    std::string bad_class = image;
    bad_class[EI_CLASS] = 3;
    EXPECT_FALSE(parse_module(bad_class).has_value());
    std::string bad_data = image;
    bad_data[EI_DATA] = 3;
    EXPECT_FALSE(parse_module(bad_data).has_value());
}

TEST(ParseModule, RejectsEveryTruncationThatCutsTheSectionHeaders)
{
    for (const char* name : {"sample-le64.ko", "sample-le32.ko", "edge-le64.ko"}) {
        std::string image = read_bytes(fixture_path(name));
        RawElf raw(image);
        // gcc writes the section header table last: every shorter prefix lacks part of it.
        ASSERT_EQ(raw.section_header_offset() + raw.section_count() * raw.section_header_size(),
                  image.size());
        for (size_t length = 0; length < image.size(); ++length) {
            auto info = parse_module(std::string_view(image).substr(0, length));
            ASSERT_FALSE(info.has_value()) << name << " cut at " << length;
            EXPECT_EQ(info.error().code, ENOEXEC);
        }
    }
}

TEST(ParseModule, RejectsSectionHeadersThatStartPastTheEnd)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    RawElf raw(image);
    for (uint64_t shoff : {uint64_t{image.size()}, uint64_t{image.size()} - 8, UINT64_MAX - 8}) {
        raw.write(raw.shoff_pos(), 8, shoff);
        auto info = parse_module(image);
        ASSERT_FALSE(info.has_value()) << shoff;
        EXPECT_EQ(info.error().message, "section header table out of range");
    }
}

TEST(ParseModule, RejectsAnUnexpectedSectionHeaderSize)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    RawElf(image).write(RawElf(image).shentsize_pos(), 2, 40);
    auto info = parse_module(image);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().message, "unexpected section header size 40");
}

TEST(ParseModule, RejectsASectionNameTableWithoutAFinalNul)
{
    std::string image = ElfBuilder(true, false, EM_X86_64).build();
    RawElf raw(image);
    size_t names = raw.section_count() - 1;
    raw.set_section_size(names, raw.section_size(names) - 1);
    auto info = parse_module(image);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().message, "section name table is not NUL-terminated");
}

TEST(ParseModule, RejectsAModuleWithoutASymbolTable)
{
    ElfBuilder builder(true, false, EM_X86_64);
    builder.add_section(".modinfo", SHT_PROGBITS, std::string("license=GPL\0", 12));
    auto info = parse_module(builder.build());
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, ENOEXEC);
    EXPECT_EQ(info.error().message, "no .symtab section");
}

TEST(ParseModule, RejectsAnUndefinedSymbolWhoseNameIsOutOfRange)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    RawElf raw(image);
    std::optional<size_t> symbol = raw.find_symbol("mod2_fn");
    ASSERT_TRUE(symbol.has_value());
    raw.set_symbol_name(*symbol, 0x7fffffff);
    auto info = parse_module(image);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().message,
              ".symtab: entry " + std::to_string(*symbol) + " name offset out of range");
}

// --- kmod's rules on hand-made images ------------------------------------------------------

/// A minimal module: the given sections plus a symbol table with `symbols` (after the
/// null symbol) whose names come from `names`.
std::string module_with(ElfBuilder& builder, StringTable& names,
                        const std::vector<std::string>& symbols)
{
    std::string symtab = builder.encoder().symbol(0, 0, 0, 0, 0);
    for (const std::string& symbol : symbols)
        symtab += symbol;
    builder.add_section(".symtab", SHT_SYMTAB, symtab);
    builder.add_section(".strtab", SHT_STRTAB, names.bytes());
    return builder.build();
}

std::string modinfo_of(std::string section)
{
    ElfBuilder builder(true, false, EM_X86_64);
    builder.add_section(".modinfo", SHT_PROGBITS, std::move(section));
    StringTable names;
    auto info = parse_module(module_with(builder, names, {}));
    if (!info)
        return "error: " + info.error().message;
    std::string out;
    for (const ModinfoEntry& entry : info->modinfo)
        out += "[" + entry.key + "|" + entry.value + "]";
    return out;
}

TEST(ParseModule, DropsASingleModinfoByteLeftAfterThePaddingAsKmodDoes)
{
    EXPECT_EQ(modinfo_of(std::string("a", 1)), "");
    EXPECT_EQ(modinfo_of(std::string("\0\0a", 3)), "");
    EXPECT_EQ(modinfo_of(std::string("ab", 2)), "[ab|]");
    EXPECT_EQ(modinfo_of(std::string("a\0", 2)), "[a|]");
    EXPECT_EQ(modinfo_of(std::string("\0\0\0", 3)), "");
    EXPECT_EQ(modinfo_of(std::string("k=v\0\0\0x", 7)), "[k|v][x|]");
}

TEST(ParseModule, UsesTheFirstSectionOfAName)
{
    ElfBuilder builder(true, false, EM_X86_64);
    builder.add_section(".modinfo", SHT_PROGBITS, std::string("first=1\0", 8));
    builder.add_section(".modinfo", SHT_PROGBITS, std::string("second=2\0", 9));
    StringTable names;
    auto info = parse_module(module_with(builder, names, {}));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(describe(*info), "modinfo first=1\n");
}

TEST(ParseModule, SkipsASectionWhoseDataLiesOutsideTheImage)
{
    ElfBuilder builder(true, false, EM_X86_64);
    uint16_t first = builder.add_section(".modinfo", SHT_PROGBITS, std::string("first=1\0", 8));
    builder.add_section(".modinfo", SHT_PROGBITS, std::string("second=2\0", 9));
    StringTable names;
    std::string image = module_with(builder, names, {});
    RawElf raw(image);
    raw.set_section_size(first, image.size());
    auto info = parse_module(image);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(describe(*info), "modinfo second=2\n");
}

TEST(ParseModule, TreatsANobitsSectionAsEmpty)
{
    ElfBuilder builder(true, false, EM_X86_64);
    builder.add_section(".modinfo", SHT_NOBITS, {}, 16);
    StringTable names;
    auto info = parse_module(module_with(builder, names, {}));
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->modinfo.empty());
}

TEST(ParseModule, FallsBackToKsymtabStringsWhenAnySymbolNameIsOutOfRange)
{
    std::string image = read_bytes(fixture_path("sample-le64.ko"));
    RawElf raw(image);
    std::optional<size_t> symbol = raw.find_symbol("sample_write"); // defined: not an import
    ASSERT_TRUE(symbol.has_value());
    raw.set_symbol_name(*symbol, 0x7fffffff);
    ModuleInfo info = parse_or_fail(image);
    std::string exports;
    for (const ExportedSymbol& exported : info.exports)
        exports += exported.name + "/" + std::to_string(exported.crc) + " ";
    EXPECT_EQ(exports, "sample_read/0 sample_write/0 only_in_ksymtab_strings/0 ");
    EXPECT_EQ(info.imports.size(), 5U);
}

TEST(ParseModule, ResolvesCrcsItCannotReadToAllOnes)
{
    ElfBuilder builder(true, false, EM_X86_64);
    const auto& enc = builder.encoder();
    std::string crcs;
    enc.put(crcs, 0x01020304, 4);
    enc.put(crcs, 0x05060708, 4);
    uint16_t kcrctab = builder.add_section("__kcrctab", SHT_PROGBITS, crcs);
    uint16_t bss = builder.add_section(".bss", SHT_NOBITS, {}, 64);
    StringTable names;
    std::vector<std::string> symbols = {
        enc.symbol(names.add("__crc_second"), STB_LOCAL, STT_NOTYPE, kcrctab, 4),
        enc.symbol(names.add("__crc_past_end"), STB_LOCAL, STT_NOTYPE, kcrctab, 5),
        enc.symbol(names.add("__crc_no_section"), STB_GLOBAL, STT_NOTYPE, 200, 0),
        enc.symbol(names.add("__crc_common"), STB_GLOBAL, STT_NOTYPE, SHN_COMMON, 0),
        enc.symbol(names.add("__crc_nobits"), STB_GLOBAL, STT_NOTYPE, bss, 0),
        enc.symbol(names.add("__crc_absolute"), STB_GLOBAL, STT_NOTYPE, SHN_ABS, 0xfedcba9876),
        enc.symbol(names.add("__crc_"), STB_GLOBAL, STT_NOTYPE, SHN_ABS, 7),
    };
    auto info = parse_module(module_with(builder, names, symbols));
    ASSERT_TRUE(info.has_value()) << info.error().message;
    ASSERT_EQ(info->exports.size(), 7U);
    EXPECT_EQ(info->exports[0].crc, 0x05060708U);
    EXPECT_EQ(info->exports[1].crc, kNoCrc);
    EXPECT_EQ(info->exports[2].crc, kNoCrc);
    EXPECT_EQ(info->exports[3].crc, kNoCrc);
    EXPECT_EQ(info->exports[4].crc, kNoCrc);
    EXPECT_EQ(info->exports[5].crc, 0xfedcba9876U); // absolute: the value, not 32 bits
    EXPECT_EQ(info->exports[6].name, "");           // kmod keeps a bare "__crc_" too
}

TEST(ParseModule, ReadsACrcAcrossTheEndOfATinySectionAsKmodDoes)
{
    // kmod checks `value > size - 4` in unsigned arithmetic: for a section smaller than 4
    // bytes this wraps, and the u32 is read from the image past the section.
    ElfBuilder builder(true, false, EM_X86_64);
    const auto& enc = builder.encoder();
    uint16_t tiny = builder.add_section("__kcrctab", SHT_PROGBITS, std::string("\x11\x22", 2));
    StringTable names;
    std::string image = module_with(
        builder, names, {enc.symbol(names.add("__crc_tiny"), STB_LOCAL, STT_NOTYPE, tiny, 0)});
    RawElf raw(image);
    uint64_t expected = raw.read(raw.section_offset(tiny), 4);
    auto info = parse_module(image);
    ASSERT_TRUE(info.has_value());
    ASSERT_EQ(info->exports.size(), 1U);
    EXPECT_EQ(info->exports[0].crc, expected);
    EXPECT_EQ(expected & 0xffff, 0x2211U);
}

TEST(ParseModule, ReadsBigEndianElf32CrcsAndVersions)
{
    ElfBuilder builder(false, true, EM_PPC);
    const auto& enc = builder.encoder();
    std::string crcs;
    enc.put(crcs, 0xa1b2c3d4, 4);
    uint16_t kcrctab = builder.add_section("__kcrctab", SHT_PROGBITS, crcs);
    builder.add_section("__versions", SHT_PROGBITS,
                        enc.version(0x01020304, "printk") +
                            enc.version(0x0a0b0c0d, "module_layout"));
    StringTable names;
    std::vector<std::string> symbols = {
        enc.symbol(names.add("__crc_be_fn"), STB_LOCAL, STT_NOTYPE, kcrctab, 0),
        enc.symbol(names.add("printk"), STB_GLOBAL, STT_NOTYPE, SHN_UNDEF, 0),
    };
    auto info = parse_module(module_with(builder, names, symbols));
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(describe(*info), "export be_fn 0xa1b2c3d4\n"
                               "import printk 0x1020304\n"
                               "import module_layout 0xa0b0c0d\n");
}

TEST(ParseModule, ReadsAVersionNameThatFillsAnElf32Field)
{
    ElfBuilder builder(false, false, EM_386);
    const auto& enc = builder.encoder();
    std::string sixty(60, 'n');
    builder.add_section("__versions", SHT_PROGBITS,
                        enc.version(0x1, sixty) + enc.version(0x2, "after"));
    StringTable names;
    auto info = parse_module(module_with(
        builder, names, {enc.symbol(names.add(sixty), STB_GLOBAL, STT_NOTYPE, SHN_UNDEF, 0)}));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(describe(*info), "import " + sixty + " 0x1\nimport after 0x2\n");
}

TEST(ParseModule, IgnoresVersionsWhoseSizeIsNotAMultipleOf64)
{
    ElfBuilder builder(true, false, EM_X86_64);
    const auto& enc = builder.encoder();
    builder.add_section("__versions", SHT_PROGBITS, enc.version(0x99, "printk") + "x");
    StringTable names;
    auto info = parse_module(module_with(
        builder, names, {enc.symbol(names.add("printk"), STB_GLOBAL, STT_FUNC, SHN_UNDEF, 0)}));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(describe(*info), "import printk 0x0\n");
}

TEST(ParseModule, SkipsUndefinedSymbolsWithEmptyNames)
{
    ElfBuilder builder(true, false, EM_X86_64);
    const auto& enc = builder.encoder();
    StringTable names;
    auto info = parse_module(
        module_with(builder, names,
                    {enc.symbol(0, STB_GLOBAL, STT_NOTYPE, SHN_UNDEF, 0),
                     enc.symbol(names.add("real"), STB_WEAK, STT_NOTYPE, SHN_UNDEF, 0)}));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(describe(*info), "import real 0x0 weak\n");
}

TEST(ParseModule, SkipsRegisterSymbolsOnSparcOnly)
{
    for (uint16_t machine : {uint16_t{EM_SPARCV9}, uint16_t{EM_X86_64}}) {
        ElfBuilder builder(true, machine == EM_SPARCV9, machine);
        const auto& enc = builder.encoder();
        StringTable names;
        auto info = parse_module(module_with(
            builder, names,
            {enc.symbol(names.add("%g7"), STB_GLOBAL, 13 /* STT_REGISTER */, SHN_UNDEF, 0),
             enc.symbol(names.add("printk"), STB_GLOBAL, STT_FUNC, SHN_UNDEF, 0)}));
        ASSERT_TRUE(info.has_value());
        EXPECT_EQ(describe(*info), machine == EM_SPARCV9 ? "import printk 0x0\n"
                                                         : "import %g7 0x0\nimport printk 0x0\n");
    }
}

TEST(ParseModule, RejectsASymbolTableWhoseSizeIsNotAMultipleOfTheEntrySize)
{
    ElfBuilder builder(true, false, EM_X86_64);
    builder.add_section(".symtab", SHT_SYMTAB, std::string(24 + 5, '\0'));
    builder.add_section(".strtab", SHT_STRTAB, std::string(1, '\0'));
    auto info = parse_module(builder.build());
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().message, ".symtab: size 29 is not a multiple of 24");
}

} // namespace
} // namespace kmodd::elf
