// SPDX-License-Identifier: LGPL-2.1-or-later
// Which kmod release's output depmod reproduces, and how it is chosen for a system.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace kmodd::depmod {

/// The kmod release whose depmod output is written byte for byte. Releases differ in what
/// the files hold, not in what they mean (libkmod of every release reads either):
/// - kmod 33 added modules.weakdep (from the modules' `weakdep` modinfo): eleven files;
/// - kmod 34 writes the binary indexes' trie nodes parent-first (the root right after the
///   header); earlier releases write children first (the root last).
struct KmodFormat {
    static constexpr unsigned kOldest = 30; ///< the oldest release reproduced
    static constexpr unsigned kNewest = 34; ///< the newest release whose changes are known

    unsigned version = kNewest; ///< kmod's major version

    [[nodiscard]] bool writes_weakdep() const { return version >= 33; }
    [[nodiscard]] bool is_parent_first() const { return version >= 34; }
    friend bool operator==(KmodFormat, KmodFormat) = default;
};

/// Parses a release as a user writes it ("30", "34", "34.2") or as `kmod --version` prints
/// it ("kmod version 34.2"). Errors (EINVAL): no number, or a release older than kOldest.
[[nodiscard]] base::Result<KmodFormat> parse_kmod_format(std::string_view text);

/// The format of the index files already in `module_dir`, for a system without the kmod
/// tool: parent-first when modules.dep.bin has nodes and its root follows the header;
/// kmod 33 when the root is last and modules.weakdep exists; kmod 30 otherwise. nullopt when
/// there is no non-empty, well-formed modules.dep.bin.
[[nodiscard]] std::optional<KmodFormat> format_of_index_files(const std::string& module_dir);

/// The format to write, and a phrase saying why (for logs and `--verbose`).
struct ChosenFormat {
    KmodFormat format;
    std::string reason;
};

/// Chooses, in this order: `forced` (from --kmod-format); the release `kmod --version`
/// printed (`kmod_version_output`, nullopt when kmod is not installed; older releases count
/// as kOldest); the layout of the index files in `module_dir`; kNewest.
[[nodiscard]] ChosenFormat choose_kmod_format(std::optional<KmodFormat> forced,
                                              const std::optional<std::string>& kmod_version_output,
                                              const std::string& module_dir);

} // namespace kmodd::depmod
