// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "depmod/index_reader.hpp"
#include "depmod/index_writer.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod {
namespace {

// A small module directory in both forms. Module order (depmod's priorities):
// snd_hda_intel 0, snd_hda_codec 1, snd 2, ext4 3, jbd2 4.
const std::string kDep = "kernel/sound/pci/hda/snd-hda-intel.ko: "
                         "kernel/sound/pci/hda/snd-hda-codec.ko kernel/sound/core/snd.ko\n"
                         "kernel/sound/pci/hda/snd-hda-codec.ko: kernel/sound/core/snd.ko\n"
                         "kernel/sound/core/snd.ko:\n"
                         "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz\n"
                         "kernel/fs/jbd2/jbd2.ko.xz:\n";
const std::string kAlias = "# Aliases extracted from modules themselves.\n"
                           "alias pci:v00008086d*sv*sd*bc04sc03i* snd_hda_intel\n"
                           "alias hdaudio:v*r*a01* snd_hda_codec\n"
                           "alias pci:v*d*sv*sd*bc04sc03i* snd_hda_codec\n"
                           "alias snd-card-* snd\n"
                           "alias a]b snd\n"
                           "alias fs-ext4 ext4\n"
                           "alias ext3 ext4\n"
                           "alias fs-ext3 ext4\n";
const std::string kSymbols = "# Aliases for symbols, used by symbol_request().\n"
                             "alias symbol:snd_card_new snd\n"
                             "alias symbol:jbd2_journal_start jbd2\n"
                             "alias symbol:shared_helper snd_hda_codec\n"
                             "alias symbol:shared_helper snd\n";
const std::string kBuiltin = "kernel/drivers/char/mem.ko\n"
                             "kernel/fs/ext2/ext2-fs.ko\n"
                             "/not/a/letter.ko\n";

std::string dep_bin()
{
    static const std::vector<std::pair<const char*, const char*>> lines = {
        {"snd_hda_intel", "kernel/sound/pci/hda/snd-hda-intel.ko: "
                          "kernel/sound/pci/hda/snd-hda-codec.ko kernel/sound/core/snd.ko"},
        {"snd_hda_codec", "kernel/sound/pci/hda/snd-hda-codec.ko: kernel/sound/core/snd.ko"},
        {"snd", "kernel/sound/core/snd.ko:"},
        {"ext4", "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz"},
        {"jbd2", "kernel/fs/jbd2/jbd2.ko.xz:"}};
    IndexWriter writer;
    uint32_t idx = 0;
    for (const auto& [key, value] : lines)
        (void)writer.add(key, value, idx++);
    return writer.serialize();
}

std::string alias_bin()
{
    IndexWriter writer;
    (void)writer.add("pci:v00008086d*sv*sd*bc04sc03i*", "snd_hda_intel", 0);
    (void)writer.add("hdaudio:v*r*a01*", "snd_hda_codec", 1);
    (void)writer.add("pci:v*d*sv*sd*bc04sc03i*", "snd_hda_codec", 1);
    (void)writer.add("snd_card_*", "snd", 2);
    (void)writer.add("fs_ext4", "ext4", 3);
    (void)writer.add("ext3", "ext4", 3);
    (void)writer.add("fs_ext3", "ext4", 3);
    return writer.serialize();
}

std::string symbols_bin()
{
    IndexWriter writer;
    (void)writer.add("symbol:snd_card_new", "snd", 2);
    (void)writer.add("symbol:jbd2_journal_start", "jbd2", 4);
    (void)writer.add("symbol:shared_helper", "snd_hda_codec", 1);
    (void)writer.add("symbol:shared_helper", "snd", 2);
    return writer.serialize();
}

std::string builtin_bin()
{
    IndexWriter writer;
    (void)writer.add("mem", "", 0);
    (void)writer.add("ext2_fs", "", 0);
    return writer.serialize();
}

std::string builtin_alias_bin()
{
    IndexWriter writer;
    (void)writer.add("char_major_1_*", "mem", 0);
    (void)writer.add("fs_ext2", "ext2_fs", 0);
    return writer.serialize();
}

void write_text(const test::TempTree& tree)
{
    tree.write("modules.dep", kDep);
    tree.write("modules.alias", kAlias);
    tree.write("modules.symbols", kSymbols);
    tree.write("modules.builtin", kBuiltin);
}

void write_bins(const test::TempTree& tree)
{
    tree.write("modules.dep.bin", dep_bin());
    tree.write("modules.alias.bin", alias_bin());
    tree.write("modules.symbols.bin", symbols_bin());
    tree.write("modules.builtin.bin", builtin_bin());
    tree.write("modules.builtin.alias.bin", builtin_alias_bin());
}

const std::string kHdaAudio = "pci:v00008086d00001234sv00000000sd00000000bc04sc03i00";

/// The answers every form of the directory must give.
void expect_answers(const ModuleDatabase& db, bool has_builtin_alias = true)
{
    EXPECT_EQ(db.dependency_line("snd_hda_intel"),
              "kernel/sound/pci/hda/snd-hda-intel.ko: "
              "kernel/sound/pci/hda/snd-hda-codec.ko kernel/sound/core/snd.ko");
    EXPECT_EQ(db.dependency_line("snd-hda-codec"),
              "kernel/sound/pci/hda/snd-hda-codec.ko: kernel/sound/core/snd.ko");
    EXPECT_EQ(db.dependency_line("snd"), "kernel/sound/core/snd.ko:");
    EXPECT_EQ(db.dependency_line("jbd2"), "kernel/fs/jbd2/jbd2.ko.xz:");
    EXPECT_EQ(db.dependency_line("snd_hda"), std::nullopt);
    EXPECT_EQ(db.dependency_line("mem"), std::nullopt);

    EXPECT_EQ(db.modules_for_alias(kHdaAudio),
              (std::vector<std::string>{"snd_hda_intel", "snd_hda_codec"}));
    EXPECT_EQ(db.modules_for_alias("pci:v000010DEd00001234sv00000000sd00000000bc04sc03i00"),
              std::vector<std::string>{"snd_hda_codec"});
    EXPECT_EQ(db.modules_for_alias("snd-card-0"), std::vector<std::string>{"snd"});
    EXPECT_EQ(db.modules_for_alias("snd_card_0"), std::vector<std::string>{"snd"});
    EXPECT_EQ(db.modules_for_alias("fs-ext4"), std::vector<std::string>{"ext4"});
    EXPECT_EQ(db.modules_for_alias("ext3"), std::vector<std::string>{"ext4"});
    EXPECT_TRUE(db.modules_for_alias("fs-ext").empty());
    EXPECT_TRUE(db.modules_for_alias("a]b").empty());
    EXPECT_TRUE(db.modules_for_alias("snd-card-[0").empty());

    EXPECT_EQ(db.module_for_symbol("snd_card_new"), "snd");
    EXPECT_EQ(db.module_for_symbol("jbd2_journal_start"), "jbd2");
    EXPECT_EQ(db.module_for_symbol("shared_helper"), "snd_hda_codec");
    EXPECT_EQ(db.module_for_symbol("symbol:snd_card_new"), std::nullopt);
    EXPECT_EQ(db.module_for_symbol("snd_card"), std::nullopt);

    EXPECT_TRUE(db.is_builtin("mem"));
    EXPECT_TRUE(db.is_builtin("ext2-fs"));
    EXPECT_TRUE(db.is_builtin("ext2_fs"));
    EXPECT_FALSE(db.is_builtin("letter"));
    EXPECT_FALSE(db.is_builtin("snd"));

    if (has_builtin_alias) {
        EXPECT_EQ(db.builtin_modules_for_alias("char-major-1-1"), std::vector<std::string>{"mem"});
        EXPECT_EQ(db.builtin_modules_for_alias("fs-ext2"), std::vector<std::string>{"ext2_fs"});
    } else {
        EXPECT_TRUE(db.builtin_modules_for_alias("char-major-1-1").empty());
    }
    EXPECT_TRUE(db.builtin_modules_for_alias("fs-ext4").empty());
}

TEST(ModuleDatabase, OpenReadsTheBinaryIndexes)
{
    test::TempTree tree;
    write_bins(tree);
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_EQ(db->module_dir(), tree.module_dir().string());
    expect_answers(*db);
}

TEST(ModuleDatabase, OpenFallsBackToTheTextFilesWhenTheBinariesAreMissing)
{
    test::TempTree tree;
    write_text(tree);
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    expect_answers(*db, false);
}

TEST(ModuleDatabase, BinariesArePreferredOverTheTextFiles)
{
    test::TempTree tree;
    write_bins(tree);
    tree.write("modules.dep", "kernel/other/snd.ko:\n");
    tree.write("modules.alias", "alias fs-ext4 other\n");
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_EQ(db->dependency_line("snd"), "kernel/sound/core/snd.ko:");
    EXPECT_EQ(db->modules_for_alias("fs-ext4"), std::vector<std::string>{"ext4"});
}

TEST(ModuleDatabase, TheTextFallbackKeepsTheFirstOfDuplicateModulesAndFileOrderOfAliases)
{
    test::TempTree tree;
    tree.write("modules.dep", "updates/foo.ko: a.ko\nkernel/foo.ko:\n");
    tree.write("modules.alias", "alias x* zeta\nalias x1 alpha\nalias x? mid\n");
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_EQ(db->dependency_line("foo"), "updates/foo.ko: a.ko");
    EXPECT_EQ(db->modules_for_alias("x1"), (std::vector<std::string>{"zeta", "alpha", "mid"}));
}

TEST(ModuleDatabase, AZeroByteBuiltinIndexOnlyEmptiesTheBuiltinIndex)
{
    test::TempTree tree;
    write_bins(tree);
    tree.write("modules.builtin.bin", "");
    tree.write("modules.builtin", kBuiltin);
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_FALSE(db->is_builtin("mem"));
    EXPECT_EQ(db->dependency_line("snd"), "kernel/sound/core/snd.ko:");
    EXPECT_EQ(db->modules_for_alias("fs-ext4"), std::vector<std::string>{"ext4"});
    EXPECT_EQ(db->module_for_symbol("snd_card_new"), "snd");
    EXPECT_EQ(db->builtin_modules_for_alias("fs-ext2"), std::vector<std::string>{"ext2_fs"});
}

TEST(ModuleDatabase, MissingOptionalIndexesFindNothing)
{
    test::TempTree tree;
    tree.write("modules.dep.bin", dep_bin());
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_EQ(db->dependency_line("snd"), "kernel/sound/core/snd.ko:");
    EXPECT_TRUE(db->modules_for_alias("fs-ext4").empty());
    EXPECT_EQ(db->module_for_symbol("snd_card_new"), std::nullopt);
    EXPECT_FALSE(db->is_builtin("mem"));
    EXPECT_TRUE(db->builtin_modules_for_alias("fs-ext2").empty());
}

TEST(ModuleDatabase, OpenWithoutModulesDepFailsWithEnoentNamingTheDirectory)
{
    test::TempTree tree;
    tree.write("modules.alias", kAlias);
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error().code, ENOENT);
    EXPECT_NE(db.error().message.find(tree.module_dir().string()), std::string::npos);
}

