// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl modprobe` (and `modprobe`, the same binary) as a user runs it, beside kmod's.
#include <gtest/gtest.h>

#include "kmod_oracle.hpp"
#include "temp_tree.hpp"

namespace kmodd {
namespace {

using test::shell_quoted;
using test::TempTree;
namespace fs = std::filesystem;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
const std::string kKmodctl = KMODD_KMODCTL;
const std::string kModprobeLink = fs::path(KMODD_KMODCTL).parent_path() / "modprobe";

class ModprobeCli : public ::testing::Test {
protected:
    void SetUp() override
    {
        tree_.add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
        tree_.add("kernel/a/mod2.ko", kFixtures / "mod2.ko");
        tree_.add("kernel/b/mod3.ko", kFixtures / "mod3.ko");
        tree_.add("kernel/a/mod-dash.ko", kFixtures / "mod_dash.ko");
        tree_.add("kernel/c/crc_helper.ko", kFixtures / "crc_helper.ko");
        tree_.write("modules.order", "kernel/a/mod1.ko\nkernel/a/mod2.ko\n");
        tree_.write("modules.builtin", "kernel/fs/ext4.ko\n");
        ASSERT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null -b " +
                                  shell_quoted(tree_.root()) + " " + tree_.version()),
                  0);
        tree_.write("/modprobe.conf", "alias my-alias mod2\n"
                                      "options mod2 answer=42\n"
                                      "options mod1_alias via=alias\n"
                                      "install mod3 /bin/true $CMDLINE_OPTS\n"
                                      "softdep mod_dash pre: my-alias post: ext4\n"
                                      "blacklist crc_helper\n");
    }

    /// Runs a modprobe command line with our binary and kmod's; returns both outputs.
    std::pair<std::string, std::string> both(const std::string& args, int* ours_status = nullptr,
                                             int* kmod_status = nullptr) const
    {
        std::string common = " -C " + shell_quoted(tree_.root() / "modprobe.conf") + " -d " +
                             shell_quoted(tree_.root()) + " -S " + tree_.version() + " " + args;
        std::string ours, kmod;
        int s1 = test::run_shell(kKmodctl + " modprobe" + common, &ours);
        int s2 = test::run_shell("/usr/sbin/modprobe" + common, &kmod);
        if (ours_status != nullptr)
            *ours_status = s1;
        if (kmod_status != nullptr)
            *kmod_status = s2;
        return {ours, kmod};
    }

    std::string sandbox(const std::string& args, int* status = nullptr) const
    {
        std::string output;
        int s = test::run_shell(
            kModprobeLink + " --sandbox-kernel " + shell_quoted(tree_.root() / "sandbox") + " -C " +
                shell_quoted(tree_.root() / "modprobe.conf") + " -d " + shell_quoted(tree_.root()) +
                " -S " + tree_.version() + " " + args,
            &output);
        if (status != nullptr)
            *status = s;
        return output;
    }

    TempTree tree_;
};

TEST_F(ModprobeCli, ShowDependsPrintsWhatKmodPrints)
{
    for (const char* request :
         {"mod2", "mod-dash", "my-alias", "mod1-alias", "mod3", "ext4", "symbol:mod1_fn"}) {
        auto [ours, kmod] = both(std::string("-D ") + request);
        EXPECT_EQ(ours, kmod) << request;
        EXPECT_FALSE(ours.empty()) << request;
    }
    // A blacklisted module asked for through an alias: nothing to do, and no error.
    int ours_status = -1, kmod_status = -1;
    auto [ours_blacklisted, kmod_blacklisted] =
        both("-D crypto-crc-helper", &ours_status, &kmod_status);
    EXPECT_EQ(ours_blacklisted, kmod_blacklisted);
    EXPECT_TRUE(ours_blacklisted.empty());
    EXPECT_EQ(ours_status, 0);
    auto [ours, kmod] = both("-D mod2 extra=1 'msg=a b'");
    EXPECT_EQ(ours, kmod);
    EXPECT_NE(ours.find("answer=42 extra=1 msg=\"a b\""), std::string::npos) << ours;
}

TEST_F(ModprobeCli, AnUnknownModuleFailsAsKmodDoes)
{
    int ours_status = 0, kmod_status = 0;
    auto [ours, kmod] = both("-D no-such-module", &ours_status, &kmod_status);
    EXPECT_EQ(ours_status, 1);
    EXPECT_EQ(ours_status, kmod_status);
    EXPECT_EQ(ours, kmod);
}

