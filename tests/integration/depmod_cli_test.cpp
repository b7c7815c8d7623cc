// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl depmod` and `depmod` (the same binary) as a user runs them, beside kmod's depmod.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <fstream>

#include "temp_tree.hpp"

namespace kmodd {
namespace {

using test::shell_quoted;
using test::TempTree;
namespace fs = std::filesystem;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
const std::string kKmodctl = KMODD_KMODCTL;
const std::string kDepmodLink = fs::path(KMODD_KMODCTL).parent_path() / "depmod";

void populate(const TempTree& tree)
{
    tree.add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
    tree.add("kernel/a/mod2.ko", kFixtures / "mod2.ko");
    tree.add("kernel/b/mod3.ko", kFixtures / "mod3.ko");
    tree.add("kernel/a/mod-dash.ko", kFixtures / "mod_dash.ko");
    tree.write("modules.order", "kernel/a/mod2.ko\n");
}

TEST(DepmodCli, DryRunPrintsWhatKmodPrints)
{
    TempTree tree;
    populate(tree);
    std::string ours, kmod;
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -n -C /dev/null -b " + shell_quoted(tree.root()) +
                                  " " + tree.version() + " 2>/dev/null",
                              &ours),
              0);
    ASSERT_EQ(test::run_shell("/usr/sbin/depmod -n -C /dev/null -b " + shell_quoted(tree.root()) +
                                  " " + tree.version() + " 2>/dev/null",
                              &kmod),
              0);
    EXPECT_EQ(ours, kmod);
    EXPECT_NE(ours.find("kernel/a/mod2.ko: kernel/a/mod1.ko\n"), std::string::npos);
    EXPECT_FALSE(fs::exists(tree.module_dir() / "modules.dep")) << "-n must not write files";
}

TEST(DepmodCli, InvokedAsDepmodTheBinaryIsADropInReplacement)
{
    TempTree tree;
    populate(tree);
    std::string output;
    ASSERT_EQ(test::run_shell(kDepmodLink + " -C /dev/null -b " + shell_quoted(tree.root()) + " " +
                                  tree.version(),
                              &output),
              0)
        << output;
    std::string ours = tree.read("modules.dep");
    ASSERT_EQ(test::run_shell("/usr/sbin/depmod -C /dev/null -b " + shell_quoted(tree.root()) +
                              " " + tree.version()),
              0);
    EXPECT_EQ(ours, tree.read("modules.dep"));
    EXPECT_NE(ours.find("kernel/a/mod-dash.ko: kernel/a/mod2.ko kernel/a/mod1.ko"),
              std::string::npos);
}

