// SPDX-License-Identifier: LGPL-2.1-or-later
// The walk with directory listings (index::WalkMemo): a directory that is provably the same is
// not read again, and what the walk finds is what a walk that reads everything finds.
#include <dirent.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "index/module_index.hpp"
#include "temp_tree.hpp"

namespace kmodd::index {
namespace {

namespace fs = std::filesystem;
using test::TempTree;

/// Whatever the walk found, one line per file in walk order.
std::vector<std::string> described(const std::vector<ModuleIndex::FoundFile>& files)
{
    std::vector<std::string> lines;
    for (const auto& f : files)
        lines.push_back(f.path + " name=" + f.name +
                        " rel=" + (f.relpath_at == 0 ? "" : f.path.substr(f.relpath_at)) +
                        " link=" + f.symlink_target + " dir_len=" + std::to_string(f.dir_len) +
                        " stat=" + (f.has_stat ? std::to_string(f.st.st_ino) : "none"));
    return lines;
}

class ModuleWalk : public ::testing::Test {
protected:
    void SetUp() override
    {
        tree_.write("kernel/fs/a.ko", "a");
        tree_.write("kernel/fs/sub/b.ko.xz", "b");
        tree_.write("kernel/drivers/c.ko", "c");
        tree_.write("kernel/drivers/readme.txt", "not a module");
        tree_.write("build/ignored.ko", "excluded by name");
        fs::create_directories(outside_ / "one");
        fs::create_directories(outside_ / "two");
        test::run_shell("echo d > " + test::shell_quoted(outside_ / "one/d.ko"));
        test::run_shell("echo e > " + test::shell_quoted(outside_ / "two/e.ko"));
        // updates -> outside/current -> outside/one: a directory reached through two links.
        fs::create_directory_symlink(outside_ / "one", outside_ / "current");
        tree_.link("updates", outside_ / "current");
        tree_.link("extra/f.ko", outside_ / "one/d.ko");
        settings_.module_dir = tree_.module_dir().string();
    }
    void TearDown() override { fs::remove_all(outside_); }

    /// A walk that trusts every directory as it is now (none changed "shortly before").
    std::vector<ModuleIndex::FoundFile> walk(WalkMemo& memo)
    {
        memo.since_ns = realtime_ns() + 10 * ParseCache::kRacyMarginNs;
        ModuleIndex index(settings_);
        Diagnostics said;
        auto files = index.list_files(said, &memo);
        EXPECT_TRUE(files);
        EXPECT_TRUE(said.empty());
        return files ? std::move(*files) : std::vector<ModuleIndex::FoundFile>();
    }
    std::vector<ModuleIndex::FoundFile> walk_reading_everything()
    {
        ModuleIndex index(settings_);
        Diagnostics said;
        auto files = index.list_files(said);
        EXPECT_TRUE(files);
        return files ? std::move(*files) : std::vector<ModuleIndex::FoundFile>();
    }
    /// A walk from `recorded`'s listings, one of them (of `dir`) given an entry that is not in
    /// the directory: found only when the listing is taken instead of the directory.
    std::vector<std::string> walk_with_planted_entry(const std::vector<DirListing>& recorded,
                                                     const fs::path& dir)
    {
        WalkMemo memo;
        memo.previous = recorded;
        for (DirListing& listing : memo.previous) {
            if (listing.path == dir.string())
                listing.entries.push_back({"planted.ko", DT_REG, false});
        }
        return described(walk(memo));
    }
    static bool has_planted(const std::vector<std::string>& lines, const fs::path& dir)
    {
        const std::string path = (dir / "planted.ko").string();
        for (const std::string& line : lines) {
            if (line.starts_with(path + " "))
                return true;
        }
        return false;
    }

