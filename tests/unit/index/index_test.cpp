// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "index/depmod_config.hpp"
#include "index/kmod_hash.hpp"
#include "index/names.hpp"
#include "index/vmlinux_symbols.hpp"

namespace kmodd::index {
namespace {

TEST(Names, ModuleNamesAreTheBasenameUpToTheFirstDotWithDashesAsUnderscores)
{
    EXPECT_EQ(modname_from_path("kernel/sound/snd-hda-intel.ko.xz"), "snd_hda_intel");
    EXPECT_EQ(modname_from_path("/abs/path/a.b.ko"), "a");
    EXPECT_EQ(modname_from_path("plain"), "plain");
}

TEST(Names, AliasesKeepDashesInsideBracketsAndRejectUnmatchedOnes)
{
    EXPECT_EQ(normalize_alias("usb-foo[a-z]-x"), "usb_foo[a-z]_x");
    EXPECT_FALSE(normalize_alias("bad]"));
    EXPECT_FALSE(normalize_alias("open[abc"));
}

TEST(Names, AnAliasThatNeedsNoNormalisingIsItsOwnNormalForm)
{
    using namespace std::string_literals;
    for (const std::string& alias :
         {"pci:v00008086d*sv*sd*bc*sc*i*"s, "fs-9p"s, "of:N*T*Cfoo[0-9]"s, "x]"s, "a\0b"s, ""s}) {
        const auto normalized = normalize_alias(alias);
        if (!alias_needs_normalizing(alias)) {
            EXPECT_EQ(normalized, alias) << alias;
        }
    }
    EXPECT_FALSE(alias_needs_normalizing("pci:v00008086d*sv*sd*bc*sc*i*"));
    EXPECT_TRUE(alias_needs_normalizing("fs-9p"));
    EXPECT_TRUE(alias_needs_normalizing("of:N*T*Cfoo[0-9]"));
    EXPECT_TRUE(alias_needs_normalizing("x]"));
    EXPECT_TRUE(alias_needs_normalizing("a\0b"s));
}

TEST(Names, OnlyKmodModuleSuffixesCount)
{
    EXPECT_TRUE(has_module_extension("a.ko"));
    EXPECT_TRUE(has_module_extension("a.ko.xz"));
    EXPECT_TRUE(has_module_extension("a.ko.zst"));
    EXPECT_TRUE(has_module_extension("a.ko.gz"));
    EXPECT_FALSE(has_module_extension(".ko"));
    EXPECT_FALSE(has_module_extension("a.ko.bz2"));
    EXPECT_FALSE(has_module_extension("a.o"));
}

TEST(KmodHash, MatchesKmodsSuperFastHashOnEveryTailLength)
{
    // Reference values computed with kmod 30's hash_superfast() (shared/hash.c) on x86-64;
    // the last one has a byte >= 0x80, which kmod reads as a signed char.
    EXPECT_EQ(kmod_hash(""), 0U);
    EXPECT_EQ(kmod_hash("a"), 291415938U);
    EXPECT_EQ(kmod_hash("ab"), 1366002500U);
    EXPECT_EQ(kmod_hash("abc"), 3535673738U);
    EXPECT_EQ(kmod_hash("abcd"), 3671636187U);
    EXPECT_EQ(kmod_hash("mod1"), 4263704169U);
    EXPECT_EQ(kmod_hash("snd_hda_intel"), 1849698465U);
    EXPECT_EQ(kmod_hash("symbol:printk"), 3624000770U);
    EXPECT_EQ(kmod_hash("caf\xE9"), 3742552211U);
}

TEST(DepmodConfigParse, DirectivesAreKeptInKmodsReversedOrder)
{
    DepmodConfig config;
    Diagnostics diagnostics;
    config.parse("search updates extra built-in\n"
                 "override mod1 * extra\n"
                 "override mod2 ^6\\. weird\n"
                 "exclude a \\\n b\n"
                 "external * /opt/x\n"
                 "include foo\n"
                 "nonsense here\n",
                 "test.conf", "5.10.0", diagnostics);
    config.finish();
    ASSERT_EQ(config.searches.size(), 3U);
    EXPECT_EQ(config.searches[0].kind, DepmodConfig::Search::Kind::BuiltIn);
    EXPECT_EQ(config.searches[2].path, "updates");
    EXPECT_EQ(config.overrides, std::vector<std::string>{"extra/mod1"})
        << "the override for kernel ^6. must not apply to 5.10.0";
    EXPECT_EQ(config.excludes, (std::vector<std::string>{"b", "a"}));
    EXPECT_EQ(config.externals, std::vector<std::string>{"/opt/x"});
    bool bad_line_reported = false;
    for (const auto& d : diagnostics)
        bad_line_reported |= d.message == "test.conf:8: ignoring bad line starting with 'nonsense'";
    EXPECT_TRUE(bad_line_reported);
}

TEST(DepmodConfigParse, AVersionPatternThatWouldTakeGigabytesToCompileIsRefused)
{
    // glibc's regcomp() needed more than 2 GiB for 30 adjacent '+' (found by fuzzing).
    DepmodConfig config;
    Diagnostics diagnostics;
    config.parse("override mod1 5.10.0+++++++++++++++++++++++++++++ extra\n"
                 "external ((((5{100}){100}){100}){100}) /opt/x\n"
                 "override mod2 ^5\\.10\\.[0-9]+-?.*$ updates\n",
                 "test.conf", "5.10.0", diagnostics);
    EXPECT_EQ(config.overrides, std::vector<std::string>{"updates/mod2"})
        << "an ordinary pattern still applies";
    EXPECT_TRUE(config.externals.empty());
    std::vector<std::string> messages;
    for (const auto& d : diagnostics)
        messages.push_back(d.message);
    const std::string refused =
        ": ignoring the line: its kernel version pattern repeats too much to compile safely";
    EXPECT_EQ(messages,
              (std::vector<std::string>{"test.conf:1" + refused, "test.conf:2" + refused}));
}

TEST(DepmodConfigParse, NoSearchDirectiveMeansUpdatesFirst)
{
    DepmodConfig config;
    config.finish();
    ASSERT_EQ(config.searches.size(), 1U);
    EXPECT_EQ(config.searches[0].path, "updates");
}

TEST(VmlinuxSymbols, SymversKeepsOnlyVmlinuxLinesAndReportsBadCrcs)
{
    Diagnostics diagnostics;
    auto symbols = parse_module_symvers("0x1\tprintk\tvmlinux\tEXPORT_SYMBOL\n"
                                        "0x2\tfoo\tdrivers/foo\tEXPORT_SYMBOL\n"
                                        "0xQQ\tbar\tvmlinux\tEXPORT_SYMBOL\n",
                                        "Module.symvers", '\0', diagnostics);
    ASSERT_EQ(symbols.size(), 1U);
    EXPECT_EQ(symbols[0].name, "printk");
    EXPECT_EQ(symbols[0].crc, 1U);
    ASSERT_EQ(diagnostics.size(), 1U);
    EXPECT_NE(diagnostics[0].message.find("Module.symvers:3"), std::string::npos);
}

TEST(VmlinuxSymbols, SystemMapExportsAreTheKsymtabEntries)
{
    Diagnostics diagnostics;
    auto symbols = parse_system_map("ffff0001 R __ksymtab_printk\nffff0002 T printk\n"
                                    "ffff0003 r __ksymtab_gpl_only\nbroken\n",
                                    "System.map", '\0', diagnostics);
    ASSERT_EQ(symbols.size(), 2U);
    EXPECT_EQ(symbols[0].name, "printk");
    EXPECT_EQ(symbols[1].name, "gpl_only");
    EXPECT_EQ(diagnostics.size(), 1U);
}

} // namespace
} // namespace kmodd::index
