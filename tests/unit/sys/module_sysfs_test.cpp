// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sys/module_sysfs.hpp"

namespace kmodd::sys {
namespace {

namespace fs = std::filesystem;
using Names = std::vector<std::string>;

/// A fake /proc and /sys in a temporary directory.
class ModuleSysfsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-sysfs-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        fs::create_directories(dir_ / "proc");
        fs::create_directories(dir_ / "sys" / "module");
    }
    void TearDown() override { fs::remove_all(dir_); }

    [[nodiscard]] ModuleSysfs sysfs() const
    {
        return ModuleSysfs((dir_ / "sys").string(), (dir_ / "proc").string());
    }
    void write(const std::string& relative, const std::string& text) const
    {
        fs::path path = dir_ / relative;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << text;
    }

    fs::path dir_;
};

TEST_F(ModuleSysfsTest, NamesComeInTheOrderOfProcModules)
{
    write("proc/modules",
          "zeta 4096 0 - Live 0x0\nalpha\t8192 1 zeta, Live 0x0\n\nmid 1 0 - Live\n");
    auto names = sysfs().loaded_names();
    ASSERT_TRUE(names) << names.error().message;
    EXPECT_EQ(*names, (Names{"zeta", "alpha", "mid"}));
}

TEST_F(ModuleSysfsTest, AMissingProcModulesIsAnErrorWithItsErrno)
{
    auto names = sysfs().loaded_names();
    ASSERT_FALSE(names);
    EXPECT_EQ(names.error().code, ENOENT);
}

TEST_F(ModuleSysfsTest, RefcountIsTheNumberOrANegativeErrnoAndAComplaintOnlyForJunk)
{
    write("sys/module/good/refcnt", "3\n");
    write("sys/module/junk/refcnt", "many\n");
    write("sys/module/unterminated/refcnt", "7");
    std::string complaint;
    EXPECT_EQ(sysfs().refcount("good", &complaint), 3);
    EXPECT_EQ(complaint, "");
    EXPECT_EQ(sysfs().refcount("missing", &complaint), -ENOENT);
    EXPECT_EQ(complaint, "") << "libkmod is silent about a missing refcnt";
    EXPECT_EQ(sysfs().refcount("junk", &complaint), -EINVAL);
    EXPECT_EQ(complaint, "could not read integer from '" +
                             (dir_ / "sys/module/junk/refcnt").string() + "': 'Invalid argument'");
    EXPECT_EQ(sysfs().refcount("unterminated"), -EINVAL) << "libkmod wants white space after it";
    EXPECT_EQ(sysfs().refcount("../module/good"), -ENOENT) << "a path is no module name";
}

TEST_F(ModuleSysfsTest, SizeIsCoresizeElseTheProcModulesColumnElseNegative)
{
    write("sys/module/sized/coresize", "12288\n");
    write("sys/module/old_kernel/refcnt", "0\n");
    write("sys/module/unlisted/refcnt", "0\n");
    write("proc/modules", "sized 99 0 - Live 0x0\nold_kernel 40960 0 - Live 0x0\n");
    EXPECT_EQ(sysfs().size("sized"), 12288);
    EXPECT_EQ(sysfs().size("old_kernel"), 40960);
    EXPECT_EQ(sysfs().size("unlisted"), -ENOENT);
    EXPECT_EQ(sysfs().size("gone"), -ENOENT) << "no /sys/module/gone";
}

TEST_F(ModuleSysfsTest, HoldersKeepTheDirectoryOrderAndAMissingDirectoryIsNamed)
{
    for (const char* holder : {"one", "two", "three", "four"})
        write(std::string("sys/module/held/holders/") + holder, "");
    Names in_directory_order;
    DIR* dir = ::opendir((dir_ / "sys/module/held/holders").c_str());
    ASSERT_NE(dir, nullptr);
    while (const dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..")
            in_directory_order.push_back(name);
    }
    ::closedir(dir);

    auto holders = sysfs().holders("held");
    ASSERT_TRUE(holders) << holders.error().message;
    EXPECT_EQ(*holders, in_directory_order) << "lsmod prints them as readdir gives them";

    auto missing = sysfs().holders("gone");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ENOENT);
    EXPECT_EQ(missing.error().message, "could not open '" +
                                           (dir_ / "sys/module/gone/holders").string() +
                                           "': No such file or directory");
}

TEST_F(ModuleSysfsTest, InitstateIsTheFileElseComingForADirectoryElseAnError)
{
    write("sys/module/live_one/initstate", "live\n");
    fs::create_directories(dir_ / "sys/module/builtin_one/parameters");
    auto live = sysfs().initstate("live_one");
    ASSERT_TRUE(live);
    EXPECT_EQ(*live, "live");
    auto builtin = sysfs().initstate("builtin_one");
    ASSERT_TRUE(builtin);
    EXPECT_EQ(*builtin, "coming");
    auto missing = sysfs().initstate("not_loaded");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ENOENT);
}

} // namespace
} // namespace kmodd::sys
