// SPDX-License-Identifier: LGPL-2.1-or-later
// Digest64: equal bytes give equal digests, and the differences that matter give different ones.
#include "base/digest.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace kmodd::base {
namespace {

TEST(Digest64, EqualBytesGiveEqualDigestsWhateverTheirAlignment)
{
    const std::string text = "kernel/drivers/net/e1000/e1000.ko: kernel/lib/crc32.ko\n";
    const std::string shifted = "x" + text;
    EXPECT_EQ(Digest64::of(text), Digest64::of(std::string_view(shifted).substr(1)));
}

TEST(Digest64, UpdatesAreFramedSoSplitsDiffer)
{
    EXPECT_NE(Digest64().update("ab").update("c").value(),
              Digest64().update("a").update("bc").value());
    EXPECT_NE(Digest64::of(""), Digest64::of(std::string(1, '\0')));
    EXPECT_EQ(Digest64::of(std::string_view()), Digest64::of("")) << "a view with no data";
}

TEST(Digest64, EverySingleBitChangeGivesAnotherDigest)
{
    const std::string base(100, 'a');
    std::set<uint64_t> seen{Digest64::of(base)};
    for (size_t byte = 0; byte < base.size(); ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string changed = base;
            changed[byte] = static_cast<char>(changed[byte] ^ (1 << bit));
            EXPECT_TRUE(seen.insert(Digest64::of(changed)).second) << byte << ":" << bit;
        }
    }
}

TEST(Digest64, AFailedReadDiffersFromAnyContent)
{
    const Result<std::string> empty = std::string();
    const Result<std::string> missing = make_error(ENOENT, "gone");
    const Result<std::string> denied = make_error(EACCES, "denied");
    EXPECT_NE(Digest64::of_read(empty), Digest64::of_read(missing));
    EXPECT_NE(Digest64::of_read(missing), Digest64::of_read(denied));
    EXPECT_EQ(Digest64::of_read(missing), Digest64::of_read(make_error(ENOENT, "other text")));
}

} // namespace
} // namespace kmodd::base