TEST(DepmodCli, AWarmRunTakesUnchangedModulesFromTheParseCacheAndWritesWhatKmodWrites)
{
    TempTree tree;
    populate(tree);
    const fs::path cache = tree.root() / "cache";
    const std::string ours =
        kKmodctl + " depmod -v -C /dev/null --cache-dir=" + shell_quoted(cache) + " -b " +
        shell_quoted(tree.root()) + " " + tree.version() + " 2>&1 | grep 'parse cache'";
    const std::string kmod =
        "/usr/sbin/depmod -C /dev/null -b " + shell_quoted(tree.root()) + " " + tree.version();
    auto expect_same_as_kmod = [&](const char* when) {
        std::string mine =
            tree.read("modules.dep") + tree.read("modules.alias") + tree.read("modules.symbols");
        ASSERT_EQ(test::run_shell(kmod), 0);
        EXPECT_EQ(mine, tree.read("modules.dep") + tree.read("modules.alias") +
                            tree.read("modules.symbols"))
            << when;
    };
    // Files changed within two seconds before a run are never trusted from its cache.
    ::sleep(3);
    std::string output;
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("0 modules taken from it, 4 parsed"), std::string::npos) << output;
    expect_same_as_kmod("cold");
    // Nothing changed (kmod's depmod wrote the same bytes): nothing to do.
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("nothing written"), std::string::npos) << output;
    expect_same_as_kmod("warm");
    // An output changed behind its back: every module from the cache, the file written again.
    {
        std::ofstream(tree.module_dir() / "modules.alias", std::ios::trunc) << "alias x y\n";
    }
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("4 modules taken from it, 0 parsed, 4 numbered by its symbol table"),
              std::string::npos)
        << output;
    expect_same_as_kmod("after an output changed");

    // One module replaced by another one's content: parsed again, its exports change hands.
    fs::copy_file(kFixtures / "mod2.ko", tree.module_dir() / "kernel/b/mod3.ko",
                  fs::copy_options::overwrite_existing);
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    // The others' symbols keep the numbers the cache's table gives them.
    EXPECT_NE(output.find("3 modules taken from it, 1 parsed, 3 numbered by its symbol table"),
              std::string::npos)
        << output;
    expect_same_as_kmod("after a change");
    fs::remove(tree.module_dir() / "kernel/b/mod3.ko");
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    expect_same_as_kmod("after a removal");

    // A damaged cache is said, ignored and rewritten by a run that needs it: one whose
    // outputs changed (a run without -v takes the -v run's state: without the change it
    // would find nothing to do, and not read the cache).
    for (const auto& entry : fs::recursive_directory_iterator(cache)) {
        if (entry.path().filename() == "modules.cache")
            std::ofstream(entry.path(), std::ios::trunc) << "kmoddPC\ngarbage";
    }
    std::ofstream(tree.module_dir() / "modules.alias", std::ios::trunc) << "alias x y\n";
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null --cache-dir=" + shell_quoted(cache) +
                                  " -b " + shell_quoted(tree.root()) + " " + tree.version(),
                              &output),
              0);
    EXPECT_NE(output.find("depmod: WARNING: parse cache"), std::string::npos) << output;
    expect_same_as_kmod("with a damaged cache");
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    // Not "nothing written": -v, which the run before had not, is an input (it adds lines).
    EXPECT_NE(output.find("3 modules taken from it, 0 parsed"), std::string::npos)
        << "rewritten: " << output;

    // --no-cache parses everything.
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -v --no-cache -C /dev/null -b " +
                                  shell_quoted(tree.root()) + " " + tree.version() +
                                  " 2>&1 | grep -c 'parse cache' || true",
                              &output),
              0);
    EXPECT_EQ(output, "0\n");
    // Nor does a dry run keep directory listings, or say anything of them.
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -n -v -C /dev/null --cache-dir=" +
                                  shell_quoted(cache) + " -b " + shell_quoted(tree.root()) + " " +
                                  tree.version() + " 2>&1 >/dev/null | grep -c 'director' || true",
                              &output),
              0);
    EXPECT_EQ(output, "0\n");
}

TEST(DepmodCli, AModuleRebuiltWithTheSameSymbolsAndModinfoChangesNoOutputAndWritesNothing)
{
    TempTree tree;
    populate(tree);
    const fs::path cache = tree.root() / "cache";
    const std::string ours =
        kKmodctl + " depmod -v -C /dev/null --cache-dir=" + shell_quoted(cache) + " -b " +
        shell_quoted(tree.root()) + " " + tree.version() + " 2>&1 | grep 'parse cache'";
    const std::string kmod =
        "/usr/sbin/depmod -C /dev/null -b " + shell_quoted(tree.root()) + " " + tree.version();
    auto outputs = [&] {
        return tree.read("modules.dep") + tree.read("modules.alias") + tree.read("modules.symbols");
    };
    auto ino = [&](const fs::path& path) {
        struct stat st {};
        EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
        return st.st_ino;
    };
    ::sleep(3); // files changed within two seconds before a run are never trusted from its cache
    std::string output;
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("0 modules taken from it, 4 parsed"), std::string::npos) << output;
    const std::string cold = outputs();
    const auto alias_inode = ino(tree.module_dir() / "modules.alias");
    struct stat cache_before {};
    for (const auto& entry : fs::recursive_directory_iterator(cache)) {
        if (entry.path().filename() == "modules.cache") {
            ASSERT_EQ(::stat(entry.path().c_str(), &cache_before), 0);
        }
    }

    // Rebuilt to the same bytes (a new inode, new times): parsed again, nothing else done.
    const fs::path mod1 = tree.module_dir() / "kernel/a/mod1.ko";
    fs::copy_file(kFixtures / "mod1.ko", mod1.string() + ".new");
    fs::rename(mod1.string() + ".new", mod1);
    ::sleep(3); // else the next runs could not trust its times (the racy rule) and parse it again
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("1 changed module file parsed as before"), std::string::npos) << output;
    EXPECT_EQ(outputs(), cold);
    EXPECT_EQ(ino(tree.module_dir() / "modules.alias"), alias_inode) << "rewritten";
    // depmod -A must see the index as newer than the module.
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -A -C /dev/null -b " + shell_quoted(tree.root()) +
                              " " + tree.version()),
              0);
    EXPECT_EQ(ino(tree.module_dir() / "modules.alias"), alias_inode) << "-A ran depmod again";
    // Nothing changed since: nothing parsed.
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("no module file, input or output changed"), std::string::npos) << output;
    // Another one touched: the first one is still known to parse as before.
    ::utimensat(AT_FDCWD, (tree.module_dir() / "kernel/b/mod3.ko").c_str(), nullptr, 0);
    ::sleep(3);
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("1 changed module file parsed as before"), std::string::npos) << output;
    for (const auto& entry : fs::recursive_directory_iterator(cache)) {
        struct stat now {};
        if (entry.path().filename() == "modules.cache") {
            ASSERT_EQ(::stat(entry.path().c_str(), &now), 0);
            EXPECT_EQ(now.st_ino, cache_before.st_ino) << "the cache was rewritten";
        }
    }
    // Touched again, with an output emptied behind its back: the files parse as before, but
    // the outputs are not what was published, so they are written.
    ::utimensat(AT_FDCWD, (tree.module_dir() / "kernel/b/mod3.ko").c_str(), nullptr, 0);
    std::ofstream(tree.module_dir() / "modules.alias", std::ios::trunc).close();
    ::sleep(3);
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_EQ(output.find("parsed as before"), std::string::npos) << output;
    EXPECT_EQ(outputs(), cold);
    ASSERT_EQ(test::run_shell(kmod), 0);
    EXPECT_EQ(outputs(), cold) << "kmod writes other bytes";

    // A rebuild that changes what the index uses is a real change: a run that writes kmod's bytes.
    fs::copy_file(kFixtures / "mod2.ko", tree.module_dir() / "kernel/b/mod3.ko",
                  fs::copy_options::overwrite_existing);
    ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
    EXPECT_NE(output.find("modules taken from it"), std::string::npos) << output;
    const std::string changed = outputs();
    EXPECT_NE(changed, cold);
    ASSERT_EQ(test::run_shell(kmod), 0);
    EXPECT_EQ(outputs(), changed);
}

