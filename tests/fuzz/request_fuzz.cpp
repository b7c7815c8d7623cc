// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the checks every D-Bus method applies to its arguments before anything else: module
// names and aliases (loader::is_valid_module_request), kernel releases
// (service::is_kernel_release_name), FindModules patterns (service::check_pattern) and the
// pattern match itself (service::matches_pattern, fnmatch on any glob a caller sends).
//
// Properties: no input crashes; a refused name says why; an accepted name has no blank, no
// control character and no path, and fits kmod's limit; an accepted release is a single
// directory name; the substring match agrees with a plain search on what it folds.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "loader/resolver.hpp"
#include "service/index_service.hpp"
#include "service/module_service.hpp"

using kmodd::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string input(reinterpret_cast<const char*>(data), size);
    // The first NUL (or the whole input) is one argument, what follows it a second one.
    const size_t split = input.find('\0');
    const std::string first = input.substr(0, split);
    const std::string second = split == std::string::npos ? std::string() : input.substr(split + 1);

    std::string why;
    if (kmodd::loader::is_valid_module_request(first, &why)) {
        check(!first.empty() && first.size() <= kmodd::loader::kMaxAliasLength,
              "an accepted name is not empty and fits kmod's limit");
        check(std::none_of(first.begin(), first.end(),
                           [](unsigned char c) { return c <= ' ' || c == 0x7f; }),
              "an accepted name has no blank or control character");
        // A modalias may hold '/' after its "subsystem:" ('dmi:...:bd04/01/2014:'); such a
        // name is only ever a lookup key. What must not pass is a path or a folder name of
        // its own under /sys/module.
        check(!first.starts_with('/') && first != "." && first != "..",
              "an accepted name is no path");
        if (first.find('/') != std::string::npos)
            check(first.find(':') < first.find('/'), "a '/' comes only after a subsystem prefix");
    } else {
        check(!why.empty(), "a refused name says why");
    }

    if (kmodd::service::is_kernel_release_name(first))
        check(!first.empty() && first.size() <= 255 && first.find('/') == std::string::npos &&
                  first != "." && first != "..",
              "an accepted release is one directory name");

    if (auto invalid = kmodd::service::check_pattern(first)) {
        check(invalid->kind == kmodd::service::Failure::InvalidName && !invalid->message.empty(),
              "a refused pattern is InvalidName with a sentence");
        return 0;
    }
    const bool matched = kmodd::service::matches_pattern(first, second, true);
    if (first.find_first_of("*?[") == std::string::npos) {
        auto fold = [](std::string text) {
            for (char& c : text)
                c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return text;
        };
        check(matched == (fold(second).find(fold(first)) != std::string::npos),
              "a text pattern matches where a folded search finds it");
    }
    (void)kmodd::service::matches_pattern(first, second, false);
    return 0;
}
