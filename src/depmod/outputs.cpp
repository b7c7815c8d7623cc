// SPDX-License-Identifier: LGPL-2.1-or-later
#include "depmod/outputs.hpp"

#include <cctype>
#include <cstdio>

#include "depmod/index_writer.hpp"
#include "index/names.hpp"

namespace kmodd::depmod {

using index::Diagnostic;
using index::Diagnostics;
using index::Resolution;

namespace {

/// scanf("%u"): blanks, an optional sign, digits (a '-' negates modulo 2^32).
bool scan_unsigned(std::string_view& text, unsigned& value)
{
    size_t i = 0;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
        ++i;
    bool negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-'))
        negative = text[i++] == '-';
    size_t digits = i;
    unsigned v = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        v = v * 10 + static_cast<unsigned>(text[i++] - '0');
    if (i == digits)
        return false;
    value = negative ? 0U - v : v;
    text.remove_prefix(i);
    return true;
}

/// sscanf(alias, "<prefix>%u-%u", &major, &minor) == 2
bool scan_major_minor(std::string_view alias, std::string_view prefix, unsigned& major,
                      unsigned& minor)
{
    if (!alias.starts_with(prefix))
        return false;
    alias.remove_prefix(prefix.size());
    if (!scan_unsigned(alias, major) || alias.empty() || alias[0] != '-')
        return false;
    alias.remove_prefix(1);
    return scan_unsigned(alias, minor);
}

void warn_duplicates(IndexWriter& writer, const char* what, Diagnostics& diagnostics)
{
    for (const auto& [key, value] : writer.duplicates())
        diagnostics.push_back({Diagnostic::Level::Warning, std::string("duplicate module ") + what +
                                                               ":\n" + std::string(key) + " " +
                                                               std::string(value)});
}

void report_non_ascii(std::string_view file, std::string_view key, Diagnostics& diagnostics)
{
    diagnostics.push_back({Diagnostic::Level::Error,
                           std::string(file) + ": '" + std::string(key) +
                               "': only 7-bit ASCII is supported, ignoring"});
}

std::string make_builtin_bin(const std::optional<std::string>& input, Diagnostics& diagnostics)
{
    IndexWriter writer;
    if (!input)
        return {};
    std::vector<std::string> names;
    std::string_view rest = *input;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        std::string_view line = nl == std::string_view::npos ? rest : rest.substr(0, nl + 1);
        rest.remove_prefix(line.size());
        if (!std::isalpha(static_cast<unsigned char>(line[0]))) {
            diagnostics.push_back({Diagnostic::Level::Error,
                                   "Invalid modules.builtin line: " + std::string(line)});
            continue;
        }
        names.push_back(index::modname_from_path(line));
    }
    for (const std::string& name : names) {
        if (!writer.add(name, "", 0))
            report_non_ascii("modules.builtin", name, diagnostics);
    }
    return writer.serialize();
}

/// Reads modules.builtin.modinfo records ("module.key=value\0") with the exact tolerance of
/// kmod 30, whose reader this mirrors: a record that breaks the pattern is skipped the way
/// kmod skips it, so the resulting index is the same.
std::string make_builtin_alias_bin(const std::optional<std::string>& input,
                                   Diagnostics& diagnostics)
{
    if (!input)
        return {};
    const std::string& data = *input;
    size_t pos = 0;
    // Reads up to `end` (also stopping at NUL and at the end of the data); the stop character
    // is consumed. Returns the text only when it stopped at `end`.
    auto read_until = [&](char end, std::string_view& out) {
        size_t start = pos;
        while (pos < data.size() && data[pos] != end && data[pos] != '\0')
            ++pos;
        bool stopped_at_end = pos < data.size() && data[pos] == end;
        out = stopped_at_end ? std::string_view(data).substr(start, pos - start) : std::string_view();
        if (pos < data.size())
            ++pos;
        return stopped_at_end;
    };
    std::vector<std::pair<std::string, std::string>> pairs;
    while (pos < data.size()) {
        std::string_view modname, key, value;
        read_until('.', modname);
        if (modname.empty())
            continue;
        read_until('=', key);
        if (key != "alias") {
            read_until('\0', value);
            continue;
        }
        read_until('\0', value);
        if (value.empty())
            continue;
        auto alias = index::normalize_alias(value);
        if (!alias) {
            diagnostics.push_back({Diagnostic::Level::Warning,
                                   "Unmatched bracket in " + std::string(value)});
            continue;
        }
        pairs.emplace_back(std::move(*alias), std::string(modname));
    }
    IndexWriter writer;
    writer.reserve(pairs.size());
    for (const auto& [alias, modname] : pairs) {
        if (!writer.add(alias, modname, 0))
            report_non_ascii("modules.builtin.modinfo", alias, diagnostics);
    }
    return writer.serialize();
}

} // namespace

