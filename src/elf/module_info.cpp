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

void ModuleInfoView::assign(const ModuleInfo& info)
{
    clear();
    for (const ModinfoEntry& entry : info.modinfo)
        modinfo.push_back({entry.key, entry.value});
    for (const ExportedSymbol& sym : info.exports)
        exports.push_back({sym.name, sym.crc});
    for (const ImportedSymbol& sym : info.imports)
        imports.push_back({sym.name, sym.crc, sym.is_weak});
}

void ModuleInfoView::clear()
{
    modinfo.clear();
    exports.clear();
    imports.clear();
}

} // namespace kmodd::elf
