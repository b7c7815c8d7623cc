// SPDX-License-Identifier: LGPL-2.1-or-later
// modprobe.d lookups and kmod's configuration dump (-c).
#include "loader/modprobe_config.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <optional>

#include "base/strings.hpp"
#include "index/names.hpp"

namespace kmodd::loader {

namespace {

using index::Diagnostic;

struct LogicalLine {
    std::string text;
    unsigned number = 0; ///< the physical line it ends on, counted from 1
};

/// Splits config text like kmod's freadline_wrapped(): backslash-newline continues the
/// line, a backslash before any other character is dropped. A line is cut at a NUL byte,
/// since kmod handles it as a C string.
std::vector<LogicalLine> logical_lines(std::string_view text)
{
    std::vector<LogicalLine> lines;
    std::string line;
    unsigned newlines = 0;
    auto finish = [&] {
        size_t nul = line.find('\0');
        if (nul != std::string::npos)
            line.resize(nul);
        lines.push_back({std::move(line), newlines});
        line.clear();
    };
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\n') {
            ++newlines;
            finish();
        } else if (c != '\\') {
            line += c;
        } else if (i + 1 < text.size()) {
            ++i;
            if (text[i] == '\n')
                ++newlines;
            else
                line += text[i];
        }
        // A backslash ending the text is dropped (kmod appends a stray 0xff byte there).
    }
    if (!line.empty()) {
        ++newlines;
        finish();
    }
    return lines;
}

/// strtok_r(line, "\t ") over one line, with the "rest of the line" that
/// strtok_r(NULL, "\0") yields: everything after the single blank that ended the last word.
class Words {
public:
    explicit Words(std::string_view line) : line_(line) {}

    std::optional<std::string_view> next()
    {
        size_t start = line_.find_first_not_of(kBlanks, pos_);
        if (start == std::string_view::npos) {
            pos_ = line_.size();
            return std::nullopt;
        }
        size_t end = line_.find_first_of(kBlanks, start);
        if (end == std::string_view::npos) {
            pos_ = line_.size();
            return line_.substr(start);
        }
        pos_ = end + 1;
        return line_.substr(start, end - start);
    }

    /// nullopt when nothing follows, as strtok_r returns NULL for an empty rest.
    std::optional<std::string_view> rest()
    {
        if (pos_ >= line_.size())
            return std::nullopt;
        std::string_view r = line_.substr(pos_);
        pos_ = line_.size();
        return r;
    }

private:
    static constexpr std::string_view kBlanks = " \t";
    std::string_view line_;
    size_t pos_ = 0;
};

bool is_c_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/// The words of a softdep/weakdep list, split on isspace(). kmod's scanner does not skip a
/// single leading space: it becomes part of the first word.
std::vector<std::string_view> dep_words(std::string_view list)
{
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < list.size()) {
        while (i < list.size() && is_c_space(list[i]))
            ++i;
        size_t start = i;
        while (i < list.size() && !is_c_space(list[i]))
            ++i;
        if (i > start)
            words.push_back(list.substr(start, i - start));
    }
    if (!words.empty() && words.front().data() == list.data() + 1)
        words.front() = list.substr(0, words.front().size() + 1);
    return words;
}

/// The next word, normalised like kmod's underscores(); nullopt when there is none or it
/// has an unmatched bracket.
std::optional<std::string> next_name(Words& words)
{
    std::optional<std::string_view> word = words.next();
    if (!word)
        return std::nullopt;
    return index::normalize_alias(*word);
}

/// Adds an options/install/remove/softdep/weakdep line whose name and rest are valid.
void add_line_directive(ModprobeConfig& config, std::string_view cmd, std::string name,
                        std::string_view rest)
{
    if (cmd == "options") {
        std::string opts(rest);
        std::replace(opts.begin(), opts.end(), '\t', ' ');
        config.options.push_back({std::move(name), std::move(opts)});
    } else if (cmd == "install") {
        config.install_commands.push_back({std::move(name), std::string(rest)});
    } else if (cmd == "remove") {
        config.remove_commands.push_back({std::move(name), std::string(rest)});
    } else if (cmd == "softdep") {
        ModprobeConfig::SoftDep dep{std::move(name), {}, {}};
        std::vector<std::string>* target = nullptr; // words before "pre:"/"post:" are dropped
        for (std::string_view word : dep_words(rest)) {
            if (word == "pre:")
                target = &dep.pre;
            else if (word == "post:")
                target = &dep.post;
            else if (target != nullptr)
                target->emplace_back(word);
        }
        config.softdeps.push_back(std::move(dep));
    } else {
        ModprobeConfig::WeakDep dep{std::move(name), {}};
        for (std::string_view word : dep_words(rest))
            dep.modules.emplace_back(word);
        config.weakdeps.push_back(std::move(dep));
    }
}

