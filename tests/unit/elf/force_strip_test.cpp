// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "elf/force_strip.hpp"
#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

/// readelf's flags column of section `name` ("A" when allocated), or "" when it has none.
std::string section_flags(const std::string& path, const std::string& name)
{
    // "[ 6] __versions PROGBITS addr off size es [flags] lk inf al": flags only when set.
    return test::run_command("readelf -S -W '" + path + "' | sed 's/^ *\\[ *[0-9]*\\] *//' | " +
                             "awk '$1 == \"" + name + "\" { print (NF == 10 ? $7 : \"\") }'");
}

class ForceStripTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override
    {
        // The big-endian fixture needs the s390x cross compiler (Debian 12's set-up has it).
        if (std::string_view(GetParam()) == "sample-be64.ko" && !KMODD_ELF_HAVE_S390X)
            GTEST_SKIP() << "no s390x-linux-gnu-gcc: no big-endian fixture";
    }
};

TEST_P(ForceStripTest, BothChecksAreDisarmedAndNothingElseChanges)
{
    const std::string original = test::read_bytes(test::fixture_path(GetParam()));
    ASSERT_EQ(section_flags(test::fixture_path(GetParam()), "__versions"), "A\n");

    auto stripped = strip_for_force(original, true, true);
    ASSERT_TRUE(stripped) << stripped.error().message;
    ASSERT_EQ(stripped->size(), original.size());
    const std::string path = ::testing::TempDir() + "stripped-" + GetParam();
    test::write_bytes(path, *stripped);
    EXPECT_EQ(section_flags(path, "__versions"), "\n") << "__versions must lose SHF_ALLOC";
    EXPECT_EQ(section_flags(path, ".modinfo"), "A\n") << "other sections keep their flags";

    auto before = parse_module(original);
    auto after = parse_module(*stripped);
    ASSERT_TRUE(before && after);
    EXPECT_EQ(before->values("vermagic").size(), 1U);
    EXPECT_TRUE(after->values("vermagic").empty()) << "the vermagic string is zeroed";
    EXPECT_EQ(after->values("license"), before->values("license"));
    EXPECT_EQ(after->exports.size(), before->exports.size());

    // Exactly the vermagic string's bytes and one byte of a flags field differ.
    size_t changed = 0;
    for (size_t i = 0; i < original.size(); ++i)
        changed += original[i] != (*stripped)[i] ? 1 : 0;
    const size_t vermagic = std::string("vermagic=").size() + before->values("vermagic")[0].size();
    EXPECT_EQ(changed, vermagic + 1);
}

TEST_P(ForceStripTest, EachCheckAloneLeavesTheOtherInPlace)
{
    const std::string original = test::read_bytes(test::fixture_path(GetParam()));
    auto versions_only = strip_for_force(original, false, true);
    ASSERT_TRUE(versions_only);
    auto parsed = parse_module(*versions_only);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->values("vermagic").size(), 1U);

    auto vermagic_only = strip_for_force(original, true, false);
    ASSERT_TRUE(vermagic_only);
    const std::string path = ::testing::TempDir() + "vermagic-only-" + GetParam();
    test::write_bytes(path, *vermagic_only);
    EXPECT_EQ(section_flags(path, "__versions"), "A\n");

    auto nothing = strip_for_force(original, false, false);
    ASSERT_TRUE(nothing);
    EXPECT_EQ(*nothing, original);
}

INSTANTIATE_TEST_SUITE_P(EveryClassAndByteOrder, ForceStripTest,
                         ::testing::Values("sample-le64.ko", "sample-le32.ko", "sample-be64.ko"));

TEST(ForceStrip, ImagesThatAreNotElfOrLieAboutTheirSectionsAreRefused)
{
    EXPECT_EQ(strip_for_force("not an elf file at all, just text padding it out to 64 bytes....",
                              true, true)
                  .error()
                  .code,
              ENOEXEC);
    std::string image = test::read_bytes(test::fixture_path("sample-le64.ko"));
    image[0x3C] = static_cast<char>(0xFF); // e_shnum: 255 headers do not fit
    image[0x3D] = 0x00;
    auto lying = strip_for_force(image, true, true);
    ASSERT_FALSE(lying);
    EXPECT_EQ(lying.error().code, ENOEXEC);
    EXPECT_FALSE(strip_for_force(image.substr(0, 20), true, true));
}

} // namespace
} // namespace kmodd::elf
