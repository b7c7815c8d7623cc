// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <string>

#include "elf/image_buffer.hpp"

namespace kmodd::elf {
namespace {

/// Fills `buffer` from `from` on with a pattern that shows where each byte was written.
void fill(ImageBuffer& buffer, size_t from)
{
    for (size_t i = from; i < buffer.size(); ++i)
        buffer.data()[i] = static_cast<char>(i * 7 + 3);
}

bool holds_pattern(const ImageBuffer& buffer, size_t up_to)
{
    for (size_t i = 0; i < up_to; ++i) {
        if (buffer.view()[i] != static_cast<char>(i * 7 + 3))
            return false;
    }
    return true;
}

TEST(ImageBuffer, SmallImagesStayOnTheHeapAndLargeOnesAreMappedOfTheirOwn)
{
    ImageBuffer buffer;
    ASSERT_TRUE(buffer.resize(4096));
    EXPECT_FALSE(buffer.is_mapped());
    ASSERT_TRUE(buffer.resize(ImageBuffer::kMapThreshold + 1));
    EXPECT_TRUE(buffer.is_mapped());
}

TEST(ImageBuffer, GrowingKeepsTheBytesFromTheHeapToMappedMemoryAndBeyond)
{
    ImageBuffer buffer;
    ASSERT_TRUE(buffer.resize(1000));
    fill(buffer, 0);
    size_t filled = 1000;
    const size_t threshold = ImageBuffer::kMapThreshold;
    for (size_t size : {size_t{300000}, threshold * 3, threshold * 9}) {
        ASSERT_TRUE(buffer.resize(size));
        ASSERT_EQ(buffer.size(), size);
        EXPECT_TRUE(holds_pattern(buffer, filled)) << "after growing to " << size;
        fill(buffer, filled);
        filled = size;
    }
    ASSERT_TRUE(buffer.resize(10));
    EXPECT_EQ(buffer.size(), 10U);
    EXPECT_TRUE(holds_pattern(buffer, 10));
}

TEST(ImageBuffer, AMovedBufferOwnsTheBytesAndTheSourceIsEmpty)
{
    ImageBuffer source;
    ASSERT_TRUE(source.resize(ImageBuffer::kMapThreshold * 2));
    fill(source, 0);
    ImageBuffer target = std::move(source);
    EXPECT_EQ(source.size(), 0U); // NOLINT(bugprone-use-after-move): the contract under test
    EXPECT_EQ(target.size(), ImageBuffer::kMapThreshold * 2);
    EXPECT_TRUE(holds_pattern(target, target.size()));
    ImageBuffer other;
    ASSERT_TRUE(other.resize(16));
    other = std::move(target);
    EXPECT_TRUE(other.is_mapped());
    EXPECT_TRUE(holds_pattern(other, other.size()));
}

} // namespace
} // namespace kmodd::elf
