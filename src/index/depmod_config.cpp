// SPDX-License-Identifier: LGPL-2.1-or-later
// Parsing depmod.d: search, override, exclude and external.
#include "index/depmod_config.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "base/file.hpp"
#include "base/strings.hpp"

namespace kmodd::index {

namespace {

/// Whether compiling `pattern` stays cheap. glibc's regcomp() copies the expression under a
/// duplication operator ('*', '+', '?', "{m,n}") once per repetition it needs, so nested or
/// adjacent ones multiply: "a+++...+" with 30 '+' took gigabytes. Bounds the product of their
/// factors (2 for '*', '+', '?'; the larger bound plus one for an interval), which a kernel
/// version pattern never comes near ("6\.1\..*-amd64": 2). POSIX leaves adjacent duplication
/// symbols undefined anyway.
bool is_cheap_to_compile(std::string_view pattern)
{
    constexpr uint64_t kMaxProduct = 1024;
    uint64_t product = 1;
    bool in_bracket = false;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\') {
            ++i; // an escaped character is a literal
            continue;
        }
        if (in_bracket) {
            in_bracket = c != ']';
            continue;
        }
        uint64_t factor = 1;
        if (c == '[') {
            in_bracket = true;
            // A ']' right after '[' or "[^" is a member, not the end.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^')
                ++i;
            if (i + 1 < pattern.size() && pattern[i + 1] == ']')
                ++i;
        } else if (c == '*' || c == '+' || c == '?') {
            factor = 2;
        } else if (c == '{') {
            uint64_t bound = 0;
            for (size_t j = i + 1; j < pattern.size() && pattern[j] != '}'; ++j) {
                if (pattern[j] >= '0' && pattern[j] <= '9')
                    bound = std::min<uint64_t>(bound * 10 + static_cast<uint64_t>(pattern[j] - '0'),
                                               kMaxProduct);
                else
                    bound = 0; // a new number after ','; the larger one is kept below
                factor = std::max(factor, bound + 1);
            }
        }
        product *= factor;
        if (product > kMaxProduct)
            return false;
    }
    return true;
}

bool kernel_matches(const std::string& pattern, const std::string& kernel_version)
{
    if (pattern == "*")
        return true;
    regex_t re;
    if (::regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    int status = ::regexec(&re, kernel_version.c_str(), 0, nullptr, 0);
    ::regfree(&re);
    return status == 0;
}

/// Splits config text into logical lines: a backslash-newline joins lines, a backslash
/// before any other character is dropped (kmod's freadline_wrapped). Returns the lines with
/// the number of the physical line each ends on.
std::vector<std::pair<std::string, unsigned>> logical_lines(std::string_view text)
{
    std::vector<std::pair<std::string, unsigned>> out;
    std::string line;
    unsigned linenum = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n') {
            ++linenum;
            out.emplace_back(std::move(line), linenum);
            line.clear();
        } else if (c == '\\' && i + 1 < text.size()) {
            ++i;
            if (text[i] == '\n')
                ++linenum;
            else
                line += text[i];
        } else if (c != '\\') {
            line += c;
        }
    }
    if (!line.empty())
        out.emplace_back(std::move(line), linenum + 1);
    return out;
}

} // namespace

std::vector<std::string> DepmodConfig::default_paths()
{
    return {"/etc/depmod.d", "/run/depmod.d", "/usr/local/lib/depmod.d", "/lib/depmod.d"};
}

