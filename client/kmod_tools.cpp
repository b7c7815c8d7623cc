// SPDX-License-Identifier: LGPL-2.1-or-later
#include <iterator>

#include "commands.hpp"
#include "kmod_tools.hpp"

namespace kmodd::client {

namespace {

constexpr KmodTool kKmodTools[] = {
    {kKmodToolNames[0], run_depmod}, {kKmodToolNames[1], run_modprobe},
    {kKmodToolNames[2], run_lsmod},  {kKmodToolNames[3], run_insmod},
    {kKmodToolNames[4], run_rmmod},  {kKmodToolNames[5], run_modinfo},
    {kKmodToolNames[6], run_kmod},
};
static_assert(std::size(kKmodTools) == std::size(kKmodToolNames));

} // namespace

const KmodTool* find_kmod_tool(std::string_view name)
{
    for (const KmodTool& tool : kKmodTools) {
        if (tool.name == name)
            return &tool;
    }
    return nullptr;
}

} // namespace kmodd::client
