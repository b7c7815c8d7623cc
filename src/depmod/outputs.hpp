// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
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
///
/// What depends on one module only (its lines of modules.alias, its alias keys, ...) is kept
/// between builds, keyed by the parsed module, and the sorted alias index is updated rather
/// than rebuilt: after one module changes, a build costs little more than writing the bytes.
class OutputBuilder {
public:
    /// `warn_dups` reports (key, value) pairs inserted twice into an index (depmod -w).
    [[nodiscard]] std::vector<OutputFile> build(const index::Resolution& resolution,
                                                const BuiltinInputs& builtin, bool warn_dups,
                                                index::Diagnostics& diagnostics);

private:
    /// What one module contributes, computed once per parsed file.
    struct Fragment {
        std::shared_ptr<const index::ParsedModule> parsed; ///< keeps the cache key alive
        std::string alias_lines;   ///< its lines of modules.alias
        std::string softdep_lines; ///< its lines of modules.softdep
        std::string devname_line;  ///< its line of modules.devname, if any
        std::vector<std::string> alias_keys; ///< normalised aliases, .modinfo order
        index::Diagnostics notes;  ///< unmatched brackets in its aliases
        std::optional<index::Diagnostic> devname_note; ///< a devname without major:minor
        uint32_t position = 0;     ///< in the current build
        uint64_t build = 0;        ///< last build that used it
    };
    struct AliasEntry {
        std::string_view key;
        const Fragment* fragment;
        uint32_t ordinal; ///< index in the module's alias_keys
    };

    Fragment make_fragment(const index::Candidate& file) const;
    void update_alias_entries(const std::vector<const Fragment*>& added, bool removed_any);

    std::unordered_map<const index::ParsedModule*, Fragment> fragments_;
    std::vector<AliasEntry> alias_entries_; ///< sorted as the alias index stores them
    uint64_t build_ = 0;
    size_t dep_bytes_hint_ = 4096; ///< modules.dep grows little between builds
};

} // namespace kmodd::depmod
