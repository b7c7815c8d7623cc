// SPDX-License-Identifier: LGPL-2.1-or-later
// Module parameters given on a command line, joined into the one string the kernel parses.
#pragma once

#include <span>
#include <string>

namespace kmodd::loader {

/// The parameters as one string for init_module: separated by spaces, as kmod's modprobe joins
/// its command line (options_from_array), with a value that holds white space put in double
/// quotes unless it starts with a quote of its own. kmod quotes only on a space; the kernel's
/// parser (next_arg, isspace) also splits on tab, newline, vertical tab, form feed and
/// carriage return, so those are quoted too and the module gets the value as typed.
[[nodiscard]] std::string join_parameters(std::span<const std::string> parameters);

} // namespace kmodd::loader