TEST(DepmodCli, ABadModuleIsReportedByEveryRunWithTheCacheToo)
{
    TempTree tree;
    populate(tree);
    tree.write("kernel/a/broken.ko", "not an ELF file");
    const fs::path cache = tree.root() / "cache";
    const std::string ours = kKmodctl + " depmod -C /dev/null --cache-dir=" + shell_quoted(cache) +
                             " -b " + shell_quoted(tree.root()) + " " + tree.version() + " 2>&1";
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    for (int run = 0; run < 3; ++run) {
        std::string output;
        ASSERT_EQ(test::run_shell(ours, &output), 0) << output;
        EXPECT_NE(output.find("broken.ko"), std::string::npos) << "run " << run << ": " << output;
    }
}

TEST(DepmodCli, ABadVersionIsRefusedLikeKmod)
{
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -b /nonexistent notaversion", &output), 1);
    EXPECT_NE(output.find("depmod: ERROR: Bad version passed notaversion"), std::string::npos)
        << output;
}

TEST(DepmodCli, AMissingModuleDirectoryFailsWithItsName)
{
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -b /nonexistent 1.2.3", &output), 1);
    EXPECT_NE(output.find("/nonexistent/lib/modules/1.2.3"), std::string::npos) << output;
}

TEST(DepmodCli, ErrsymsWithoutASymbolSourceWarnsAndGoesOn)
{
    TempTree tree;
    populate(tree);
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -e -C /dev/null -b " + shell_quoted(tree.root()) +
                                  " " + tree.version(),
                              &output),
              0);
    EXPECT_NE(output.find("depmod: WARNING: -e needs -E or -F"), std::string::npos) << output;
    EXPECT_TRUE(fs::exists(tree.module_dir() / "modules.dep"));
}

TEST(DepmodCli, AnUnreadableSymversFileIsFatal)
{
    TempTree tree;
    populate(tree);
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -E /nonexistent/Module.symvers -C /dev/null -b " +
                                  shell_quoted(tree.root()) + " " + tree.version(),
                              &output),
              1);
    EXPECT_NE(output.find("could not load /nonexistent/Module.symvers"), std::string::npos)
        << output;
    EXPECT_FALSE(fs::exists(tree.module_dir() / "modules.dep"));
}