    TempTree tree_;
    fs::path outside_ = tree_.root() / "outside";
    ModuleIndex::Settings settings_;
};

TEST_F(ModuleWalk, ListingsReplayedFindWhatReadingEveryDirectoryFinds)
{
    WalkMemo first;
    const auto read = described(walk(first));
    EXPECT_EQ(read, described(walk_reading_everything()));
    ASSERT_TRUE(first.complete);
    // The module dir, kernel, kernel/fs, kernel/fs/sub, kernel/drivers, updates, extra.
    EXPECT_EQ(first.recorded.size(), 7U);

    EXPECT_FALSE(first.recorded_unchanged) << "nothing was recorded before";

    WalkMemo second;
    second.previous = first.recorded;
    EXPECT_EQ(described(walk(second)), read);
    EXPECT_EQ(second.recorded, first.recorded);
    EXPECT_TRUE(second.recorded_unchanged);
    // Taken from the listing: an entry planted in it is found though the directory lacks it.
    const fs::path fs_dir = tree_.module_dir() / "kernel/fs";
    EXPECT_TRUE(has_planted(walk_with_planted_entry(first.recorded, fs_dir), fs_dir));
}

TEST_F(ModuleWalk, ADirectoryThatChangedIsReadAgainAndTheOthersAreNot)
{
    WalkMemo first;
    walk(first);
    tree_.write("kernel/fs/sub/new.ko", "new");
    const fs::path sub = tree_.module_dir() / "kernel/fs/sub";
    const fs::path drivers = tree_.module_dir() / "kernel/drivers";
    const auto lines = walk_with_planted_entry(first.recorded, sub);
    EXPECT_FALSE(has_planted(lines, sub));
    EXPECT_EQ(lines, described(walk_reading_everything()));
    EXPECT_TRUE(has_planted(walk_with_planted_entry(first.recorded, drivers), drivers));
}

TEST_F(ModuleWalk, ADirectoryWalkedTwiceIsRecordedTwiceAndAChangeIsSeen)
{
    // An external directory inside the tree is walked as part of it and again on its own.
    settings_.config.externals = {(tree_.module_dir() / "kernel/fs").string()};
    WalkMemo first;
    const auto read = described(walk(first));
    ASSERT_TRUE(first.complete);
    WalkMemo second;
    second.previous = first.recorded;
    EXPECT_EQ(described(walk(second)), read);
    EXPECT_EQ(second.recorded, first.recorded);
    EXPECT_TRUE(second.recorded_unchanged);

    tree_.write("kernel/drivers/new.ko", "new");
    WalkMemo third;
    third.previous = second.recorded;
    EXPECT_EQ(described(walk(third)), described(walk_reading_everything()));
    EXPECT_FALSE(third.recorded_unchanged) << "kernel/drivers was read again";
}

TEST_F(ModuleWalk, ALinkRetargetedOutsideTheTreeIsFollowedToItsNewDirectory)
{
    WalkMemo first;
    walk(first);
    // Nothing in the tree changes: only the link outside it now leads elsewhere.
    fs::remove(outside_ / "current");
    fs::create_directory_symlink(outside_ / "two", outside_ / "current");
    WalkMemo second;
    second.previous = first.recorded;
    const auto lines = described(walk(second));
    EXPECT_EQ(lines, described(walk_reading_everything()));
    bool found_e = false;
    for (const std::string& line : lines)
        found_e = found_e || line.starts_with((tree_.module_dir() / "updates/e.ko").string());
    EXPECT_TRUE(found_e);
}

TEST_F(ModuleWalk, ALinkedModuleThatBecameADirectoryMakesItsDirectoryReadAgain)
{
    WalkMemo first;
    walk(first);
    fs::remove(outside_ / "one/d.ko");
    fs::create_directory(outside_ / "one/d.ko");
    WalkMemo second;
    second.previous = first.recorded;
    EXPECT_EQ(described(walk(second)), described(walk_reading_everything()));
}

TEST_F(ModuleWalk, DirectoriesThatJustChangedAreNotRecorded)
{
    WalkMemo memo;
    memo.since_ns = realtime_ns(); // the tree was made a moment ago
    ModuleIndex index(settings_);
    Diagnostics said;
    ASSERT_TRUE(index.list_files(said, &memo));
    EXPECT_TRUE(memo.complete);
    EXPECT_TRUE(memo.recorded.empty());
}

TEST_F(ModuleWalk, AWalkThatSaysSomethingRecordsNothingToKeep)
{
    tree_.link("kernel/fs/dangling.ko", outside_ / "missing.ko");
    WalkMemo memo;
    memo.since_ns = realtime_ns() + 10 * ParseCache::kRacyMarginNs;
    ModuleIndex index(settings_);
    Diagnostics said;
    ASSERT_TRUE(index.list_files(said, &memo));
    ASSERT_EQ(said.size(), 1U);
    EXPECT_NE(said[0].message.find("dangling symlink"), std::string::npos) << said[0].message;
    EXPECT_FALSE(memo.complete);
}

} // namespace
} // namespace kmodd::index
