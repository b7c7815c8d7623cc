// SPDX-License-Identifier: LGPL-2.1-or-later
// Module names from paths and aliases made canonical, as kmod makes them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kmodd::index {

/// kmod's module name of a file path: the basename up to its first '.', with '-' made '_'.
/// Empty when the basename is empty.
[[nodiscard]] std::string modname_from_path(std::string_view path);

/// A module name with '-' made '_' (kmod compares names this way).
[[nodiscard]] std::string normalize_modname(std::string_view name);

/// kmod's alias normalisation: '-' becomes '_' except inside [...] ranges. nullopt when a
/// bracket is unmatched (kmod then skips the alias with a warning).
[[nodiscard]] std::optional<std::string> normalize_alias(std::string_view alias);

/// False when normalize_alias() gives `alias` back unchanged for certain: it holds none of '-',
/// '[', ']' and NUL (most aliases), so a caller may take it as it is without a copy.
[[nodiscard]] bool alias_needs_normalizing(std::string_view alias);

/// True for names kmod's depmod treats as modules: ending in .ko, .ko.xz, .ko.zst or .ko.gz
/// with something before the suffix.
[[nodiscard]] bool has_module_extension(std::string_view filename);

/// Length of the module suffix of `filename` (".ko.xz" -> 6), 0 when it has none.
[[nodiscard]] size_t module_extension_length(std::string_view filename);

} // namespace kmodd::index
