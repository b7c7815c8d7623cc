// SPDX-License-Identifier: LGPL-2.1-or-later
// Asking kmod its version: run once per kmod binary when a cache directory is given.
#include "sys/kmod_tool.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace kmodd::sys {
namespace {

namespace fs = std::filesystem;

class KmodToolTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir_ = fs::temp_directory_path() / ("kmod-tool-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "bin");
        fs::create_directories(dir_ / "cache");
        if (const char* path = std::getenv("PATH"))
            old_path_ = path;
        ::setenv("PATH", (dir_ / "bin").c_str(), 1);
        write_kmod("kmod version 31");
    }
    void TearDown() override
    {
        ::setenv("PATH", old_path_.c_str(), 1);
        fs::remove_all(dir_);
    }
    /// A fake kmod that prints `version` and counts its runs in runs.txt.
    void write_kmod(const std::string& version)
    {
        const fs::path tool = dir_ / "bin" / "kmod";
        const fs::path temp = dir_ / "bin" / ".kmod.new";
        std::ofstream(temp) << "#!/bin/sh\necho x >>'" << (dir_ / "runs.txt").string()
                            << "'\necho '" << version << "'\n";
        fs::permissions(temp, fs::perms::owner_all);
        fs::rename(temp, tool); // a new inode, as a package upgrade gives
    }
    [[nodiscard]] int runs() const
    {
        std::ifstream in(dir_ / "runs.txt");
        int count = 0;
        for (std::string line; std::getline(in, line);)
            ++count;
        return count;
    }

    fs::path dir_;
    std::string old_path_;
};

TEST_F(KmodToolTest, TheSameKmodIsAskedOnceAndAnotherOneAgain)
{
    const std::string cache = (dir_ / "cache").string();
    EXPECT_EQ(installed_kmod_version(cache), "kmod version 31\n");
    EXPECT_EQ(installed_kmod_version(cache), "kmod version 31\n");
    EXPECT_EQ(runs(), 1) << "the second answer comes from " << cache;

    write_kmod("kmod version 34");
    EXPECT_EQ(installed_kmod_version(cache), "kmod version 34\n");
    EXPECT_EQ(runs(), 2);
    EXPECT_EQ(installed_kmod_version(), "kmod version 34\n") << "without a cache: always run";
    EXPECT_EQ(runs(), 3);
}

TEST_F(KmodToolTest, AnUnwritableCacheOnlyCostsARun)
{
    const std::string nowhere = (dir_ / "missing" / "cache").string();
    EXPECT_EQ(installed_kmod_version(nowhere), "kmod version 31\n");
    EXPECT_EQ(installed_kmod_version(nowhere), "kmod version 31\n");
    EXPECT_EQ(runs(), 2);
    ::setenv("PATH", (dir_ / "cache").c_str(), 1);
    EXPECT_EQ(installed_kmod_version((dir_ / "cache").string()), std::nullopt) << "no kmod";
}

} // namespace
} // namespace kmodd::sys
