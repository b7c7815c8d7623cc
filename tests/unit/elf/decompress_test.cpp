// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <random>

#include "elf/decompress.hpp"
#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

using test::fixture_path;
using test::read_bytes;

struct Codec {
    const char* suffix;
    Compression compression;
};

class DecompressFixture : public ::testing::TestWithParam<Codec> {
protected:
    void SetUp() override
    {
        std::string path = fixture_path(std::string("sample-le64.ko.") + GetParam().suffix);
        if (::access(path.c_str(), R_OK) != 0)
            GTEST_SKIP() << "no compressor for " << GetParam().suffix;
        compressed_ = read_bytes(path);
        plain_ = read_bytes(fixture_path("sample-le64.ko"));
    }

    std::string compressed_;
    std::string plain_;
};

TEST_P(DecompressFixture, DetectsTheCodecFromTheMagicBytes)
{
    EXPECT_EQ(detect_compression(compressed_), GetParam().compression);
}

TEST_P(DecompressFixture, RestoresTheOriginalImage)
{
    auto plain = decompress(compressed_);
    ASSERT_TRUE(plain.has_value()) << plain.error().message;
    EXPECT_EQ(*plain, plain_);
}

TEST_P(DecompressFixture, RejectsEveryTruncatedStream)
{
    for (size_t length = 0; length < compressed_.size(); ++length) {
        auto plain = decompress(std::string_view(compressed_).substr(0, length));
        ASSERT_FALSE(plain.has_value()) << "cut at " << length;
        // Cut inside the magic: not recognised as compressed at all.
        int expected =
            detect_compression(std::string_view(compressed_).substr(0, length)) == Compression::None
                ? EINVAL
                : EBADMSG;
        EXPECT_EQ(plain.error().code, expected) << "cut at " << length;
    }
}

TEST_P(DecompressFixture, DecodesConcatenatedStreams)
{
    auto plain = decompress(compressed_ + compressed_);
    ASSERT_TRUE(plain.has_value()) << plain.error().message;
    EXPECT_EQ(*plain, plain_ + plain_);
}

TEST_P(DecompressFixture, AcceptsAnImageOfExactlyTheLimit)
{
    auto plain = decompress_bounded(compressed_, plain_.size());
    ASSERT_TRUE(plain.has_value()) << plain.error().message;
    EXPECT_EQ(*plain, plain_);
}

TEST_P(DecompressFixture, StopsWhenTheImageWouldExceedTheLimit)
{
    auto plain = decompress_bounded(compressed_, plain_.size() - 1);
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.error().code, ENOMEM);
}

TEST_P(DecompressFixture, SurvivesCorruptedStreams)
{
    std::mt19937 random(1234);
    std::string mutated = compressed_;
    int failures = 0;
    for (int round = 0; round < 1500; ++round) {
        size_t pos = random() % mutated.size();
        auto bit = static_cast<char>(1 << (random() % 8));
        mutated[pos] = static_cast<char>(mutated[pos] ^ bit);
        auto plain = decompress(mutated);
        if (!plain)
            ++failures;
        mutated[pos] = compressed_[pos];
    }
    // Most flips are caught (xz and gzip check a CRC); none crashes or hangs.
    EXPECT_GT(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(Codecs, DecompressFixture,
                         ::testing::Values(Codec{"xz", Compression::Xz},
                                           Codec{"zst", Compression::Zstd},
                                           Codec{"gz", Compression::Gzip}),
                         [](const ::testing::TestParamInfo<Codec>& param) {
                             return std::string(param.param.suffix);
                         });

TEST(DetectCompression, ReadsOnlyTheMagicBytes)
{
    using namespace std::string_view_literals;
    EXPECT_EQ(detect_compression("\x28\xb5\x2f\xfd"sv), Compression::Zstd);
    EXPECT_EQ(detect_compression("\xfd"
                                 "7zXZ\0rest"sv),
              Compression::Xz);
    EXPECT_EQ(detect_compression("\x1f\x8b"sv), Compression::Gzip);
    EXPECT_EQ(detect_compression("\xfd"
                                 "7zXZ"sv),
              Compression::None); // magic cut short
    EXPECT_EQ(detect_compression("\x7f"
                                 "ELF\x02\x01"sv),
              Compression::None);
    EXPECT_EQ(detect_compression(""sv), Compression::None);
}

TEST(Decompress, RejectsInputThatIsNotCompressed)
{
    auto plain = decompress(read_bytes(fixture_path("sample-le64.ko")));
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.error().code, EINVAL);
}

TEST(Decompress, IgnoresDataAfterTheLastGzipMemberAsGzreadDoes)
{
    std::string path = fixture_path("sample-le64.ko.gz");
    if (::access(path.c_str(), R_OK) != 0)
        GTEST_SKIP() << "gzip is not installed";
    auto plain = decompress(read_bytes(path) + "trailing garbage");
    ASSERT_TRUE(plain.has_value()) << plain.error().message;
    EXPECT_EQ(*plain, read_bytes(fixture_path("sample-le64.ko")));
}

TEST(Decompress, RejectsDataAfterAnXzStream)
{
    std::string path = fixture_path("sample-le64.ko.xz");
    if (::access(path.c_str(), R_OK) != 0)
        GTEST_SKIP() << "xz is not installed";
    auto plain = decompress(read_bytes(path) + "trailing garbage");
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.error().code, EBADMSG);
}

TEST(Decompress, RejectsDataAfterAZstdFrame)
{
    std::string path = fixture_path("sample-le64.ko.zst");
    if (::access(path.c_str(), R_OK) != 0)
        GTEST_SKIP() << "zstd is not installed";
    auto plain = decompress(read_bytes(path) + "trailing garbage");
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.error().code, EBADMSG);
}

} // namespace
} // namespace kmodd::elf
