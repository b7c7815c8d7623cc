// SPDX-License-Identifier: LGPL-2.1-or-later
// Small string helpers shared by every library: splitting, trimming, joining, quoting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kmodd::base {

/// Splits on any of `separators`, dropping empty pieces (strtok semantics).
[[nodiscard]] std::vector<std::string_view> split_tokens(std::string_view text,
                                                         std::string_view separators = " \t");

/// Splits into lines on '\n'. A last line without '\n' is returned too.
[[nodiscard]] std::vector<std::string_view> split_lines(std::string_view text);

/// Removes leading and trailing blanks (space, tab, CR, LF).
[[nodiscard]] std::string_view trim(std::string_view text);

/// The pieces one after the other, `separator` between each two: join({"a", "b"}, ", ") is
/// "a, b".
[[nodiscard]] std::string join(const std::vector<std::string>& pieces, std::string_view separator);

/// Quotes a user-controlled name for a message: 'name'.
[[nodiscard]] std::string quoted(std::string_view name);

} // namespace kmodd::base
