// SPDX-License-Identifier: LGPL-2.1-or-later
// Output files made chunk by chunk: the bytes and the digest are those of the whole content,
// and a publisher writes a file only where it differs from the one on disk, leaving exactly
// the new bytes once committed.
#include "depmod/output_publisher.hpp"
#include "depmod/output_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/file.hpp"
#include "temp_tree.hpp"

namespace {

using kmodd::depmod::content_digest;
using kmodd::depmod::OutputPublisher;
using kmodd::depmod::OutputSink;
using kmodd::depmod::StringSink;
using kmodd::test::slurp;
using kmodd::test::TempTree;

constexpr size_t kChunk = OutputSink::kChunk;

/// `size` bytes that differ from chunk to chunk and within each.
std::string pattern(size_t size, unsigned seed = 1)
{
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i)
        bytes[i] = static_cast<char>((i * 131 + seed * 7 + i / kChunk) & 0x7f);
    return bytes;
}

/// `content` given to `sink` in pieces of `piece` bytes, then finished.
void give(OutputSink& sink, const std::string& content, size_t piece)
{
    for (size_t at = 0; at < content.size(); at += piece)
        sink.append(std::string_view(content).substr(at, piece));
    sink.finish();
}

TEST(OutputSink, AStringSinkHoldsWhatWasGivenWithTheDigestOfTheWhole)
{
    for (size_t size :
         {size_t{0}, size_t{1}, kChunk - 1, kChunk, kChunk + 1, 3 * kChunk, 3 * kChunk + 17}) {
        for (size_t piece : {size_t{1}, size_t{7}, kChunk, 2 * kChunk + 3}) {
            if (piece == 1 && size > kChunk + 1)
                continue; // byte by byte only where it is quick
            const std::string content = pattern(size);
            StringSink sink;
            give(sink, content, piece);
            EXPECT_EQ(sink.size(), size);
            EXPECT_EQ(sink.digest(), content_digest(content)) << size << "/" << piece;
            EXPECT_EQ(sink.take(), content) << size << "/" << piece;
        }
    }
}

TEST(OutputSink, APatchChangesBytesOfTheFirstChunkAfterLaterOnesWereGiven)
{
    std::string content = pattern(2 * kChunk + 100);
    StringSink sink;
    sink.append(std::string_view(content).substr(0, 12));
    sink.append(std::string_view(content).substr(12));
    content.replace(8, 4, "ROOT");
    sink.patch(8, "ROOT");
    sink.finish();
    EXPECT_EQ(sink.digest(), content_digest(content));
    EXPECT_EQ(sink.take(), content);
}

TEST(OutputSink, TheDigestTellsApartContentsThatDifferInOneByteOrInLength)
{
    const std::string content = pattern(2 * kChunk + 5);
    std::string other = content;
    other[kChunk + 3] ^= 1;
    EXPECT_NE(content_digest(content), content_digest(other));
    EXPECT_NE(content_digest(content), content_digest(content + '\0'));
    EXPECT_NE(content_digest(""), content_digest(std::string(1, '\0')));
    // Two chunks swapped: the same chunk digests at other offsets.
    const std::string a = pattern(kChunk, 1), b = pattern(kChunk, 2);
    EXPECT_NE(content_digest(a + b), content_digest(b + a));
}

/// A publisher's run over `dir` writing `content` as "out": whether it changed the file.
bool publish(const std::string& dir, const std::string& content, size_t piece = 4096)
{
    auto dir_fd = kmodd::base::open_directory(AT_FDCWD, dir);
    EXPECT_TRUE(dir_fd);
    kmodd::base::PublishBatch batch(dir_fd->get(), false);
    OutputPublisher publisher(dir_fd->get(), batch);
    {
        auto sink = publisher.open("out");
        give(*sink, content, piece);
    }
    EXPECT_FALSE(publisher.failure());
    const bool changed = !publisher.changed().empty();
    auto files = publisher.take_files();
    EXPECT_EQ(files.size(), 1U);
    if (files.size() == 1) {
        EXPECT_EQ(files[0].size, content.size());
        EXPECT_EQ(files[0].digest, content_digest(content));
    }
    EXPECT_TRUE(batch.commit());
    return changed;
}

TEST(OutputPublisher, AFileThatComesOutTheSameIsNotWrittenAndOneThatDiffersIsReplacedWhole)
{
    TempTree tree;
    const std::string dir = tree.module_dir().string();
    const std::string first = pattern(3 * kChunk + 77);
    EXPECT_TRUE(publish(dir, first)) << "no file yet";
    EXPECT_EQ(slurp(tree.module_dir() / "out"), first);
    struct stat before {};
    ASSERT_EQ(::stat((dir + "/out").c_str(), &before), 0);
    EXPECT_FALSE(publish(dir, first, 1000));
    struct stat after {};
    ASSERT_EQ(::stat((dir + "/out").c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "the same file, not a copy";

    // Differing in each chunk, in the first only (which comes last), in length only (a
    // beginning of the old file, or the old file and more), or in everything.
    std::vector<std::string> contents;
    for (size_t at : {size_t{5}, kChunk + 9, 2 * kChunk, 3 * kChunk + 76}) {
        std::string changed = first;
        changed[at] ^= 0x20;
        contents.push_back(changed);
    }
    contents.push_back(first.substr(0, 2 * kChunk + 1));
    contents.push_back(first.substr(0, 10));
    contents.push_back(first + "tail");
    contents.push_back("");
    contents.push_back(pattern(kChunk, 9));
    for (const std::string& content : contents) {
        EXPECT_TRUE(publish(dir, content)) << content.size();
        EXPECT_TRUE(slurp(tree.module_dir() / "out") == content) << content.size();
        EXPECT_FALSE(publish(dir, content)) << content.size();
    }
}

TEST(OutputPublisher, AFileThatCannotBeWrittenIsReportedByNameAndLeavesNoTempFile)
{
    // A directory removed while open: no file can be made in it, even by root.
    TempTree tree;
    const std::string dir = (tree.module_dir() / "gone").string();
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    auto dir_fd = kmodd::base::open_directory(AT_FDCWD, dir);
    ASSERT_TRUE(dir_fd);
    ASSERT_EQ(::rmdir(dir.c_str()), 0);
    kmodd::base::PublishBatch batch(dir_fd->get(), false);
    OutputPublisher publisher(dir_fd->get(), batch);
    for (const char* name : {"modules.dep", "modules.alias"}) {
        auto sink = publisher.open(name);
        give(*sink, pattern(kChunk + 1), 4096);
    }
    ASSERT_TRUE(publisher.failure());
    EXPECT_NE(publisher.failure()->message.find("modules.dep"), std::string::npos)
        << publisher.failure()->message;
    EXPECT_TRUE(publisher.changed().empty());
    EXPECT_EQ(batch.size(), 0U);
}

} // namespace
