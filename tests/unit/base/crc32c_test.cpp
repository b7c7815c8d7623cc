// SPDX-License-Identifier: LGPL-2.1-or-later
// CRC-32C: the published check value, and the instruction and the tables agreeing on every
// length and split.
#include "base/crc32c.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace kmodd::base {
namespace {

TEST(Crc32c, GivesThePublishedCheckValues)
{
    EXPECT_EQ(crc32c(0, "123456789"), 0xE3069283U);
    EXPECT_EQ(crc32c_by_tables(0, "123456789"), 0xE3069283U);
    EXPECT_EQ(crc32c(0, ""), 0U);
    // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, and of 0xFF.
    EXPECT_EQ(crc32c(0, std::string(32, '\0')), 0x8A9136AAU);
    EXPECT_EQ(crc32c_by_tables(0, std::string(32, '\xFF')), 0x62A8AB43U);
}

TEST(Crc32c, TheInstructionAndTheTablesAgreeOnEveryLengthAndSplit)
{
    std::mt19937 random(3);
    std::string bytes(300, '\0');
    for (char& c : bytes)
        c = static_cast<char>(random());
    for (size_t size = 0; size <= bytes.size(); ++size) {
        const std::string_view whole = std::string_view(bytes).substr(0, size);
        const uint32_t expected = crc32c_by_tables(0, whole);
        ASSERT_EQ(crc32c(0, whole), expected) << size << " bytes";
        // Carried on over two parts: the CRC of the whole.
        const size_t split = size / 3;
        ASSERT_EQ(crc32c(crc32c(0, whole.substr(0, split)), whole.substr(split)), expected);
        ASSERT_EQ(
            crc32c_by_tables(crc32c_by_tables(0, whole.substr(0, split)), whole.substr(split)),
            expected);
    }
}

TEST(Crc32c, LongRunsCarriedInThreeLanesGiveTheSameCrc)
{
    // Runs of 24 KiB and more are carried in three lanes of 8 KiB side by side and joined:
    // every length around those steps, from any starting CRC, gives what the tables give.
    std::mt19937 random(5);
    std::string bytes(3 * 3 * 8192 + 64, '\0');
    for (char& c : bytes)
        c = static_cast<char>(random());
    for (size_t size :
         {size_t{3 * 8192 - 1}, size_t{3 * 8192}, size_t{3 * 8192 + 1}, size_t{3 * 8192 + 8},
          size_t{6 * 8192 - 7}, size_t{6 * 8192}, size_t{9 * 8192 + 63}, bytes.size()}) {
        const std::string_view whole = std::string_view(bytes).substr(0, size);
        for (uint32_t start : {0U, 0xFFFFFFFFU, 0x1234ABCDU}) {
            const uint32_t expected = crc32c_by_tables(start, whole);
            ASSERT_EQ(crc32c(start, whole), expected) << size << " bytes from " << start;
            const size_t split = size / 2 + 3;
            ASSERT_EQ(crc32c(crc32c(start, whole.substr(0, split)), whole.substr(split)), expected)
                << size << " bytes in two from " << start;
        }
    }
}

} // namespace
} // namespace kmodd::base
