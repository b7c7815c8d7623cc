// SPDX-License-Identifier: LGPL-2.1-or-later
// Which kmod release's files are written: parsing --kmod-format and `kmod --version`, the
// choice for a system, and kmod 34's layout checked against bytes kmod 34 wrote.
#include <gtest/gtest.h>

#include "depmod/depmod.hpp"
#include "depmod/index_writer.hpp"
#include "depmod/kmod_format.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod {
namespace {

using test::TempTree;

const test::fs::path kKmod34 = KMODD_KMOD34_FIXTURES;

TEST(KmodFormat, ReleasesAreReadAsUsersAndKmodWriteThem)
{
    EXPECT_EQ(parse_kmod_format("30").value().version, 30U);
    EXPECT_EQ(parse_kmod_format("34.2").value().version, 34U);
    EXPECT_EQ(parse_kmod_format("kmod version 34.2\n+ZSTD +XZ").value().version, 34U);
    EXPECT_EQ(parse_kmod_format("35").value().version, 35U);
    for (const char* bad : {"", "x", "34x", "kmod", "-1", "29"}) {
        auto format = parse_kmod_format(bad);
        ASSERT_FALSE(format) << bad;
        EXPECT_EQ(format.error().code, EINVAL);
    }
    EXPECT_NE(parse_kmod_format("29").error().message.find("older"), std::string::npos);
}

TEST(KmodFormat, WeakdepCameWithKmod33AndParentFirstTriesWithKmod34)
{
    EXPECT_FALSE(KmodFormat{30}.writes_weakdep());
    EXPECT_FALSE(KmodFormat{30}.is_parent_first());
    EXPECT_TRUE(KmodFormat{33}.writes_weakdep());
    EXPECT_FALSE(KmodFormat{33}.is_parent_first());
    EXPECT_TRUE(KmodFormat{34}.writes_weakdep());
    EXPECT_TRUE(KmodFormat{34}.is_parent_first());
}

/// Writes a modules.dep.bin with one key in `layout` (and modules.weakdep if asked).
void write_index(const TempTree& tree, IndexLayout layout, bool with_weakdep)
{
    IndexWriter writer(layout);
    ASSERT_TRUE(writer.add("mod1", "kernel/mod1.ko:", 0));
    ASSERT_TRUE(writer.add("mod2", "kernel/mod2.ko: kernel/mod1.ko", 1));
    tree.write("modules.dep.bin", writer.serialize());
    if (with_weakdep)
        tree.write("modules.weakdep", "# Weak dependencies extracted from modules themselves.\n");
}

TEST(KmodFormat, TheIndexFilesOnDiskTellTheirRelease)
{
    TempTree tree;
    const std::string dir = tree.module_dir().string();
    EXPECT_EQ(format_of_index_files(dir), std::nullopt) << "no modules.dep.bin";
    tree.write("modules.dep.bin", IndexWriter().serialize());
    EXPECT_EQ(format_of_index_files(dir), std::nullopt) << "an empty index tells nothing";
    write_index(tree, IndexLayout::ChildrenFirst, false);
    EXPECT_EQ(format_of_index_files(dir), KmodFormat{30});
    write_index(tree, IndexLayout::ChildrenFirst, true);
    EXPECT_EQ(format_of_index_files(dir), KmodFormat{33});
    write_index(tree, IndexLayout::ParentFirst, true);
    EXPECT_EQ(format_of_index_files(dir), KmodFormat{34});
    tree.write("modules.dep.bin", "not an index at all");
    EXPECT_EQ(format_of_index_files(dir), std::nullopt);
}

TEST(KmodFormat, AForcedReleaseWinsThenTheInstalledKmodThenTheFilesOnDisk)
{
    TempTree tree;
    const std::string dir = tree.module_dir().string();
    write_index(tree, IndexLayout::ChildrenFirst, false);
    const std::optional<std::string> kmod34 = "kmod version 34.2\n+ZSTD +XZ -ZLIB +OPENSSL\n";

    ChosenFormat chosen = choose_kmod_format(KmodFormat{33}, kmod34, dir);
    EXPECT_EQ(chosen.format, KmodFormat{33});
    EXPECT_EQ(chosen.reason, "as asked");

    chosen = choose_kmod_format(std::nullopt, kmod34, dir);
    EXPECT_EQ(chosen.format, KmodFormat{34});
    EXPECT_NE(chosen.reason.find("kmod version 34.2"), std::string::npos) << chosen.reason;

    chosen = choose_kmod_format(std::nullopt, std::string("kmod version 27\n"), dir);
    EXPECT_EQ(chosen.format, KmodFormat{30}) << "older releases write as the oldest known";

    chosen = choose_kmod_format(std::nullopt, std::nullopt, dir);
    EXPECT_EQ(chosen.format, KmodFormat{30});
    EXPECT_NE(chosen.reason.find(dir), std::string::npos) << chosen.reason;

    chosen = choose_kmod_format(std::nullopt, std::string("something else\n"), dir + "/none");
    EXPECT_EQ(chosen.format, KmodFormat{});
    EXPECT_EQ(chosen.format.version, KmodFormat::kNewest);
}

TEST(KmodFormat, Kmod34sBuiltinIndexesAreWrittenByteForByte)
{
    // The inputs and the files kmod 34.2 made of them (tests/fixtures/kmod34/README.md).
    TempTree tree;
    tree.add("modules.builtin", kKmod34 / "modules.builtin");
    tree.add("modules.builtin.modinfo", kKmod34 / "modules.builtin.modinfo");
    DepmodOptions options;
    options.base_dir = tree.root().string();
    options.kernel_version = tree.version();
    options.config_paths = {"/dev/null"};
    options.format = KmodFormat{34};
    options.durable = false;
    index::Diagnostics diagnostics;
    auto engine = Depmod::create(options, diagnostics);
    ASSERT_TRUE(engine);
    ASSERT_TRUE((*engine)->scan(diagnostics));
    ASSERT_TRUE((*engine)->write(diagnostics));
    for (const char* name : {"modules.builtin.bin", "modules.builtin.alias.bin"})
        EXPECT_EQ(tree.read(name), test::slurp(kKmod34 / name))
            << name << " differs from kmod 34's";
    EXPECT_TRUE(test::fs::exists(tree.module_dir() / "modules.weakdep"));

    // kmod 30's layout of the same index differs in its bytes only.
    options.format = KmodFormat{30};
    options.output_dir = tree.root().string() + "/old";
    auto old_engine = Depmod::create(options, diagnostics);
    ASSERT_TRUE(old_engine);
    ASSERT_TRUE((*old_engine)->scan(diagnostics));
    ASSERT_TRUE((*old_engine)->write(diagnostics));
    const test::fs::path old_dir = (*old_engine)->output_dir();
    EXPECT_NE(test::slurp(old_dir / "modules.builtin.bin"), tree.read("modules.builtin.bin"));
    EXPECT_EQ(test::slurp(old_dir / "modules.builtin.bin").size(),
              tree.read("modules.builtin.bin").size());
    EXPECT_FALSE(test::fs::exists(old_dir / "modules.weakdep"));
}

} // namespace
} // namespace kmodd::depmod
