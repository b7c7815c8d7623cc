// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl check` as a user runs it: a module by name or by file, the kernel's state read
// from a made-up root (--root), the verdict as exit status, text and --json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "temp_tree.hpp"

namespace kmodd::test {
namespace {

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
const std::string kKmodctl = KMODD_KMODCTL;

class CheckCli : public ::testing::Test {
protected:
    void SetUp() override
    {
        tree_.add("kernel/mod1.ko", kFixtures / "mod1.ko");
        tree_.add("kernel/mod2.ko", kFixtures / "mod2.ko");
        ASSERT_EQ(
            run_shell(kKmodctl + " depmod -b '" + tree_.root().string() + "' " + tree_.version()),
            0);
        kernel_ = tree_.root() / "running";
        fs::create_directories(kernel_ / "proc/sys/kernel");
        fs::create_directories(kernel_ / "sys/module/module/parameters");
        std::ofstream(kernel_ / "proc/kallsyms") << "0000000000000000 r __ksymtab_printk\n";
        std::ofstream(kernel_ / "proc/modules") << "";
        std::ofstream(kernel_ / "proc/sys/kernel/modules_disabled") << "0\n";
        enforce(false);
    }

    void enforce(bool on) const
    {
        std::ofstream(kernel_ / "sys/module/module/parameters/sig_enforce") << (on ? "Y\n" : "N\n");
    }

    int check(const std::string& arguments, std::string* output) const
    {
        return run_shell(kKmodctl + " check --kernel " + tree_.version() + " -b '" +
                             tree_.root().string() + "' --root '" + kernel_.string() + "' " +
                             arguments + " 2>&1",
                         output);
    }

    TempTree tree_{"6.1.0-test"};
    fs::path kernel_;
};

TEST_F(CheckCli, AModuleOfTheIndexWhoseNeedsAreMetShouldLoad)
{
    std::string output;
    EXPECT_EQ(check("mod2", &output), 0) << output;
    EXPECT_NE(output.find("symbols found: 0 from the kernel, 1 from mod1"), std::string::npos)
        << output;
    EXPECT_NE(output.find("The load should succeed."), std::string::npos) << output;
}

TEST_F(CheckCli, AnUnsignedModuleUnderSignatureEnforcementWouldFailWithTheFix)
{
    enforce(true);
    std::string output;
    EXPECT_EQ(check("mod2", &output), 1) << output;
    EXPECT_NE(output.find("problem  signature  the module is unsigned"), std::string::npos)
        << output;
    EXPECT_NE(output.find("fix: sign it with a key the kernel trusts"), std::string::npos)
        << output;
    EXPECT_NE(output.find("The load would fail (1 problem(s))."), std::string::npos) << output;
}

TEST_F(CheckCli, AFileOutsideTheTreeNamesTheModuleToLoadFirstAndParametersAreChecked)
{
    const fs::path outside = tree_.root() / "home/mydrv.ko";
    fs::create_directories(outside.parent_path());
    fs::copy_file(kFixtures / "mod2.ko", outside);
    std::string output;
    EXPECT_EQ(check("--json '" + outside.string() + "' nosuch=1", &output), 0) << output;
    auto json = nlohmann::json::parse(output);
    EXPECT_EQ(json["module"], "mydrv");
    EXPECT_EQ(json["would_load"], true);
    std::vector<std::string> messages;
    for (const auto& finding : json["findings"])
        messages.push_back(finding["severity"].get<std::string>() + " " +
                           finding["message"].get<std::string>());
    auto has = [&](const std::string& start) {
        return std::any_of(messages.begin(), messages.end(),
                           [&](const std::string& m) { return m.starts_with(start); });
    };
    EXPECT_TRUE(has("warning 'mod1_fn' comes from 'mod1', which is not loaded")) << output;
    EXPECT_TRUE(has("warning unknown parameter 'nosuch'")) << output;
}

TEST_F(CheckCli, ASymbolNobodyExportsWouldFailAndAMissingModuleIsAUsageError)
{
    // mod1 is not in the tree any more, and the running kernel does not export mod1_fn.
    fs::remove(tree_.module_dir() / "kernel/mod1.ko");
    ASSERT_EQ(run_shell(kKmodctl + " depmod -b '" + tree_.root().string() + "' " + tree_.version()),
              0);
    std::string output;
    EXPECT_EQ(check("mod2", &output), 1) << output;
    EXPECT_NE(output.find("exports 'mod1_fn' (the load fails: Unknown symbol in module)"),
              std::string::npos)
        << output;
    EXPECT_EQ(check("no_such_module", &output), 2) << output;
    EXPECT_NE(output.find("module 'no_such_module' not found"), std::string::npos) << output;
}

} // namespace
} // namespace kmodd::test
