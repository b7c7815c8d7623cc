// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

TEST(SymbolVersions, ModversionsAreTheVersionsRecordsInOrderAndExportsCarryTheirCrcs)
{
    for (const char* name : {"sample-le64.ko", "sample-le32.ko", "sample-be64.ko"}) {
        if (std::string_view(name) == "sample-be64.ko" && !KMODD_ELF_HAVE_S390X)
            continue; // the big-endian fixture needs the s390x cross compiler
        const std::string image = test::read_bytes(test::fixture_path(name));
        auto records = read_modversions(image);
        ASSERT_TRUE(records) << name << ": " << records.error().message;
        std::vector<std::string> seen;
        for (const auto& record : *records)
            seen.push_back(std::to_string(record.crc) + " " + record.name);
        EXPECT_EQ(seen, (std::vector<std::string>{"286331153 module_layout", "572662306 mod1_fn",
                                                  "858993459 maybe_fn", "1145324612 mod1_fn"}))
            << name << ": every record, duplicates too, in section order";
        auto exports = read_exported_symbols(image);
        ASSERT_TRUE(exports) << name;
        ASSERT_EQ(exports->size(), 4U) << name;
        EXPECT_EQ((*exports)[0].name, "sample_read");
        EXPECT_EQ((*exports)[0].crc, 0x1234abcdU);
    }
    const std::string bare = test::read_bytes(test::fixture_path("bare-le64.ko"));
    EXPECT_EQ(read_modversions(bare).error().code, ENOENT) << "no __versions section";
    EXPECT_EQ(read_exported_symbols(bare).error().code, ENOENT) << "nothing exported";
    EXPECT_EQ(read_modversions("plain text, no ELF").error().code, ENOEXEC);
}

} // namespace
} // namespace kmodd::elf
