// SPDX-License-Identifier: LGPL-2.1-or-later
// Small string helpers shared by every library.
#include "base/strings.hpp"

namespace kmodd::base {

std::vector<std::string_view> split_tokens(std::string_view text, std::string_view separators)
{
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t start = text.find_first_not_of(separators, pos);
        if (start == std::string_view::npos)
            break;
        size_t end = text.find_first_of(separators, start);
        if (end == std::string_view::npos)
            end = text.size();
        out.push_back(text.substr(start, end - start));
        pos = end;
    }
    return out;
}

std::vector<std::string_view> split_lines(std::string_view text)
{
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            out.push_back(text.substr(pos));
            break;
        }
        out.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

std::string_view trim(std::string_view text)
{
    constexpr std::string_view blanks = " \t\r\n";
    size_t start = text.find_first_not_of(blanks);
    if (start == std::string_view::npos)
        return {};
    size_t end = text.find_last_not_of(blanks);
    return text.substr(start, end - start + 1);
}

std::string join(const std::vector<std::string>& pieces, std::string_view separator)
{
    std::string out;
    for (size_t i = 0; i < pieces.size(); ++i) {
        if (i > 0)
            out += separator;
        out += pieces[i];
    }
    return out;
}

std::string quoted(std::string_view name)
{
    std::string out;
    out.reserve(name.size() + 2);
    out += '\'';
    out += name;
    out += '\'';
    return out;
}

} // namespace kmodd::base