void DepmodConfig::parse(std::string_view text, std::string_view filename,
                         const std::string& kernel_version, Diagnostics& diagnostics)
{
    auto where = [&](unsigned linenum) {
        return std::string(filename) + ":" + std::to_string(linenum);
    };
    // A version pattern regcomp() could need too much memory for is refused, saying so.
    auto is_cheap_pattern = [&](std::string_view pattern, unsigned linenum) {
        if (is_cheap_to_compile(pattern))
            return true;
        diagnostics.push_back({Diagnostic::Level::Warning,
                               where(linenum) + ": ignoring the line: its kernel version pattern " +
                                   "repeats too much to compile safely"});
        return false;
    };
    for (auto& [line, linenum] : logical_lines(text)) {
        if (line.empty() || line[0] == '#')
            continue;
        auto tokens = base::split_tokens(line, "\t ");
        if (tokens.empty())
            continue;
        std::string_view cmd = tokens[0];
        if (cmd == "search") {
            for (size_t i = 1; i < tokens.size(); ++i) {
                Search s;
                if (tokens[i] == "built-in")
                    s.kind = Search::Kind::BuiltIn;
                else if (tokens[i] == "external")
                    s.kind = Search::Kind::External;
                else
                    s.path = std::string(tokens[i]);
                searches.insert(searches.begin(), std::move(s));
            }
        } else if (cmd == "override" && tokens.size() >= 4) {
            if (!is_cheap_pattern(tokens[2], linenum))
                continue;
            if (!kernel_matches(std::string(tokens[2]), kernel_version)) {
                diagnostics.push_back(
                    {Diagnostic::Level::Info,
                     where(linenum) + ": override kernel did not match " + std::string(tokens[2])});
                continue;
            }
            overrides.insert(overrides.begin(),
                             std::string(tokens[3]) + "/" + std::string(tokens[1]));
        } else if (cmd == "external" && tokens.size() >= 3) {
            if (!is_cheap_pattern(tokens[1], linenum))
                continue;
            if (!kernel_matches(std::string(tokens[1]), kernel_version)) {
                diagnostics.push_back({Diagnostic::Level::Info,
                                       where(linenum) + ": external directory did not match " +
                                           std::string(tokens[1])});
                continue;
            }
            externals.insert(externals.begin(), std::string(tokens[2]));
        } else if (cmd == "exclude") {
            for (size_t i = 1; i < tokens.size(); ++i)
                excludes.insert(excludes.begin(), std::string(tokens[i]));
        } else if (cmd == "include" || cmd == "make_map_files") {
            diagnostics.push_back(
                {Diagnostic::Level::Info,
                 where(linenum) + ": command " + std::string(cmd) + " not implemented yet"});
        } else {
            diagnostics.push_back(
                {Diagnostic::Level::Error,
                 where(linenum) + ": ignoring bad line starting with '" + std::string(cmd) + "'"});
        }
    }
}

void DepmodConfig::finish()
{
    if (searches.empty())
        searches.push_back(Search{Search::Kind::Path, "updates"});
}

DepmodConfig DepmodConfig::load(const std::vector<std::string>& paths,
                                const std::string& kernel_version, Diagnostics& diagnostics)
{
    // basename -> full path; the first directory listing a basename keeps it.
    std::map<std::string, std::string> files;
    for (const std::string& path : paths) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            size_t slash = path.rfind('/');
            files.emplace(slash == std::string::npos ? path : path.substr(slash + 1), path);
            continue;
        }
        DIR* dir = ::opendir(path.c_str());
        if (dir == nullptr) {
            diagnostics.push_back({Diagnostic::Level::Error, "cannot list '" + path + "'"});
            continue;
        }
        while (const dirent* entry = ::readdir(dir)) {
            std::string_view name = entry->d_name;
            if (name.empty() || name[0] == '.')
                continue;
            if (name.size() < 6 || !name.ends_with(".conf")) {
                diagnostics.push_back(
                    {Diagnostic::Level::Info,
                     "All cfg files need .conf: " + path + "/" + std::string(name)});
                continue;
            }
            struct stat est {};
            if (::fstatat(::dirfd(dir), entry->d_name, &est, 0) == 0 && S_ISDIR(est.st_mode)) {
                diagnostics.push_back({Diagnostic::Level::Error,
                                       "Directories inside directories are not supported: " + path +
                                           "/" + std::string(name)});
                continue;
            }
            files.emplace(std::string(name), path + "/" + std::string(name));
        }
        ::closedir(dir);
    }

    DepmodConfig config;
    for (const auto& [name, file] : files) {
        auto text = base::read_file(AT_FDCWD, file);
        if (!text) {
            diagnostics.push_back({Diagnostic::Level::Error, "file parse " + text.error().message});
            continue;
        }
        config.parse(*text, file, kernel_version, diagnostics);
    }
    config.finish();
    return config;
}

} // namespace kmodd::index