TEST_F(ModprobeCli, ResolvingAnAliasPrintsTheModules)
{
    auto [ours, kmod] = both("-R crypto-crc-helper");
    EXPECT_EQ(ours, kmod);
    EXPECT_EQ(ours, "crc_helper\n");
}

TEST_F(ModprobeCli, TheSeedsStoryRunsOnTheSandboxKernel)
{
    int status = 0;
    std::string out = sandbox("-v mod2", &status);
    ASSERT_EQ(status, 0) << out;
    EXPECT_NE(out.find("kernel/a/mod1.ko"), std::string::npos) << out;
    EXPECT_LT(out.find("mod1.ko"), out.find("mod2.ko answer=42")) << out;
    std::string state = test::slurp(tree_.root() / "sandbox/loaded.json");
    EXPECT_NE(state.find("\"mod2\""), std::string::npos) << state;

    // mod1's own softdep (post: crc-helper) was loaded with it, and goes with it.
    out = sandbox("-r -v mod2", &status);
    ASSERT_EQ(status, 0) << out;
    EXPECT_EQ(out, "rmmod mod2\nrmmod mod1\nrmmod crc_helper\n");
    EXPECT_EQ(test::slurp(tree_.root() / "sandbox/loaded.json").find("\"mod1\""),
              std::string::npos);
}

TEST_F(ModprobeCli, RemovingAModuleInUseFailsAndNamesTheHolder)
{
    int status = 0;
    sandbox("mod2", &status);
    ASSERT_EQ(status, 0);
    std::string out = sandbox("-r mod1", &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("in use by: mod2"), std::string::npos) << out;
}

TEST_F(ModprobeCli, FirstTimeFailsForALoadedModule)
{
    int status = 0;
    sandbox("mod1", &status);
    ASSERT_EQ(status, 0);
    sandbox("mod1", &status);
    EXPECT_EQ(status, 0) << "loading a loaded module is success";
    std::string out = sandbox("--first-time mod1", &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("already loaded"), std::string::npos) << out;
}

TEST_F(ModprobeCli, AnOverlongNameOrAPathNotStartingWithSlashOrDotIsRefused)
{
    int status = 0;
    std::string out = sandbox("kernel/a/mod1.ko", &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("a path is not a module name"), std::string::npos) << out;
    out = sandbox(std::string(60, 'm'), &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("at most 55 characters"), std::string::npos) << out;
}

TEST_F(ModprobeCli, AModuleFileGivenByPathIsLoadedAfterItsIndexedDependencies)
{
    // As kmod 31 on: "/abs/x.ko" or "./x.ko" is inserted from that file, after what
    // modules.dep lists for its name, with the options of its name.
    const fs::path build = tree_.root() / "build";
    fs::create_directories(build);
    fs::copy_file(kFixtures / "mod2.ko", build / "mod2.ko");
    int status = 0;
    std::string out = sandbox("-v " + shell_quoted(build / "mod2.ko"), &status);
    ASSERT_EQ(status, 0) << out;
    EXPECT_LT(out.find("kernel/a/mod1.ko"), out.find("build/mod2.ko answer=42")) << out;
    EXPECT_EQ(out.find("kernel/a/mod2.ko"), std::string::npos) << "the indexed file was used";
    EXPECT_NE(test::slurp(tree_.root() / "sandbox/loaded.json").find("\"mod2\""),
              std::string::npos);

    // -r takes names only, as kmod's.
    out = sandbox("-r " + shell_quoted(build / "mod2.ko"), &status);
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("Module " + (build / "mod2.ko").string() + " not found."), std::string::npos)
        << out;

    // "./x.ko" is taken from the working directory, and a missing file is named.
    test::run_shell("cd " + shell_quoted(build) + " && " + kKmodctl + " modprobe -C " +
                        shell_quoted(tree_.root() / "modprobe.conf") + " -d " +
                        shell_quoted(tree_.root()) + " -S " + tree_.version() +
                        " -a -D ./mod2.ko ./missing.ko",
                    &out);
    EXPECT_NE(out.find("insmod " + build.string() + "/./mod2.ko answer=42"), std::string::npos)
        << out;
    EXPECT_NE(out.find("Failed to get module from path " + build.string() +
                       "/./missing.ko: No such file or directory"),
              std::string::npos)
        << out;
}

