// SPDX-License-Identifier: LGPL-2.1-or-later
#include "depmod/outputs.hpp"

#include <algorithm>
#include <cctype>

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

void warn_duplicates(const IndexWriter& writer, const char* what, Diagnostics& diagnostics)
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
    IndexWriter writer;
    for (const std::string& name : names) {
        if (!writer.add(name, "", 0))
            report_non_ascii("modules.builtin", name, diagnostics);
    }
    return writer.serialize();
}

/// Reads modules.builtin.modinfo records ("module.key=value\0") with the exact tolerance of
/// kmod 30's reader: a record that breaks the pattern is skipped the way kmod skips it, so
/// the resulting index is the same.
std::string make_builtin_alias_bin(const std::optional<std::string>& input,
                                   Diagnostics& diagnostics)
{
    if (!input)
        return {};
    const std::string& data = *input;
    size_t pos = 0;
    // Reads up to `end` (also stopping at NUL and at the end of the data); the stop character
    // is consumed. The text counts only when it stopped at `end`.
    auto read_until = [&](char end) {
        size_t start = pos;
        while (pos < data.size() && data[pos] != end && data[pos] != '\0')
            ++pos;
        bool stopped_at_end = pos < data.size() && data[pos] == end;
        std::string_view text =
            stopped_at_end ? std::string_view(data).substr(start, pos - start) : std::string_view();
        if (pos < data.size())
            ++pos;
        return text;
    };
    std::vector<std::pair<std::string, std::string>> pairs;
    while (pos < data.size()) {
        std::string_view modname = read_until('.');
        if (modname.empty())
            continue;
        if (read_until('=') != "alias") {
            read_until('\0');
            continue;
        }
        std::string_view value = read_until('\0');
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

OutputBuilder::Fragment OutputBuilder::make_fragment(const index::Candidate& file) const
{
    Fragment f;
    f.parsed = file.parsed;
    const std::string& name = file.name;
    std::string_view devname;
    bool has_devname = false;
    bool device_done = false;
    char type = '\0';
    unsigned major = 0, minor = 0;
    for (const auto& entry : file.parsed->info.modinfo) {
        if (entry.key == "softdep") {
            f.softdep_lines.append("softdep ").append(name).append(" ").append(entry.value).append("\n");
            continue;
        }
        if (entry.key != "alias")
            continue;
        f.alias_lines.append("alias ").append(entry.value).append(" ").append(name).append("\n");
        if (auto normalized = index::normalize_alias(entry.value))
            f.alias_keys.push_back(std::move(*normalized));
        else
            f.notes.push_back({Diagnostic::Level::Warning, "Unmatched bracket in " + entry.value});

        // kmod stops looking at a module's aliases once it has a devname and a device number.
        if (device_done)
            continue;
        std::string_view value = entry.value;
        unsigned maj = 0, min = 0;
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
        device_done = type != '\0' && has_devname;
    }
    if (has_devname && type == '\0')
        f.devname_note = Diagnostic{Diagnostic::Level::Error,
                                    "Module '" + name + "' has devname (" + std::string(devname) +
                                        ") but lacks major and minor information. Ignoring."};
    else if (has_devname)
        f.devname_line = name + " " + std::string(devname) + " " + type + std::to_string(major) +
                         ":" + std::to_string(minor) + "\n";
    return f;
}

void OutputBuilder::update_alias_entries(const std::vector<const Fragment*>& added,
                                         bool removed_any)
{
    auto less = [](const AliasEntry& a, const AliasEntry& b) {
        if (int c = a.key.compare(b.key); c != 0)
            return c < 0;
        if (a.fragment->position != b.fragment->position)
            return a.fragment->position < b.fragment->position;
        // Within one module kmod inserts in .modinfo order, and the last inserted of equal
        // priority comes first.
        return a.ordinal > b.ordinal;
    };
    if (removed_any) {
        std::erase_if(alias_entries_,
                      [&](const AliasEntry& e) { return e.fragment->build != build_; });
        std::erase_if(fragments_, [&](const auto& item) { return item.second.build != build_; });
    }
    if (!added.empty()) {
        std::vector<AliasEntry> fresh;
        for (const Fragment* f : added) {
            for (size_t i = 0; i < f->alias_keys.size(); ++i)
                fresh.push_back({f->alias_keys[i], f, static_cast<uint32_t>(i)});
        }
        std::sort(fresh.begin(), fresh.end(), less);
        std::vector<AliasEntry> merged;
        merged.reserve(alias_entries_.size() + fresh.size());
        std::merge(alias_entries_.begin(), alias_entries_.end(), fresh.begin(), fresh.end(),
                   std::back_inserter(merged), less);
        alias_entries_ = std::move(merged);
    }
    // Positions of the other modules keep their relative order unless modules.order changed;
    // then the entries of equal keys need sorting again.
    if (!std::is_sorted(alias_entries_.begin(), alias_entries_.end(), less))
        std::sort(alias_entries_.begin(), alias_entries_.end(), less);
}

std::vector<OutputFile> OutputBuilder::build(const Resolution& resolution,
                                             const BuiltinInputs& builtin, bool warn_dups,
                                             Diagnostics& diagnostics)
{
    ++build_;
    const auto& modules = resolution.modules;
    std::vector<const Fragment*> in_order(modules.size());
    std::vector<const Fragment*> added;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        const index::Candidate& file = *modules[m].file;
        auto [it, inserted] = fragments_.try_emplace(file.parsed.get());
        if (inserted) {
            it->second = make_fragment(file);
            added.push_back(&it->second);
        }
        it->second.position = m;
        it->second.build = build_;
        in_order[m] = &it->second;
    }
    update_alias_entries(added, fragments_.size() > modules.size());

    std::vector<OutputFile> files;
    files.reserve(10);

    // modules.dep, and modules.dep.bin with the same lines as values.
    std::string dep_text;
    dep_text.reserve(dep_bytes_hint_);
    std::vector<std::pair<size_t, size_t>> dep_lines(modules.size());
    std::vector<uint32_t> closure, seen;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        size_t start = dep_text.size();
        dep_text.append(modules[m].file->output_path()).push_back(':');
        if (!modules[m].deps.empty()) {
            resolution.closure(m, closure, seen);
            for (uint32_t d : closure)
                dep_text.append(" ").append(modules[d].file->output_path());
        }
        dep_lines[m] = {start, dep_text.size() - start};
        dep_text.push_back('\n');
    }
    dep_bytes_hint_ = dep_text.size() + dep_text.size() / 8;
    IndexWriter dep_index;
    dep_index.reserve(modules.size());
    for (uint32_t m = 0; m < modules.size(); ++m) {
        std::string_view line = std::string_view(dep_text).substr(dep_lines[m].first,
                                                                  dep_lines[m].second);
        if (!dep_index.add(modules[m].file->name, line, m))
            report_non_ascii("modules.dep.bin", modules[m].file->name, diagnostics);
    }
    std::string dep_bin = dep_index.serialize();
    if (warn_dups)
        warn_duplicates(dep_index, "deps", diagnostics);

    // Aliases, in array order then .modinfo order.
    std::string alias_text = "# Aliases extracted from modules themselves.\n";
    std::string softdep_text = "# Soft dependencies extracted from modules themselves.\n";
    std::string devname_text;
    size_t alias_bytes = alias_text.size(), softdep_bytes = softdep_text.size();
    for (const Fragment* f : in_order) {
        alias_bytes += f->alias_lines.size();
        softdep_bytes += f->softdep_lines.size();
    }
    alias_text.reserve(alias_bytes);
    softdep_text.reserve(softdep_bytes);
    for (const Fragment* f : in_order) {
        alias_text += f->alias_lines;
        softdep_text += f->softdep_lines;
        diagnostics.insert(diagnostics.end(), f->notes.begin(), f->notes.end());
    }
    IndexWriter alias_index;
    alias_index.reserve(alias_entries_.size());
    for (const AliasEntry& e : alias_entries_) {
        const std::string& module_name = modules[e.fragment->position].file->name;
        if (!alias_index.add_in_order(e.key, module_name, e.fragment->position))
            report_non_ascii("modules.alias.bin", e.key, diagnostics);
    }
    std::string alias_bin = alias_index.serialize();
    if (warn_dups)
        warn_duplicates(alias_index, "alias", diagnostics);

    // Symbols: the text in kmod's hash order, the index fed in name order.
    std::string symbols_text = "# Aliases for symbols, used by symbol_request().\n";
    size_t symbols_bytes = symbols_text.size();
    for (const auto& sym : resolution.symbols)
        symbols_bytes += 16 + sym.name.size() + modules[sym.owner].file->name.size();
    symbols_text.reserve(symbols_bytes);
    for (const auto& sym : resolution.symbols) {
        symbols_text.append("alias symbol:").append(sym.name).append(" ");
        symbols_text.append(modules[sym.owner].file->name).push_back('\n');
    }
    std::string keys;
    size_t key_bytes = 0;
    for (const auto& sym : resolution.symbols_by_name)
        key_bytes += 7 + sym.name.size();
    keys.reserve(key_bytes);
    for (const auto& sym : resolution.symbols_by_name)
        keys.append("symbol:").append(sym.name);
    IndexWriter symbol_index;
    symbol_index.reserve(resolution.symbols_by_name.size());
    size_t offset = 0;
    for (const auto& sym : resolution.symbols_by_name) {
        std::string_view key = std::string_view(keys).substr(offset, 7 + sym.name.size());
        offset += key.size();
        if (!symbol_index.add_in_order(key, modules[sym.owner].file->name, sym.owner))
            report_non_ascii("modules.symbols.bin", key, diagnostics);
    }
    std::string symbols_bin = symbol_index.serialize();
    if (warn_dups)
        warn_duplicates(symbol_index, "syms", diagnostics);

    for (const Fragment* f : in_order) {
        if (f->devname_note)
            diagnostics.push_back(*f->devname_note);
        if (!f->devname_line.empty()) {
            if (devname_text.empty())
                devname_text = "# Device nodes to trigger on-demand module loading.\n";
            devname_text += f->devname_line;
        }
    }

    files.push_back({"modules.dep", std::move(dep_text), false});
    files.push_back({"modules.dep.bin", std::move(dep_bin), true});
    files.push_back({"modules.alias", std::move(alias_text), false});
    files.push_back({"modules.alias.bin", std::move(alias_bin), true});
    files.push_back({"modules.softdep", std::move(softdep_text), false});
    files.push_back({"modules.symbols", std::move(symbols_text), false});
    files.push_back({"modules.symbols.bin", std::move(symbols_bin), true});
    files.push_back({"modules.builtin.bin", make_builtin_bin(builtin.modules_builtin, diagnostics),
                     true});
    files.push_back({"modules.builtin.alias.bin",
                     make_builtin_alias_bin(builtin.modules_builtin_modinfo, diagnostics), true});
    files.push_back({"modules.devname", std::move(devname_text), false});
    return files;
}

} // namespace kmodd::depmod
