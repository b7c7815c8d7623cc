// SPDX-License-Identifier: LGPL-2.1-or-later
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

/// Quotes a user-controlled name for a message: 'name'.
[[nodiscard]] std::string quoted(std::string_view name);

} // namespace kmodd::base