TEST_F(ModprobeCli, ShowDependsOfAPathPrintsWhatKmod31OnPrints)
{
    if (const unsigned major = test::oracle_kmod_version(); major < 31)
        GTEST_SKIP() << "the system's modprobe (kmod " << major << ") takes no paths";
    const fs::path build = tree_.root() / "build";
    fs::create_directories(build);
    fs::copy_file(kFixtures / "mod2.ko", build / "mod2.ko");
    fs::copy_file(kFixtures / "mod3.ko", build / "other-name.ko");
    for (const fs::path& file :
         {build / "mod2.ko", build / "other-name.ko", build / "missing.ko"}) {
        int ours_status = -1, kmod_status = -2;
        auto [ours, kmod] = both("-D " + shell_quoted(file), &ours_status, &kmod_status);
        EXPECT_EQ(ours, kmod) << file;
        EXPECT_EQ(ours_status, kmod_status) << file;
    }
}

TEST_F(ModprobeCli, InstallCommandsThatCallEachOtherAreStopped)
{
    std::string self = kModprobeLink + " --sandbox-kernel " +
                       shell_quoted(tree_.root() / "sandbox") + " -C " +
                       shell_quoted(tree_.root() / "loop.conf") + " -d " +
                       shell_quoted(tree_.root()) + " -S " + tree_.version();
    tree_.write("/loop.conf",
                "install mod2 " + self + " mod-dash\n" + "install mod-dash " + self + " mod2\n");
    std::string out;
    int status = test::run_shell("timeout 60 " + self + " mod2", &out);
    EXPECT_EQ(status, 1) << out;
    EXPECT_NE(out.find("they form a loop"), std::string::npos) << out;
}

TEST(ModprobeSandbox, AModprobeAnInstallCommandRunsAndItsParentSeeEachOthersLoads)
{
    // kmod's testsuite case install-cmd-loop: mod2 needs mod1, and mod1's install command
    // loads mod1 itself and then mod2. The outer modprobe, asked for mod2, then finds mod2
    // loaded by the inner one (EEXIST counts as success): it must not insert against the
    // kernel as it was when it started.
    TempTree tree;
    tree.add("kernel/mod1.ko", kFixtures / "mod1.ko");
    tree.add("kernel/mod2.ko", kFixtures / "mod2.ko");
    ASSERT_EQ(test::run_shell(kKmodctl + " depmod -C /dev/null -b " + shell_quoted(tree.root()) +
                              " " + tree.version()),
              0);
    std::string self = kModprobeLink + " --sandbox-kernel " +
                       shell_quoted(tree.root() / "sandbox") + " -C " +
                       shell_quoted(tree.root() / "install-loop.conf") + " -d " +
                       shell_quoted(tree.root()) + " -S " + tree.version();
    tree.write("/install-loop.conf", "install mod1 " + self + " --ignore-install mod1 && { " +
                                         self + " --quiet mod2 ; }\n");
    std::string out;
    int status = test::run_shell("timeout 60 " + self + " -v mod2", &out);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("install "), std::string::npos) << "mod1's install command ran:\n" << out;
    EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;
    std::string state = test::slurp(tree.root() / "sandbox/sandbox-kernel.json");
    EXPECT_NE(state.find("\"mod1\""), std::string::npos) << state;
    EXPECT_NE(state.find("\"mod2\""), std::string::npos) << state;
}

TEST_F(ModprobeCli, InstallCommandsGetTheModuleAndItsOptions)
{
    tree_.write("/cmd.conf", "install mod2 echo \"$MODPROBE_MODULE:$CMDLINE_OPTS\" > " +
                                 shell_quoted(tree_.root() / "ran").substr(0) + "\n");
    std::string out;
    int status = test::run_shell(
        kModprobeLink + " --sandbox-kernel " + shell_quoted(tree_.root() / "sandbox") + " -C " +
            shell_quoted(tree_.root() / "cmd.conf") + " -d " + shell_quoted(tree_.root()) + " -S " +
            tree_.version() + " mod2 a=1 b=2",
        &out);
    ASSERT_EQ(status, 0) << out;
    EXPECT_EQ(test::slurp(tree_.root() / "ran"), "mod2:a=1 b=2\n");
}

} // namespace
} // namespace kmodd
