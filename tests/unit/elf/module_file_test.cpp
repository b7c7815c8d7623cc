// SPDX-License-Identifier: LGPL-2.1-or-later
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/unique_fd.hpp"
#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

using test::describe;
using test::fixture_path;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;

std::string expected_sample()
{
    auto info = parse_module(read_bytes(fixture_path("sample-le64.ko")));
    return info ? describe(*info) : "error: " + info.error().message;
}

TEST(LoadModuleFile, ParsesAnUncompressedModuleAndReturnsItsStat)
{
    std::string path = fixture_path("sample-le64.ko");
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, path, st);
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(describe(*info), expected_sample());
    struct stat expected {};
    ASSERT_EQ(::stat(path.c_str(), &expected), 0);
    EXPECT_EQ(st.st_ino, expected.st_ino);
    EXPECT_EQ(st.st_size, expected.st_size);
}

TEST(LoadModuleFile, OpensPathsRelativeToTheDirectoryFd)
{
    base::UniqueFd dir(::open(KMODD_ELF_FIXTURE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir.is_valid());
    struct stat st {};
    auto info = load_module_file(dir.get(), "sample-le64.ko", st);
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(describe(*info), expected_sample());
}

TEST(LoadModuleFile, DecompressesByContentWhateverTheFileName)
{
    TempDir dir;
    int copies = 0;
    for (const char* suffix : {"xz", "zst", "gz"}) {
        std::string source = fixture_path(std::string("sample-le64.ko.") + suffix);
        if (::access(source.c_str(), R_OK) != 0)
            continue;
        // Named .ko.gz whatever the codec: the magic decides.
        std::string target = dir.path() + "/" + suffix + ".ko.gz";
        write_bytes(target, read_bytes(source));
        struct stat st {};
        auto info = load_module_file(AT_FDCWD, target, st);
        ASSERT_TRUE(info.has_value()) << suffix << ": " << info.error().message;
        EXPECT_EQ(describe(*info), expected_sample()) << suffix;
        EXPECT_EQ(st.st_size, static_cast<off_t>(read_bytes(source).size()));
        ++copies;
    }
    if (copies == 0)
        GTEST_SKIP() << "no compressor installed";
}

TEST(LoadModuleFile, FollowsSymlinks)
{
    TempDir dir;
    std::string link = dir.path() + "/link.ko";
    ASSERT_EQ(::symlink(fixture_path("sample-le64.ko").c_str(), link.c_str()), 0);
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, link, st);
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(describe(*info), expected_sample());
}

TEST(LoadModuleFile, ReportsAMissingFileWithEnoentAndWithoutItsPath)
{
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, "/nonexistent/kmodd/missing.ko", st);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, ENOENT);
    EXPECT_EQ(info.error().message.find("missing.ko"), std::string::npos);
}

TEST(LoadModuleFile, RejectsADirectory)
{
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, KMODD_ELF_FIXTURE_DIR, st);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, EISDIR);
}

TEST(LoadModuleFile, RejectsAnEmptyFileAsNotElf)
{
    TempDir dir;
    std::string path = dir.path() + "/empty.ko";
    write_bytes(path, "");
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, path, st);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, ENOEXEC);
}

TEST(LoadModuleFile, ReportsACorruptCompressedFileWithEbadmsg)
{
    std::string source = fixture_path("sample-le64.ko.xz");
    if (::access(source.c_str(), R_OK) != 0)
        GTEST_SKIP() << "xz is not installed";
    TempDir dir;
    std::string path = dir.path() + "/cut.ko.xz";
    std::string bytes = read_bytes(source);
    write_bytes(path, bytes.substr(0, bytes.size() / 2));
    struct stat st {};
    auto info = load_module_file(AT_FDCWD, path, st);
    ASSERT_FALSE(info.has_value());
    EXPECT_EQ(info.error().code, EBADMSG);
}

} // namespace
} // namespace kmodd::elf