TEST(DepmodCli, QuickModeOnlyRunsWhenAModuleIsNewerThanModulesDep)
{
    TempTree tree;
    populate(tree);
    std::string args =
        " depmod -A -C /dev/null -b " + shell_quoted(tree.root()) + " " + tree.version();
    ASSERT_EQ(test::run_shell(kKmodctl + args), 0);
    ASSERT_TRUE(fs::exists(tree.module_dir() / "modules.dep"));

    // Make modules.dep look old-but-current, then add a module: still older than it.
    struct utimbuf past {
        1000000000, 1000000000
    };
    for (const char* rel :
         {"kernel/a/mod1.ko", "kernel/a/mod2.ko", "kernel/b/mod3.ko", "kernel/a/mod-dash.ko"})
        ::utime((tree.module_dir() / rel).c_str(), &past);
    tree.write("modules.dep", "stale\n");
    ASSERT_EQ(test::run_shell(kKmodctl + args), 0);
    EXPECT_EQ(tree.read("modules.dep"), "stale\n") << "-A rebuilt although nothing was newer";

    struct utimbuf older {
        900000000, 900000000
    };
    ::utime((tree.module_dir() / "modules.dep").c_str(), &older);
    ASSERT_EQ(test::run_shell(kKmodctl + args), 0);
    EXPECT_NE(tree.read("modules.dep"), "stale\n") << "-A did not rebuild for a newer module";
}

TEST(DepmodCli, TempFilesOfAKilledRunAreRemovedAndThoseOfALiveOneKept)
{
    TempTree tree;
    populate(tree);
    const std::string args =
        " depmod -C /dev/null --cache-dir=" + shell_quoted(tree.root() / "cache") + " -b " +
        shell_quoted(tree.root()) + " " + tree.version();
    ASSERT_EQ(test::run_shell(kKmodctl + args), 0);
    // A process that has ended: its pid is free (until reused, which this test cannot rule out
    // but which the kernel does only after wrapping around).
    pid_t ended = ::fork();
    ASSERT_GE(ended, 0);
    if (ended == 0)
        ::_exit(0);
    ASSERT_EQ(::waitpid(ended, nullptr, 0), ended);
    const std::string killed = ".modules.dep.kmodd-" + std::to_string(ended) + "-0";
    const std::string live = ".modules.alias.kmodd-" + std::to_string(::getpid()) + "-0";
    tree.write(killed, "half");
    tree.write(live, "being written");
    // Nothing else changed: even a run with nothing to write clears what the killed one left.
    ASSERT_EQ(test::run_shell(kKmodctl + args), 0);
    EXPECT_FALSE(fs::exists(tree.module_dir() / killed));
    EXPECT_TRUE(fs::exists(tree.module_dir() / live)) << "a running writer's file was removed";
}

TEST(DepmodCli, ACycleFailsWithTheCycleAndKeepsThePreviousIndex)
{
    TempTree tree;
    populate(tree);
    for (const char* name : {"cycle_a", "cycle_b", "cycle_c"})
        tree.add(std::string("kernel/c/") + name + ".ko", kFixtures / (std::string(name) + ".ko"));
    tree.write("modules.dep", "previous\n");
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null -b " + shell_quoted(tree.root()) +
                                  " " + tree.version(),
                              &output),
              1);
    EXPECT_NE(
        output.find("depmod: ERROR: Cycle detected: cycle_a -> cycle_b -> cycle_c -> cycle_a"),
        std::string::npos)
        << output;
    EXPECT_EQ(tree.read("modules.dep"), "previous\n");
}

TEST(DepmodCli, GzipCompressedModulesAreIndexed)
{
    TempTree tree;
    populate(tree);
    ASSERT_EQ(test::run_shell("gzip -n " + shell_quoted(tree.module_dir() / "kernel/a/mod1.ko")),
              0);
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null -b " + shell_quoted(tree.root()) +
                              " " + tree.version()),
              0);
    EXPECT_NE(tree.read("modules.dep").find("kernel/a/mod2.ko: kernel/a/mod1.ko.gz\n"),
              std::string::npos)
        << tree.read("modules.dep");
}

TEST(DepmodCli, BadFilesAreWarnedAboutByPathAndTheRunSucceeds)
{
    TempTree tree;
    populate(tree);
    tree.link("extra/gone.ko", "/nonexistent/gone.ko");
    tree.write("extra/junk.ko", "junk");
    std::string output;
    EXPECT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null -b " + shell_quoted(tree.root()) +
                                  " " + tree.version(),
                              &output),
              0);
    EXPECT_NE(output.find("extra/gone.ko': dangling symlink to '/nonexistent/gone.ko'"),
              std::string::npos)
        << output;
    EXPECT_NE(output.find("extra/junk.ko'"), std::string::npos) << output;
    EXPECT_NE(tree.read("modules.dep").find("kernel/a/mod2.ko"), std::string::npos);
}

} // namespace
} // namespace kmodd
