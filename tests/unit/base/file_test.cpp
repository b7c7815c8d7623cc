// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "temp_tree.hpp"
#include "thread_limit.hpp"

namespace kmodd::base {
namespace {

namespace fs = std::filesystem;

class PublishTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-publish-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        auto fd = open_directory(AT_FDCWD, dir_.string());
        ASSERT_TRUE(fd);
        fd_ = std::move(*fd);
    }
    void TearDown() override { fs::remove_all(dir_); }

    [[nodiscard]] size_t entry_count() const
    {
        return static_cast<size_t>(
            std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
    }

    fs::path dir_;
    UniqueFd fd_;
};

TEST_F(PublishTest, AFileIsReplacedWithMode0644WhateverTheUmask)
{
    ASSERT_TRUE(publish_file(fd_.get(), "modules.dep", "old\n"));
    mode_t old_mask = ::umask(077);
    auto published = publish_file(fd_.get(), "modules.dep", "new\n");
    ::umask(old_mask);
    ASSERT_TRUE(published);
    EXPECT_EQ(test::slurp(dir_ / "modules.dep"), "new\n");
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / "modules.dep").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644U);
    EXPECT_EQ(entry_count(), 1U) << "a temp file was left behind";
}

TEST_F(PublishTest, AFailedWriteReplacesNothingAndLeavesNoTempFile)
{
    ASSERT_TRUE(publish_files(fd_.get(), {{"a", "old a"}, {"b", "old b"}}));
    // A file size limit makes the second (large) write fail with EFBIG.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    ::sigaction(SIGXFSZ, &ignore, &previous);
    rlimit old_limit{};
    ::getrlimit(RLIMIT_FSIZE, &old_limit);
    rlimit small = old_limit;
    small.rlim_cur = 1024;
    ::setrlimit(RLIMIT_FSIZE, &small);
    std::string big(4096, 'x');
    auto published = publish_files(fd_.get(), {{"a", "new a"}, {"b", big}});
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    ::sigaction(SIGXFSZ, &previous, nullptr);

    ASSERT_FALSE(published);
    EXPECT_EQ(published.error().code, EFBIG);
    EXPECT_NE(published.error().message.find("'b'"), std::string::npos)
        << published.error().message;
    EXPECT_EQ(test::slurp(dir_ / "a"), "old a") << "a file was replaced although the set failed";
    EXPECT_EQ(test::slurp(dir_ / "b"), "old b");
    EXPECT_EQ(entry_count(), 2U) << "a temp file was left behind";
}

TEST_F(PublishTest, ABatchFsyncedOnThreadsOrWhereNoneCanStartPublishesEveryFile)
{
    // Each file's fsync runs on a thread of its own while the next is added; where no thread
    // can be started, commit() fsyncs them itself. A batch dropped uncommitted leaves nothing.
    auto publish_three = [&](const std::string& tag) {
        PublishBatch batch(fd_.get(), true);
        for (const char* name : {"a", "b", "c"}) {
            if (!batch.add(name, tag + name))
                return 1;
        }
        PublishBatch dropped(fd_.get(), true);
        if (!dropped.add("d", "never published"))
            return 2;
        return batch.commit() ? 0 : 3;
    };
    ASSERT_EQ(publish_three("threads "), 0);
    for (const char* name : {"a", "b", "c"})
        EXPECT_EQ(test::slurp(dir_ / name), std::string("threads ") + name);
    EXPECT_EQ(entry_count(), 3U) << "a temp file was left behind, or the dropped file published";
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to set a task limit up";
    ASSERT_EQ(test::run_where_threads_are_refused([&] { return publish_three("inline "); }), 0);
    for (const char* name : {"a", "b", "c"})
        EXPECT_EQ(test::slurp(dir_ / name), std::string("inline ") + name);
    EXPECT_EQ(entry_count(), 3U);
}

TEST_F(PublishTest, TempFilesOfADeadProcessAreRemovedAndNothingElse)
{
    // A process that surely ran and is gone: a reaped child.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0)
        ::_exit(0);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    const std::string dead = std::to_string(child);
    const std::string alive = std::to_string(::getppid()); // runs, and is not us
    const std::string own = std::to_string(::getpid());
    const std::vector<std::string> stale{".modules.dep.kmodd-" + dead + "-0",
                                         ".modules.cache.kmodd-" + dead + "-17"};
    const std::vector<std::string> kept{".modules.dep.kmodd-" + alive + "-3",
                                        ".modules.dep.kmodd-" + own + "-1",
                                        "modules.dep",
                                        ".hidden",
                                        ".x.kmodd-" + dead,
                                        ".x.kmodd-" + dead + "-",
                                        ".x.kmodd-" + dead + "-1a",
                                        "x.kmodd-" + dead + "-1"};
    for (const auto& name : stale)
        ASSERT_TRUE(publish_file(fd_.get(), name, "partial", false));
    for (const auto& name : kept)
        ASSERT_TRUE(publish_file(fd_.get(), name, "keep", false));
    EXPECT_EQ(remove_stale_temp_files(fd_.get()), stale.size());
    for (const auto& name : stale)
        EXPECT_FALSE(fs::exists(dir_ / name)) << name;
    for (const auto& name : kept)
        EXPECT_TRUE(fs::exists(dir_ / name)) << name;
}

TEST_F(PublishTest, ReadFileReportsTheMissingPath)
{
    auto content = read_file(fd_.get(), "nothere");
    ASSERT_FALSE(content);
    EXPECT_EQ(content.error().code, ENOENT);
    EXPECT_NE(content.error().message.find("'nothere'"), std::string::npos);
}

TEST_F(PublishTest, AMappedFileHoldsTheBytesOfTheFileItWasOpenedOn)
{
    ASSERT_TRUE(publish_file(fd_.get(), "big", std::string(100000, 'k') + "end", false));
    ASSERT_TRUE(publish_file(fd_.get(), "empty", "", false));
    auto big = MappedFile::open(fd_.get(), "big");
    ASSERT_TRUE(big) << big.error().message;
    // Replaced by rename: the mapping keeps the old inode's bytes.
    ASSERT_TRUE(publish_file(fd_.get(), "big", "new", false));
    EXPECT_EQ(big->bytes().size(), 100003U);
    EXPECT_TRUE(big->bytes().ends_with("kend"));
    MappedFile moved = std::move(*big);
    EXPECT_TRUE(big->bytes().empty());
    EXPECT_EQ(moved.bytes().size(), 100003U);

    auto empty = MappedFile::open(fd_.get(), "empty");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->bytes().empty());
    auto missing = MappedFile::open(fd_.get(), "nothere");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ENOENT);
    EXPECT_EQ(MappedFile::open(AT_FDCWD, dir_.string()).error().code, EISDIR);
}

TEST_F(PublishTest, ADirectoryReaderTellsTheEndOfADirectoryFromAFailedRead)
{
    ASSERT_TRUE(publish_file(fd_.get(), "a.ko", "x", false));
    DirectoryReader reader(fd_.get());
    DirectoryReader::Entry entry{};
    size_t entries = 0;
    while (reader.next(entry))
        ++entries;
    EXPECT_EQ(entries, 3U) << ". .. a.ko";
    EXPECT_EQ(reader.error(), 0);

    // getdents on what is not a directory fails: that is not a directory's end.
    UniqueFd file(::openat(fd_.get(), "a.ko", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file.is_valid());
    DirectoryReader broken(file.get());
    EXPECT_FALSE(broken.next(entry));
    EXPECT_EQ(broken.error(), ENOTDIR);
}

} // namespace
} // namespace kmodd::base
