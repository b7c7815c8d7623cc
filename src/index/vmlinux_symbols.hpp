// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel image's own exported symbols, for depmod -F and -E.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "index/diagnostic.hpp"

namespace kmodd::index {

/// A symbol the kernel image itself exports (owner "vmlinux"): imports of it add no edge.
struct VmlinuxSymbol {
    std::string name;
    uint64_t crc = 0;
};

/// Parses Module.symvers text (`0xCRC<ws>symbol<ws>vmlinux<ws>...`): only lines whose third
/// field is exactly "vmlinux" count; a bad CRC is reported with file:line and skipped.
/// A leading `symbol_prefix` character is stripped from names (depmod -P).
[[nodiscard]] std::vector<VmlinuxSymbol> parse_module_symvers(std::string_view text,
                                                              std::string_view filename,
                                                              char symbol_prefix,
                                                              Diagnostics& diagnostics);

/// Parses System.map text (`addr type __ksymtab_name`): every `__ksymtab_` entry, after an
/// optional `symbol_prefix` character, names an exported symbol (crc 0).
[[nodiscard]] std::vector<VmlinuxSymbol> parse_system_map(std::string_view text,
                                                          std::string_view filename,
                                                          char symbol_prefix,
                                                          Diagnostics& diagnostics);

/// The symbols the module loader provides itself (__this_module, _GLOBAL_OFFSET_TABLE_,
/// TOC.): depmod adds them whenever a symbol source (-E or -F) is given.
void add_loader_symbols(std::vector<VmlinuxSymbol>& symbols);

} // namespace kmodd::index
