// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include "elf/module_info.hpp"

namespace kmodd::elf {
namespace {

ModuleInfo info_with(std::vector<ModinfoEntry> modinfo)
{
    ModuleInfo info;
    info.modinfo = std::move(modinfo);
    return info;
}

TEST(ModuleInfoValues, ReturnsEveryValueOfAKeyInSectionOrder)
{
    ModuleInfo info = info_with({{"alias", "pci:v1"}, {"license", "GPL"}, {"alias", "fs-x"}});
    EXPECT_EQ(info.values("alias"), (std::vector<std::string_view>{"pci:v1", "fs-x"}));
}

TEST(ModuleInfoValues, IsEmptyForAKeyThatIsAbsent)
{
    ModuleInfo info = info_with({{"license", "GPL"}});
    EXPECT_TRUE(info.values("alias").empty());
}

TEST(ModuleInfoValues, MatchesWholeKeysOnly)
{
    ModuleInfo info = info_with({{"aliases", "a"}, {"alia", "b"}, {"alias", "c"}});
    EXPECT_EQ(info.values("alias"), (std::vector<std::string_view>{"c"}));
}

TEST(ModuleInfoValues, KeepsEmptyValues)
{
    ModuleInfo info = info_with({{"intree", ""}, {"intree", "Y"}});
    EXPECT_EQ(info.values("intree"), (std::vector<std::string_view>{"", "Y"}));
}

} // namespace
} // namespace kmodd::elf
