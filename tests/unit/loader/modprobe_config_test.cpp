// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "loader/modprobe_config.hpp"
#include "temp_tree.hpp"

namespace kmodd::loader {
namespace {

using Strings = std::vector<std::string>;

std::vector<std::string> messages(const index::Diagnostics& diagnostics)
{
    std::vector<std::string> out;
    for (const index::Diagnostic& d : diagnostics)
        out.push_back(d.message);
    return out;
}

ModprobeConfig parsed(std::string_view text, index::Diagnostics* diagnostics = nullptr)
{
    ModprobeConfig config;
    index::Diagnostics local;
    config.parse(text, "t.conf", diagnostics != nullptr ? *diagnostics : local);
    return config;
}

ModprobeConfig from_cmdline(std::string_view cmdline, index::Diagnostics* diagnostics = nullptr)
{
    ModprobeConfig config;
    index::Diagnostics local;
    config.parse_kernel_cmdline(cmdline, diagnostics != nullptr ? *diagnostics : local);
    return config;
}

TEST(ModprobeConfig, DefaultPathsAreKmodsInPrecedenceOrder)
{
    EXPECT_EQ(ModprobeConfig::default_paths(),
              (Strings{"/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d",
                       "/lib/modprobe.d"}));
}

TEST(ModprobeConfigParse, AliasesNormaliseBothSidesButNotInsideBrackets)
{
    auto config = parsed("alias usb-a[x-y]-* snd-foo.bar extra words\n");
    ASSERT_EQ(config.aliases.size(), 1U);
    EXPECT_EQ(config.aliases[0].pattern, "usb_a[x-y]_*");
    // Unlike a module path, a name in a directive is not cut at '.'.
    EXPECT_EQ(config.aliases[0].module, "snd_foo.bar");
}

TEST(ModprobeConfigParse, OptionsKeepTheRawRestOfTheLineWithTabsAsSpaces)
{
    auto config = parsed("options   snd-foo   a=1\tb=\"x y\"  \n"
                         "options x  \n");
    ASSERT_EQ(config.options.size(), 2U);
    EXPECT_EQ(config.options[0].name, "snd_foo");
    // Only the one blank ending the name is eaten; the others stay, as in kmod.
    EXPECT_EQ(config.options[0].options, "  a=1 b=\"x y\"  ");
    EXPECT_EQ(config.options[1].options, " ");
}

TEST(ModprobeConfigParse, DirectivesMissingAnArgumentAreBadLinesWithTheirLineNumber)
{
    index::Diagnostics diagnostics;
    auto config = parsed("options foo\n"
                         "options foo \n"
                         "alias onlyone\n"
                         "install x\n"
                         "remove x \n"
                         "softdep x\n"
                         "weakdep x\n"
                         "blacklist\n"
                         "bogus a b\n"
                         "alias a[b c\n"
                         "blacklist ]x\n",
                         &diagnostics);
    EXPECT_TRUE(config.options.empty());
    EXPECT_TRUE(config.aliases.empty());
    EXPECT_TRUE(config.install_commands.empty());
    EXPECT_TRUE(config.remove_commands.empty());
    EXPECT_TRUE(config.softdeps.empty());
    EXPECT_TRUE(config.weakdeps.empty());
    EXPECT_TRUE(config.blacklist.empty());
    EXPECT_EQ(messages(diagnostics),
              (Strings{"t.conf line 1: ignoring bad line starting with 'options'",
                       "t.conf line 2: ignoring bad line starting with 'options'",
                       "t.conf line 3: ignoring bad line starting with 'alias'",
                       "t.conf line 4: ignoring bad line starting with 'install'",
                       "t.conf line 5: ignoring bad line starting with 'remove'",
                       "t.conf line 6: ignoring bad line starting with 'softdep'",
                       "t.conf line 7: ignoring bad line starting with 'weakdep'",
                       "t.conf line 8: ignoring bad line starting with 'blacklist'",
                       "t.conf line 9: ignoring bad line starting with 'bogus'",
                       "t.conf line 10: ignoring bad line starting with 'alias'",
                       "t.conf line 11: ignoring bad line starting with 'blacklist'"}));
    for (const auto& d : diagnostics)
        EXPECT_EQ(d.level, index::Diagnostic::Level::Error);
}

TEST(ModprobeConfigParse, IncludeAndConfigAreDeprecatedErrorsWithoutALineNumber)
{
    index::Diagnostics diagnostics;
    auto config = parsed("include /etc/foo.conf\nconfig x\nalias a b\n", &diagnostics);
    EXPECT_EQ(config.aliases.size(), 1U);
    EXPECT_EQ(messages(diagnostics),
              (Strings{"t.conf: command include is deprecated and not parsed anymore",
                       "t.conf: command config is deprecated and not parsed anymore"}));
}

TEST(ModprobeConfigParse, OnlyAHashInTheFirstColumnStartsAComment)
{
    index::Diagnostics diagnostics;
    auto config = parsed("# comment\n"
                         "\n"
                         "   \t \n"
                         "  # indented\n"
                         "options foo a=1 # not a comment\n",
                         &diagnostics);
    EXPECT_EQ(messages(diagnostics), Strings{"t.conf line 4: ignoring bad line starting with '#'"});
    ASSERT_EQ(config.options.size(), 1U);
    EXPECT_EQ(config.options[0].options, "a=1 # not a comment");
}

TEST(ModprobeConfigParse, BackslashNewlineContinuesAndErrorsNameTheLastPhysicalLine)
{
    index::Diagnostics diagnostics;
    auto config = parsed("options foo \\\n"
                         "  a=1 \\\n"
                         "  b=2\n"
                         "bad \\\n"
                         "line\n"
                         "alias x\\y z\n"
                         "bad2",
                         &diagnostics);
    ASSERT_EQ(config.options.size(), 1U);
    EXPECT_EQ(config.options[0].options, "  a=1   b=2");
    ASSERT_EQ(config.aliases.size(), 1U);
    EXPECT_EQ(config.aliases[0].pattern, "xy"); // a backslash before anything else is dropped
    EXPECT_EQ(messages(diagnostics),
              (Strings{"t.conf line 5: ignoring bad line starting with 'bad'",
                       "t.conf line 7: ignoring bad line starting with 'bad2'"}));
}

TEST(ModprobeConfigParse, ALineEndsAtANulByte)
{
    using namespace std::string_view_literals;
    auto config = parsed("blacklist a\0b c\nblacklist d\n"sv);
    EXPECT_EQ(config.blacklist, (Strings{"a", "d"}));
}

TEST(ModprobeConfigParse, CommandsKeepTheirTextAndBlacklistTakesOneNormalisedName)
{
    auto config = parsed("install snd-*  /sbin/modprobe --ignore-install snd $CMDLINE_OPTS\t&& x\n"
                         "remove  snd-foo /bin/true\n"
                         "blacklist pcspkr-x extra\n");
    ASSERT_EQ(config.install_commands.size(), 1U);
    EXPECT_EQ(config.install_commands[0].pattern, "snd_*");
    EXPECT_EQ(config.install_commands[0].command,
              " /sbin/modprobe --ignore-install snd $CMDLINE_OPTS\t&& x");
    ASSERT_EQ(config.remove_commands.size(), 1U);
    EXPECT_EQ(config.remove_commands[0].pattern, "snd_foo");
    EXPECT_EQ(config.remove_commands[0].command, "/bin/true");
    EXPECT_EQ(config.blacklist, Strings{"pcspkr_x"});
}

TEST(ModprobeConfigParse, SoftdepsSplitPreAndPostAndDropWordsBeforeEither)
{
    auto config = parsed("softdep snd-a junk pre: b-1 c post:\td pre: e\n"
                         "softdep n post: x\n"
                         "softdep o nothing\n");
    ASSERT_EQ(config.softdeps.size(), 3U);
    EXPECT_EQ(config.softdeps[0].pattern, "snd_a");
    EXPECT_EQ(config.softdeps[0].pre, (Strings{"b-1", "c", "e"})); // as written
    EXPECT_EQ(config.softdeps[0].post, Strings{"d"});
    EXPECT_TRUE(config.softdeps[1].pre.empty());
    EXPECT_EQ(config.softdeps[1].post, Strings{"x"});
    EXPECT_TRUE(config.softdeps[2].pre.empty());
    EXPECT_TRUE(config.softdeps[2].post.empty());
}

TEST(ModprobeConfigParse, ASingleExtraBlankBeforeASoftdepListHidesItsFirstWord)
{
    auto config = parsed("softdep m  pre: a b\n"  // " pre:" is not "pre:"
                         "softdep n   pre: a b\n" // two extra blanks are skipped
                         "weakdep w  a b\n");
    ASSERT_EQ(config.softdeps.size(), 2U);
    EXPECT_TRUE(config.softdeps[0].pre.empty());
    EXPECT_EQ(config.softdeps[1].pre, (Strings{"a", "b"}));
    ASSERT_EQ(config.weakdeps.size(), 1U);
    EXPECT_EQ(config.weakdeps[0].modules, (Strings{" a", "b"}));
}

TEST(ModprobeConfigParse, WeakdepsListModulesAsWritten)
{
    auto config = parsed("weakdep mod-a b-1\tc\n");
    ASSERT_EQ(config.weakdeps.size(), 1U);
    EXPECT_EQ(config.weakdeps[0].pattern, "mod_a");
    EXPECT_EQ(config.weakdeps[0].modules, (Strings{"b-1", "c"}));
}

TEST(ModprobeConfigLookup, AliasesMatchAsGlobsAndAllMatchesCountInOrder)
{
    auto config = parsed("alias pci:v*d* first\n"
                         "alias pci:v1234* second\n"
                         "alias other third\n"
                         "alias pci:v1234d5678 fourth\n");
    EXPECT_EQ(config.modules_for_alias("pci:v1234d5678"), (Strings{"first", "second", "fourth"}));
    EXPECT_EQ(config.modules_for_alias("other"), Strings{"third"});
    EXPECT_TRUE(config.modules_for_alias("none").empty());
}

TEST(ModprobeConfigLookup, OptionsMatchTheNameOrTheAliasExactlyInConfigOrder)
{
    auto config = parsed("options snd-foo a=1\n"
                         "options snd* glob=ignored\n"
                         "options my-alias b=2\n"
                         "options snd_foo   c=3\n");
    config.parse_kernel_cmdline("snd-foo.d=4 snd_foo. other.x=1");
    // The "snd_foo." word gives an empty options entry, which is skipped.
    EXPECT_EQ(config.options_for("snd_foo"), "a=1   c=3 d=4");
    EXPECT_EQ(config.options_for("snd_foo", "my_alias"), "a=1 b=2   c=3 d=4");
    EXPECT_EQ(config.options_for("my_alias"), "b=2");
    EXPECT_EQ(config.options_for("nothing"), "");
}

TEST(ModprobeConfigLookup, TheFirstMatchingCommandOrSoftdepWins)
{
    auto config = parsed("install snd-* first\n"
                         "install snd_foo second\n"
                         "remove snd_foo r1\n"
                         "remove * r2\n"
                         "softdep snd_? pre: a\n"
                         "softdep snd_* pre: b\n"
                         "weakdep snd_* w1\n"
                         "weakdep * w2\n");
    ASSERT_NE(config.install_command_for("snd_foo"), nullptr);
    EXPECT_EQ(config.install_command_for("snd_foo")->command, "first");
    EXPECT_EQ(config.install_command_for("other"), nullptr);
    EXPECT_EQ(config.remove_command_for("snd_foo")->command, "r1");
    EXPECT_EQ(config.remove_command_for("other")->command, "r2");
    EXPECT_EQ(config.softdep_for("snd_a")->pre, Strings{"a"});
    EXPECT_EQ(config.softdep_for("snd_ab")->pre, Strings{"b"});
    EXPECT_EQ(config.softdep_for("x"), nullptr);
    EXPECT_EQ(config.weakdep_for("snd_a")->modules, Strings{"w1"});
    EXPECT_EQ(config.weakdep_for("x")->modules, Strings{"w2"});
}

TEST(ModprobeConfigLookup, BlacklistMatchesExactNamesOnly)
{
    auto config = parsed("blacklist snd-foo\nblacklist pc*\n");
    EXPECT_TRUE(config.is_blacklisted("snd_foo"));
    EXPECT_FALSE(config.is_blacklisted("snd-foo"));
    EXPECT_FALSE(config.is_blacklisted("pcspkr"));
    EXPECT_TRUE(config.is_blacklisted("pc*"));
}

TEST(ModprobeConfigDump, PrintsEachListInKmodsOrderAndFormat)
{
    auto config = parsed("softdep s pre: a b post: c\n"
                         "softdep t post: c\n"
                         "softdep u junk\n"
                         "weakdep w x y\n"
                         "options o  a=1\n"
                         "alias al-* mod-x\n"
                         "remove r /bin/true\n"
                         "install i /bin/false\n"
                         "blacklist b-1\n");
    config.parse_kernel_cmdline("modprobe.blacklist=k-1");
    EXPECT_EQ(config.dump(), "blacklist b_1\n"
                             "blacklist k-1\n"
                             "install i /bin/false\n"
                             "remove r /bin/true\n"
                             "alias al_* mod_x\n"
                             "options o  a=1\n"
                             "softdep s pre: a bpost: c\n"
                             "softdep t post: c\n"
                             "softdep u \n"
                             "weakdep w x y\n");
    EXPECT_EQ(ModprobeConfig{}.dump(), "");
}

// The kernel command lines of kmod 30's testsuite (rootfs-pristine/test-modprobe/
// module-param-kcmdline*/proc/cmdline) with what its correct.txt expects.
TEST(ModprobeConfigCmdline, KmodTestsuiteCase1ParamsReachTheModule)
{
    auto config = from_cmdline("initrd=\\initramfs-linux.img mod_simple.foo mod_simple.bar=1 "
                               "root=/dev/sda2 rootfstype=ext4 add_efi_memmap quiet rw\n");
    EXPECT_EQ(config.options_for("mod_simple"), "foo bar=1");
    EXPECT_EQ(config.options.size(), 2U);
}

TEST(ModprobeConfigCmdline, KmodTestsuiteCases2And3ParamsWithoutValue)
{
    for (const char* cmdline :
         {"psmouse.foo psmouse.bar=1 quiet rw\n",
          "BOOT_IMAGE=/boot/vmlinuz-3.12.12-57.g5f654cf-default initrd=\\initramfs-linux.img "
          "psmouse.foo psmouse.bar=1 root=/dev/sda2 rootfstype=ext4 add_efi_memmap quiet rw\n"}) {
        auto config = from_cmdline(cmdline);
        EXPECT_EQ(config.dump(), "options psmouse foo\noptions psmouse bar=1\n") << cmdline;
        EXPECT_EQ(config.options_for("psmouse"), "foo bar=1");
    }
}

TEST(ModprobeConfigCmdline, KmodTestsuiteCase4DotsInTheValue)
{
    auto config = from_cmdline("testmodule.testparam=1.5G\n");
    EXPECT_EQ(config.dump(), "options testmodule testparam=1.5G\n");
}

TEST(ModprobeConfigCmdline, KmodTestsuiteCase5QuotedValuesAndIgnoredQuotedWords)
{
    auto config = from_cmdline("psmouse.foo psmouse.bar=1 psmouse.foobar=\"test 1\" "
                               "psmouse.\"invalid option\" \" notamodule\" \"noteamodule2 \" "
                               "notamodule3 quiet rw\n");
    EXPECT_EQ(config.dump(), "options psmouse foo\n"
                             "options psmouse bar=1\n"
                             "options psmouse foobar=\"test 1\"\n");
    EXPECT_EQ(config.options_for("psmouse"), "foo bar=1 foobar=\"test 1\"");
}

TEST(ModprobeConfigCmdline, KmodTestsuiteCase6BracketedWordsAreReportedAndIgnored)
{
    index::Diagnostics diagnostics;
    auto config = from_cmdline(
        "psmouse.foo=2 ivrs_acpihid[14:00.5]=AMD0020:00 psmouse.bar=1 psmouse.zinga=test\n",
        &diagnostics);
    EXPECT_EQ(config.dump(), "options psmouse foo=2\n"
                             "options psmouse bar=1\n"
                             "options psmouse zinga=test\n");
    EXPECT_EQ(messages(diagnostics),
              Strings{"Ignoring bad option on kernel command line while parsing module name: "
                      "'ivrs_acpihid[14:00'"});
}

TEST(ModprobeConfigCmdline, KmodTestsuiteCases7And8BootloaderQuotingIsUndone)
{
    for (const char* cmdline :
         {"psmouse.foo parport.dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\" quiet rw\n",
          "psmouse.foo \"parport.dyndbg=file drivers/parport/ieee1284_ops.c +mpf\" quiet rw\n"}) {
        auto config = from_cmdline(cmdline);
        EXPECT_EQ(config.dump(), "options psmouse foo\n"
                                 "options parport dyndbg=\"file drivers/parport/ieee1284_ops.c "
                                 "+mpf\"\n")
            << cmdline;
        EXPECT_EQ(config.options_for("parport"),
                  "dyndbg=\"file drivers/parport/ieee1284_ops.c +mpf\"");
    }
}

TEST(ModprobeConfigCmdline, BlacklistEntriesAreSplitOnCommasAndKeptAsWritten)
{
    auto config = from_cmdline("modprobe.blacklist=a-b,,c modprobe.blacklist= "
                               "\"modprobe.blacklist=x,y\" modprobe.foo=1");
    EXPECT_EQ(config.blacklist, (Strings{"a-b", "", "c", "", "\"x", "y\""}));
    EXPECT_TRUE(config.is_blacklisted("c"));
    EXPECT_FALSE(config.is_blacklisted("a_b"));
    EXPECT_EQ(config.options_for("modprobe"), "foo=1");
}

TEST(ModprobeConfigCmdline, OddWordsFollowKmodsStateMachine)
{
    struct Case {
        const char* cmdline;
        const char* dump;
    };
    for (const Case& c : std::vector<Case>{
             {"a.b.c=1", ""},                         // a second '.' before '='
             {"a=b.c", ""},                           // '=' before '.'
             {".x=1", "options  x=1\n"},              // empty module name
             {"\"q\"m.p=1", ""},                      // closing quote before the '.'
             {"m\"x.p=1\" n.q=2", "options n q=2\n"}, // quote inside the name
             {"m.p\"=1\"", ""},                       // quote inside the parameter
             {"m.p=a\"b c\"d e.f", "options m p=a\"b c\"d\noptions e f\n"},
             {"\"m.p=a b\"c", "options m p=\"a b\"c\n"}, // requoted, text after the quote kept
             {"\"m.p\"", ""},
             {"x.y=\"a\tb\"", "options x y=\"a b\"\n"}, // tabs become spaces
             {"tab.x=1\tdash-mod.p=v", "options tab x=1\noptions dash_mod p=v\n"},
             {"mod.", "options mod \n"},
             {"m.p=\"v\"w", "options m p=\"v\"w\n"},
         }) {
        EXPECT_EQ(from_cmdline(c.cmdline).dump(), c.dump) << c.cmdline;
    }
}

TEST(ModprobeConfigCmdline, AnUnterminatedQuotedValueSwallowsTheRest)
{
    auto config = from_cmdline("a.b=1 m.p=\"open c.d=2 e.f=3");
    EXPECT_EQ(config.dump(), "options a b=1\n");
}

TEST(ModprobeConfigCmdline, OnlyTheFirst4095BytesCountLikeKmodsBuffer)
{
    std::string cmdline(4090, 'x');
    cmdline += " m.p=123456";
    auto config = from_cmdline(cmdline);
    EXPECT_EQ(config.dump(), "options m p=\n"); // cut after "m.p=", then it ends
    using namespace std::string_view_literals;
    EXPECT_EQ(from_cmdline("m.p=1\0n.q=2"sv).dump(), "options m p=1\n");
}

class ModprobeConfigLoad : public ::testing::Test {
protected:
    test::TempTree tree{"1.0"};
    std::string root = tree.root().string();
    std::string etc = root + "/etc/modprobe.d";
    std::string lib = root + "/lib/modprobe.d";
    std::string mods = tree.module_dir().string();
};

TEST_F(ModprobeConfigLoad, FilesSortByBasenameAcrossDirectoriesAndTheFirstDirectoryWins)
{
    tree.write("/etc/modprobe.d/b.conf", "alias b etc\n");
    tree.write("/lib/modprobe.d/b.conf", "alias b lib\n");
    tree.write("/lib/modprobe.d/a.conf", "alias a lib\n");
    tree.write("/etc/modprobe.d/z.conf", "alias z etc\n");
    tree.write("/etc/modprobe.d/c.alias", "alias c no\n");
    tree.write("/etc/modprobe.d/.hidden.conf", "alias h no\n");
    tree.write("/etc/modprobe.d/.conf", "alias h no\n");
    tree.write("/etc/modprobe.d/notes.txt", "alias n no\n");
    tree.write("modules.softdep", "softdep m pre: x\n");
    tree.write("modules.weakdep", "weakdep m w\n");
    tree.write("/single/m.weird", "alias m single\n");

    index::Diagnostics diagnostics;
    auto config = ModprobeConfig::load({etc, "/nonexistent/dir", lib, root + "/single/m.weird"},
                                       mods, "m.p=1", diagnostics);
    EXPECT_TRUE(diagnostics.empty()) << diagnostics.front().message;
    Strings order;
    for (const auto& alias : config.aliases)
        order.push_back(alias.pattern + "=" + alias.module);
    // a.conf, b.conf (etc), m.weird, modules.softdep, modules.weakdep, z.conf
    EXPECT_EQ(order, (Strings{"a=lib", "b=etc", "m=single", "z=etc"}));
    ASSERT_EQ(config.softdeps.size(), 1U);
    ASSERT_EQ(config.weakdeps.size(), 1U);
    EXPECT_EQ(config.options_for("m"), "p=1");
}

TEST_F(ModprobeConfigLoad, ModuleDirFilesWinTheirBasenameAndErrorsNameTheFile)
{
    tree.write("/etc/modprobe.d/x.conf", "bogus\n");
    tree.write("/other/modules.softdep", "softdep no pre: x\n");
    tree.write("modules.softdep", "softdep yes pre: x\n");
    std::filesystem::create_directories(etc + "/dir.conf");

    index::Diagnostics diagnostics;
    auto config =
        ModprobeConfig::load({etc, root + "/other/modules.softdep"}, mods, "", diagnostics);
    ASSERT_EQ(config.softdeps.size(), 1U);
    EXPECT_EQ(config.softdeps[0].pattern, "yes");
    EXPECT_EQ(messages(diagnostics),
              (Strings{"Directories inside directories are not supported: " + etc + "/dir.conf",
                       etc + "/x.conf line 1: ignoring bad line starting with 'bogus'"}));
}

TEST_F(ModprobeConfigLoad, WithoutAModuleDirOnlyThePathsAreRead)
{
    tree.write("modules.softdep", "softdep m pre: x\n");
    tree.write("/etc/modprobe.d/modules.softdep.conf", "alias a b\n");
    index::Diagnostics diagnostics;
    auto config = ModprobeConfig::load({etc}, "", "", diagnostics);
    EXPECT_TRUE(config.softdeps.empty());
    EXPECT_EQ(config.aliases.size(), 1U);
    EXPECT_TRUE(diagnostics.empty());
}

} // namespace
} // namespace kmodd::loader