std::vector<OutputFile> make_outputs(const Resolution& resolution, const BuiltinInputs& builtin,
                                     bool warn_dups, Diagnostics& diagnostics)
{
    const auto& modules = resolution.modules;
    std::vector<OutputFile> files;
    files.reserve(10);

    // modules.dep and modules.dep.bin share their lines.
    std::vector<std::string> dep_lines(modules.size());
    std::string dep_text;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        std::string& line = dep_lines[m];
        line = modules[m].file->output_path();
        line += ':';
        if (!modules[m].deps.empty()) {
            for (uint32_t d : resolution.closure(m)) {
                line += ' ';
                line += modules[d].file->output_path();
            }
        }
        dep_text += line;
        dep_text += '\n';
    }
    IndexWriter dep_index;
    dep_index.reserve(modules.size());
    for (uint32_t m = 0; m < modules.size(); ++m) {
        if (!dep_index.add(modules[m].file->name, dep_lines[m], m))
            report_non_ascii("modules.dep.bin", modules[m].file->name, diagnostics);
    }
    files.push_back({"modules.dep", std::move(dep_text), false});
    files.push_back({"modules.dep.bin", dep_index.serialize(), true});
    if (warn_dups)
        warn_duplicates(dep_index, "deps", diagnostics);

    // Aliases, in array order then .modinfo order.
    std::string alias_text = "# Aliases extracted from modules themselves.\n";
    std::vector<std::string> normalized_aliases;
    std::vector<std::pair<size_t, uint32_t>> alias_entries; // (normalized index, module)
    for (uint32_t m = 0; m < modules.size(); ++m) {
        for (const auto& entry : modules[m].file->parsed->info.modinfo) {
            if (entry.key != "alias")
                continue;
            alias_text += "alias " + entry.value + " " + modules[m].file->name + "\n";
            auto normalized = index::normalize_alias(entry.value);
            if (!normalized) {
                diagnostics.push_back({Diagnostic::Level::Warning,
                                       "Unmatched bracket in " + entry.value});
                continue;
            }
            alias_entries.emplace_back(normalized_aliases.size(), m);
            normalized_aliases.push_back(std::move(*normalized));
        }
    }
    IndexWriter alias_index;
    alias_index.reserve(alias_entries.size());
    for (const auto& [a, m] : alias_entries) {
        if (!alias_index.add(normalized_aliases[a], modules[m].file->name, m))
            report_non_ascii("modules.alias.bin", normalized_aliases[a], diagnostics);
    }
    files.push_back({"modules.alias", std::move(alias_text), false});
    files.push_back({"modules.alias.bin", alias_index.serialize(), true});
    if (warn_dups)
        warn_duplicates(alias_index, "alias", diagnostics);

    std::string softdep_text = "# Soft dependencies extracted from modules themselves.\n";
    for (const auto& module : modules) {
        for (const auto& entry : module.file->parsed->info.modinfo) {
            if (entry.key == "softdep")
                softdep_text += "softdep " + module.file->name + " " + entry.value + "\n";
        }
    }
    files.push_back({"modules.softdep", std::move(softdep_text), false});

    std::string symbols_text = "# Aliases for symbols, used by symbol_request().\n";
    std::vector<std::string> symbol_keys;
    symbol_keys.reserve(resolution.symbols.size());
    for (const auto& sym : resolution.symbols) {
        symbols_text += "alias symbol:";
        symbols_text += sym.name;
        symbols_text += ' ';
        symbols_text += modules[sym.owner].file->name;
        symbols_text += '\n';
        symbol_keys.push_back("symbol:" + std::string(sym.name));
    }
    IndexWriter symbol_index;
    symbol_index.reserve(symbol_keys.size());
    for (size_t i = 0; i < symbol_keys.size(); ++i) {
        uint32_t owner = resolution.symbols[i].owner;
        if (!symbol_index.add(symbol_keys[i], modules[owner].file->name, owner))
            report_non_ascii("modules.symbols.bin", symbol_keys[i], diagnostics);
    }
    files.push_back({"modules.symbols", std::move(symbols_text), false});
    files.push_back({"modules.symbols.bin", symbol_index.serialize(), true});
    if (warn_dups)
        warn_duplicates(symbol_index, "syms", diagnostics);

    files.push_back({"modules.builtin.bin", make_builtin_bin(builtin.modules_builtin, diagnostics),
                     true});
    files.push_back({"modules.builtin.alias.bin",
                     make_builtin_alias_bin(builtin.modules_builtin_modinfo, diagnostics), true});

    std::string devname_text;
    for (const auto& module : modules) {
        std::string_view devname;
        bool has_devname = false;
        char type = '\0';
        unsigned major = 0, minor = 0;
        for (const auto& entry : module.file->parsed->info.modinfo) {
            if (entry.key != "alias")
                continue;
            unsigned maj = 0, min = 0;
            std::string_view value = entry.value;
            if (value.starts_with("devname:")) {
                devname = value.substr(8);
                has_devname = true;
            } else if (scan_major_minor(value, "char-major-", maj, min)) {
                type = 'c';
                major = maj;
                minor = min;
            } else if (scan_major_minor(value, "block-major-", maj, min)) {
                type = 'b';
                major = maj;
                minor = min;
            }
            if (type != '\0' && has_devname)
                break;
        }
        if (!has_devname)
            continue;
        if (type == '\0') {
            diagnostics.push_back({Diagnostic::Level::Error,
                                   "Module '" + module.file->name + "' has devname (" +
                                       std::string(devname) +
                                       ") but lacks major and minor information. Ignoring."});
            continue;
        }
        if (devname_text.empty())
            devname_text = "# Device nodes to trigger on-demand module loading.\n";
        devname_text += module.file->name + " " + std::string(devname) + " " + type +
                        std::to_string(major) + ":" + std::to_string(minor) + "\n";
    }
    files.push_back({"modules.devname", std::move(devname_text), false});
    return files;
}

} // namespace kmodd::depmod
