// SPDX-License-Identifier: LGPL-2.1-or-later
// ConfigWatcher: which modprobe.d changes are noticed, on real inotify in a temporary root.
#include "service/config_watcher.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "temp_tree.hpp"

namespace kmodd::service {
namespace {

namespace fs = std::filesystem;

class ConfigWatcherTest : public ::testing::Test {
protected:
    void write(const fs::path& path, const std::string& text)
    {
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
    }
    /// Whether the watcher reports a change for what happened so far.
    bool changed(ConfigWatcher& watcher)
    {
        auto changes = watcher.read_changes();
        EXPECT_TRUE(changes) << changes.error().message;
        return changes && *changes;
    }

    test::TempTree tree_;
    fs::path etc_ = tree_.root() / "etc";
};

TEST_F(ConfigWatcherTest, AFileWrittenInAWatchedFolderCounts)
{
    fs::create_directories(etc_ / "modprobe.d");
    auto watcher = ConfigWatcher::create({(etc_ / "modprobe.d").string()});
    ASSERT_TRUE(watcher) << watcher.error().message;
    EXPECT_FALSE(changed(**watcher)) << "nothing happened yet";
    write(etc_ / "modprobe.d/blacklist.conf", "blacklist mod1\n");
    EXPECT_TRUE(changed(**watcher));
    fs::remove(etc_ / "modprobe.d/blacklist.conf");
    EXPECT_TRUE(changed(**watcher)) << "a deleted file counts too";
}

TEST_F(ConfigWatcherTest, AWatchedFileCountsButItsNeighboursDoNot)
{
    write(etc_ / "modprobe.conf", "");
    auto watcher = ConfigWatcher::create({(etc_ / "modprobe.conf").string()});
    ASSERT_TRUE(watcher) << watcher.error().message;
    write(etc_ / "hostname", "box\n");
    EXPECT_FALSE(changed(**watcher)) << "another file of the same folder";
    // Editors write a new file and rename it over the old one.
    write(etc_ / "modprobe.conf.new", "options mod1 x=1\n");
    fs::rename(etc_ / "modprobe.conf.new", etc_ / "modprobe.conf");
    EXPECT_TRUE(changed(**watcher));
}

TEST_F(ConfigWatcherTest, AFolderCreatedLaterIsWatchedFromThenOn)
{
    fs::create_directories(etc_);
    auto watcher = ConfigWatcher::create({(etc_ / "modprobe.d").string()});
    ASSERT_TRUE(watcher) << watcher.error().message;
    EXPECT_TRUE((*watcher)->watched_dirs().empty()) << "only its parent, for its name";
    fs::create_directory(etc_ / "modprobe.d");
    EXPECT_TRUE(changed(**watcher)) << "the folder appeared";
    EXPECT_EQ((*watcher)->watched_dirs(), std::vector<std::string>{(etc_ / "modprobe.d").string()});
    write(etc_ / "modprobe.d/options.conf", "options mod1 x=1\n");
    EXPECT_TRUE(changed(**watcher)) << "a file inside the new folder";
}

TEST_F(ConfigWatcherTest, APathWithoutAnyWatchableParentIsLeftOut)
{
    auto watcher = ConfigWatcher::create({(etc_ / "missing/deeper/modprobe.d").string()});
    ASSERT_TRUE(watcher) << watcher.error().message;
    EXPECT_TRUE((*watcher)->watched_dirs().empty());
    EXPECT_FALSE(changed(**watcher));
}

} // namespace
} // namespace kmodd::service
