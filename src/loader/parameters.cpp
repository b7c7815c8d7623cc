// SPDX-License-Identifier: LGPL-2.1-or-later
// Joining command-line module parameters the way the kernel's parameter parser reads them.
#include "loader/parameters.hpp"

#include <string_view>

namespace kmodd::loader {

namespace {

/// What the kernel's isspace() takes for a separator between parameters.
constexpr std::string_view kKernelBlanks = " \t\n\v\f\r";

} // namespace

std::string join_parameters(std::span<const std::string> parameters)
{
    std::string out;
    for (const std::string& parameter : parameters) {
        if (!out.empty())
            out += ' ';
        size_t eq = parameter.find('=');
        std::string_view value = eq == std::string::npos
                                     ? std::string_view()
                                     : std::string_view(parameter).substr(eq + 1);
        bool is_quoted = !value.empty() && (value.front() == '"' || value.front() == '\'');
        if (eq == std::string::npos || is_quoted ||
            value.find_first_of(kKernelBlanks) == std::string_view::npos) {
            out += parameter;
            continue;
        }
        out.append(parameter, 0, eq + 1);
        out += '"';
        out += value;
        out += '"';
    }
    return out;
}

} // namespace kmodd::loader
