// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "index/diagnostic.hpp"
#include "index/module_index.hpp"

namespace kmodd::depmod {

/// One file depmod writes, with its content.
struct OutputFile {
    std::string name;
    std::string content;
    bool is_binary = false;
};

/// The kernel's own lists of built-in modules, read from the module dir; nullopt when the
/// file is missing (kmod then warns and publishes an empty index).
struct BuiltinInputs {
    std::optional<std::string> modules_builtin;        ///< modules.builtin
    std::optional<std::string> modules_builtin_modinfo; ///< modules.builtin.modinfo
};

/// Produces the ten files kmod 30's depmod writes, in its order: modules.dep, .dep.bin,
/// .alias, .alias.bin, .softdep, .symbols, .symbols.bin, .builtin.bin, .builtin.alias.bin,
/// .devname. Problems with single entries (an unmatched bracket in an alias, a devname
/// without major/minor, a non-ASCII string) are reported and the entry is left out.
/// `warn_dups` reports (key, value) pairs inserted twice into an index (depmod -w).
[[nodiscard]] std::vector<OutputFile> make_outputs(const index::Resolution& resolution,
                                                   const BuiltinInputs& builtin, bool warn_dups,
                                                   index::Diagnostics& diagnostics);

} // namespace kmodd::depmod