bool glob_matches(const std::string& pattern, std::string_view name)
{
    return ::fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0;
}

template <typename T> const T* first_match(const std::vector<T>& list, std::string_view name)
{
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const T& entry) { return glob_matches(entry.pattern, name); });
    return it == list.end() ? nullptr : &*it;
}

} // namespace

std::vector<std::string> ModprobeConfig::default_paths()
{
    return {"/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/lib/modprobe.d"};
}

void ModprobeConfig::parse(std::string_view text, std::string_view filename,
                           index::Diagnostics& diagnostics)
{
    for (const LogicalLine& line : logical_lines(text)) {
        if (line.text.empty() || line.text[0] == '#')
            continue;
        Words words(line.text);
        std::optional<std::string_view> cmd = words.next();
        if (!cmd)
            continue;
        if (*cmd == "include" || *cmd == "config") {
            diagnostics.push_back({Diagnostic::Level::Error,
                                   std::string(filename) + ": command " + std::string(*cmd) +
                                       " is deprecated and not parsed anymore"});
            continue;
        }
        // Every other directive needs a name that normalises; the rest-of-line ones also
        // need something after it.
        std::optional<std::string> name = next_name(words);
        bool ok = false;
        if (*cmd == "alias") {
            std::optional<std::string> module = next_name(words);
            if (name && module) {
                aliases.push_back({std::move(*name), std::move(*module)});
                ok = true;
            }
        } else if (*cmd == "blacklist") {
            if (name) {
                blacklist.push_back(std::move(*name));
                ok = true;
            }
        } else if (*cmd == "options" || *cmd == "install" || *cmd == "remove" ||
                   *cmd == "softdep" || *cmd == "weakdep") {
            std::optional<std::string_view> rest = words.rest();
            if (name && rest) {
                add_line_directive(*this, *cmd, std::move(*name), *rest);
                ok = true;
            }
        }
        if (!ok) {
            diagnostics.push_back({Diagnostic::Level::Error,
                                   std::string(filename) + " line " + std::to_string(line.number) +
                                       ": ignoring bad line starting with '" + std::string(*cmd) +
                                       "'"});
        }
    }
}

std::vector<std::string> ModprobeConfig::modules_for_alias(std::string_view name) const
{
    std::vector<std::string> modules;
    for (const Alias& alias : aliases) {
        if (glob_matches(alias.pattern, name))
            modules.push_back(alias.module);
    }
    return modules;
}

std::string ModprobeConfig::options_for(std::string_view name, std::string_view alias) const
{
    std::string joined;
    for (const Options& entry : options) {
        if (entry.name != name && (alias.empty() || entry.name != alias))
            continue;
        if (entry.options.empty())
            continue;
        if (!joined.empty())
            joined += ' ';
        joined += entry.options;
    }
    return joined;
}

const ModprobeConfig::Command* ModprobeConfig::install_command_for(std::string_view name) const
{
    return first_match(install_commands, name);
}

const ModprobeConfig::Command* ModprobeConfig::remove_command_for(std::string_view name) const
{
    return first_match(remove_commands, name);
}

bool ModprobeConfig::is_blacklisted(std::string_view name) const
{
    return std::find(blacklist.begin(), blacklist.end(), name) != blacklist.end();
}

const ModprobeConfig::SoftDep* ModprobeConfig::softdep_for(std::string_view name) const
{
    return first_match(softdeps, name);
}

const ModprobeConfig::WeakDep* ModprobeConfig::weakdep_for(std::string_view name) const
{
    return first_match(weakdeps, name);
}

std::string ModprobeConfig::dump() const
{
    std::string out;
    auto line = [&out](std::string_view directive, std::string_view key,
                       std::optional<std::string_view> value) {
        out.append(directive).append(" ").append(key);
        if (value)
            out.append(" ").append(*value);
        out += '\n';
    };
    for (const std::string& name : blacklist)
        line("blacklist", name, std::nullopt);
    for (const Command& c : install_commands)
        line("install", c.pattern, c.command);
    for (const Command& c : remove_commands)
        line("remove", c.pattern, c.command);
    for (const Alias& a : aliases)
        line("alias", a.pattern, a.module);
    for (const Options& o : options)
        line("options", o.name, o.options);
    for (const SoftDep& d : softdeps) {
        std::string value;
        if (!d.pre.empty())
            value += "pre: " + base::join(d.pre, " ");
        if (!d.post.empty())
            value += "post: " + base::join(d.post, " ");
        line("softdep", d.pattern, value);
    }
    for (const WeakDep& d : weakdeps)
        line("weakdep", d.pattern, base::join(d.modules, " "));
    return out;
}

} // namespace kmodd::loader
