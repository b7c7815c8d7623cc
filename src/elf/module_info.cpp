// SPDX-License-Identifier: LGPL-2.1-or-later
// ModuleInfo's .modinfo lookups.
#include "elf/module_info.hpp"

namespace kmodd::elf {

std::vector<std::string_view> ModuleInfo::values(std::string_view key) const
{
    std::vector<std::string_view> found;
    for (const ModinfoEntry& entry : modinfo) {
        if (entry.key == key)
            found.emplace_back(entry.value);
    }
    return found;
}

} // namespace kmodd::elf
