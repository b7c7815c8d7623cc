// SPDX-License-Identifier: LGPL-2.1-or-later
// The links of modules under development: made whole, refused when they would hide another
// file, removed with their folder.
#include "service/dev_links.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_tree.hpp"

namespace kmodd::service {
namespace {

namespace fs = std::filesystem;

class DevLinks : public ::testing::Test {
protected:
    void SetUp() override
    {
        source_ = tree_.root() / "src";
        fs::create_directories(source_);
        std::ofstream(source_ / "my-driver.ko") << "not parsed here";
        std::ofstream(source_ / "other.ko") << "x";
    }

    [[nodiscard]] std::string release_dir() const { return tree_.module_dir().string(); }
    [[nodiscard]] fs::path link_dir() const { return tree_.module_dir() / kDevLinkDir; }

    kmodd::test::TempTree tree_;
    fs::path source_;
};

TEST_F(DevLinks, AFileIsLinkedUnderItsModuleNameAndUnlinkedWithItsFolder)
{
    auto linked = link_dev_module(release_dir(), (source_ / "my-driver.ko").string());
    ASSERT_TRUE(linked) << linked.error().message;
    EXPECT_EQ(linked->module, "my_driver");
    EXPECT_EQ(linked->link, (link_dir() / "my-driver.ko").string());
    EXPECT_EQ(fs::read_symlink(linked->link), source_ / "my-driver.ko");
    // Nothing else is left in the folder (the temporary name is gone).
    EXPECT_EQ(std::distance(fs::directory_iterator(link_dir()), fs::directory_iterator()), 1);

    auto again = link_dev_module(release_dir(), (source_ / "my-driver.ko").string());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->link, linked->link);

    auto unlinked = unlink_dev_module(release_dir(), "my-driver");
    ASSERT_TRUE(unlinked) << unlinked.error().message;
    EXPECT_EQ(*unlinked, linked->link);
    EXPECT_FALSE(fs::exists(link_dir()));
    EXPECT_TRUE(fs::exists(source_ / "my-driver.ko")) << "the developer's file stays";
}

TEST_F(DevLinks, ASecondFileOfTheSameModuleIsRefusedNamingTheFirst)
{
    ASSERT_TRUE(link_dev_module(release_dir(), (source_ / "my-driver.ko").string()));
    fs::create_directories(source_ / "b");
    std::ofstream(source_ / "b" / "my_driver.ko") << "y";
    auto second = link_dev_module(release_dir(), (source_ / "b" / "my_driver.ko").string());
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().kind, Failure::InUse);
    EXPECT_NE(second.error().message.find((source_ / "my-driver.ko").string()), std::string::npos)
        << second.error().message;
    EXPECT_NE(second.error().message.find("kmodctl dev --unlink"), std::string::npos);
    EXPECT_EQ(fs::read_symlink(link_dir() / "my-driver.ko"), source_ / "my-driver.ko");
}

TEST_F(DevLinks, BadFilesAreRefusedWithTheirReason)
{
    auto relative = link_dev_module(release_dir(), "src/other.ko");
    ASSERT_FALSE(relative);
    EXPECT_EQ(relative.error().kind, Failure::InvalidName);

    std::ofstream(source_ / "notes.txt") << "x";
    auto not_module = link_dev_module(release_dir(), (source_ / "notes.txt").string());
    ASSERT_FALSE(not_module);
    EXPECT_EQ(not_module.error().kind, Failure::InvalidName);

    auto missing = link_dev_module(release_dir(), (source_ / "gone.ko").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().kind, Failure::NotFound);

    fs::create_directories(source_ / "dir.ko");
    auto directory = link_dev_module(release_dir(), (source_ / "dir.ko").string());
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.error().kind, Failure::InvalidName);
    EXPECT_FALSE(fs::exists(link_dir() / "dir.ko"));
}

TEST_F(DevLinks, AFileKmoddDidNotLinkIsLeftAlone)
{
    fs::create_directories(link_dir());
    std::ofstream(link_dir() / "other.ko") << "someone's copy";
    auto linked = link_dev_module(release_dir(), (source_ / "other.ko").string());
    ASSERT_FALSE(linked);
    EXPECT_EQ(linked.error().kind, Failure::Failed);
    auto unlinked = unlink_dev_module(release_dir(), "other");
    ASSERT_FALSE(unlinked);
    EXPECT_EQ(unlinked.error().kind, Failure::NotFound);
    EXPECT_TRUE(fs::is_regular_file(link_dir() / "other.ko"));
}

TEST_F(DevLinks, UnlinkingWhatIsNotLinkedSaysSo)
{
    auto unlinked = unlink_dev_module(release_dir(), "my_driver");
    ASSERT_FALSE(unlinked);
    EXPECT_EQ(unlinked.error().kind, Failure::NotFound);
    auto invalid = unlink_dev_module(release_dir(), "../x");
    ASSERT_FALSE(invalid);
    EXPECT_EQ(invalid.error().kind, Failure::InvalidName);
}

TEST_F(DevLinks, ACompressedFileOfALinkedModuleIsAnotherFile)
{
    ASSERT_TRUE(link_dev_module(release_dir(), (source_ / "other.ko").string()));
    std::ofstream(source_ / "other.ko.xz") << "x";
    // x.ko.xz beside x.ko would be a second module of the same name: refused.
    auto compressed = link_dev_module(release_dir(), (source_ / "other.ko.xz").string());
    ASSERT_FALSE(compressed);
    EXPECT_EQ(compressed.error().kind, Failure::InUse);
}

} // namespace
} // namespace kmodd::service