TEST(ModuleDatabase, ACorruptModulesDepBinIsAnErrorEvenWithTheTextFilePresent)
{
    test::TempTree tree;
    write_text(tree);
    tree.write("modules.dep.bin", "garbage that is long enough");
    auto db = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error().code, EBADMSG);
    EXPECT_NE(db.error().message.find("modules.dep.bin"), std::string::npos);
}

TEST(ModuleDatabase, FromFilesReadsBinariesHeldInMemory)
{
    auto db = ModuleDatabase::from_files("/lib/modules/x",
                                         {{"modules.dep.bin", dep_bin()},
                                          {"modules.alias.bin", alias_bin()},
                                          {"modules.symbols.bin", symbols_bin()},
                                          {"modules.builtin.bin", builtin_bin()},
                                          {"modules.builtin.alias.bin", builtin_alias_bin()},
                                          {"modules.dep", "unused"}});
    ASSERT_TRUE(db.has_value()) << db.error().message;
    EXPECT_EQ(db->module_dir(), "/lib/modules/x");
    expect_answers(*db);
}

TEST(ModuleDatabase, FromFilesFallsBackToTextHeldInMemory)
{
    auto db = ModuleDatabase::from_files("/lib/modules/x", {{"modules.dep", kDep},
                                                            {"modules.alias", kAlias},
                                                            {"modules.symbols", kSymbols},
                                                            {"modules.builtin", kBuiltin}});
    ASSERT_TRUE(db.has_value()) << db.error().message;
    expect_answers(*db, false);
}

TEST(ModuleDatabase, FromFilesWithoutModulesDepFailsWithEnoent)
{
    auto db = ModuleDatabase::from_files("/lib/modules/x", {{"modules.alias", kAlias}});
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error().code, ENOENT);
}

} // namespace
} // namespace kmodd::depmod
