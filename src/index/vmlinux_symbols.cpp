// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading the kernel's own exported symbols (System.map, Module.symvers).
#include "index/vmlinux_symbols.hpp"

#include <cstdlib>

#include "base/strings.hpp"

namespace kmodd::index {

std::vector<VmlinuxSymbol> parse_module_symvers(std::string_view text, std::string_view filename,
                                                char symbol_prefix, Diagnostics& diagnostics)
{
    std::vector<VmlinuxSymbol> out;
    unsigned linenum = 0;
    for (std::string_view line : base::split_lines(text)) {
        ++linenum;
        auto fields = base::split_tokens(line, " \t");
        if (fields.size() < 3 || fields[2] != "vmlinux")
            continue;
        std::string crc_text(fields[0]);
        char* end = nullptr;
        uint64_t crc = std::strtoull(crc_text.c_str(), &end, 16);
        if (end == nullptr || *end != '\0') {
            diagnostics.push_back(
                {Diagnostic::Level::Error, std::string(filename) + ":" + std::to_string(linenum) +
                                               " Invalid symbol version " + crc_text});
            continue;
        }
        std::string_view name = fields[1];
        if (symbol_prefix != '\0' && !name.empty() && name[0] == symbol_prefix)
            name.remove_prefix(1);
        out.push_back({std::string(name), crc});
    }
    return out;
}

std::vector<VmlinuxSymbol> parse_system_map(std::string_view text, std::string_view filename,
                                            char symbol_prefix, Diagnostics& diagnostics)
{
    static constexpr std::string_view kKsymtab = "__ksymtab_";
    std::vector<VmlinuxSymbol> out;
    unsigned linenum = 0;
    for (std::string_view line : base::split_lines(text)) {
        ++linenum;
        size_t first = line.find(' ');
        size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
        if (second == std::string_view::npos) {
            diagnostics.push_back(
                {Diagnostic::Level::Error, std::string(filename) + ":" + std::to_string(linenum) +
                                               ": invalid line: " + std::string(line)});
            continue;
        }
        std::string_view name = line.substr(second + 1);
        if (!name.empty() && name[0] == symbol_prefix)
            name.remove_prefix(1);
        if (!name.starts_with(kKsymtab))
            continue;
        name.remove_prefix(kKsymtab.size());
        out.push_back({std::string(name), 0});
    }
    return out;
}

void add_loader_symbols(std::vector<VmlinuxSymbol>& symbols)
{
    symbols.push_back({"__this_module", 0});
    symbols.push_back({"_GLOBAL_OFFSET_TABLE_", 0});
    bool has_toc = false;
    for (const auto& s : symbols)
        has_toc = has_toc || s.name == "TOC.";
    if (!has_toc)
        symbols.push_back({"TOC.", 0});
}

} // namespace kmodd::index
