// SPDX-License-Identifier: LGPL-2.1-or-later
// The text and binary contents of the files depmod writes, from the module index.
#include "depmod/outputs.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>

#include "base/digest.hpp"
#include "base/threads.hpp"
#include "depmod/index_writer.hpp"
#include "index/names.hpp"

namespace kmodd::depmod {

using index::Diagnostic;
using index::Diagnostics;
using index::Resolution;

namespace {

/// The files in the order kmod's depmod writes them (build()'s order).
constexpr std::string_view kOutputOrder[] = {
    "modules.dep",         "modules.dep.bin",           "modules.alias",   "modules.alias.bin",
    "modules.softdep",     "modules.weakdep",           "modules.symbols", "modules.symbols.bin",
    "modules.builtin.bin", "modules.builtin.alias.bin", "modules.devname"};

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

/// OutputBuilder::symbols_digest() of `resolution`.
uint64_t symbols_digest_of(const Resolution& resolution)
{
    base::Digest64 digest;
    for (const auto& sym : resolution.symbols) {
        const std::string_view name = resolution.name_of(sym);
        const std::string_view owner = resolution.modules[sym.owner].file->name;
        if (!is_ascii(name) || !is_ascii(owner))
            return 0;
        digest.update(name).update(owner).update(uint64_t{sym.owner});
    }
    return digest.update(uint64_t{resolution.symbols.size()}).value();
}

void warn_duplicates(const IndexWriter& writer, const char* what, Diagnostics& diagnostics)
{
    for (const auto& [key, value] : writer.duplicates())
        diagnostics.push_back(
            {Diagnostic::Level::Warning, std::string("duplicate module ") + what + ":\n" +
                                             std::string(writer.key_prefix()) + std::string(key) +
                                             " " + std::string(value)});
}

void report_non_ascii(std::string_view file, std::string_view key, Diagnostics& diagnostics)
{
    diagnostics.push_back(
        {Diagnostic::Level::Error, std::string(file) + ": '" + std::string(key) +
                                       "': only 7-bit ASCII is supported, ignoring"});
}

void make_builtin_bin(const std::optional<std::string>& input, IndexLayout layout,
                      Diagnostics& diagnostics, OutputSink& out)
{
    if (!input)
        return;
    std::vector<std::string> names;
    std::string_view rest = *input;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        std::string_view line = nl == std::string_view::npos ? rest : rest.substr(0, nl + 1);
        rest.remove_prefix(line.size());
        if (!std::isalpha(static_cast<unsigned char>(line[0]))) {
            diagnostics.push_back(
                {Diagnostic::Level::Error, "Invalid modules.builtin line: " + std::string(line)});
            continue;
        }
        names.push_back(index::modname_from_path(line));
    }
    IndexWriter writer(layout);
    for (const std::string& name : names) {
        if (!writer.add(name, "", 0))
            report_non_ascii("modules.builtin", name, diagnostics);
    }
    writer.serialize(out);
}

/// Reads modules.builtin.modinfo records ("module.key=value\0") with the exact tolerance of
/// kmod 30's reader: a record that breaks the pattern is skipped the way kmod skips it, so
/// the resulting index is the same.
void make_builtin_alias_bin(const std::optional<std::string>& input, IndexLayout layout,
                            Diagnostics& diagnostics, OutputSink& out)
{
    if (!input)
        return;
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
            diagnostics.push_back(
                {Diagnostic::Level::Warning, "Unmatched bracket in " + std::string(value)});
            continue;
        }
        pairs.emplace_back(std::move(*alias), std::string(modname));
    }
    IndexWriter writer(layout);
    writer.reserve(pairs.size());
    for (const auto& [alias, modname] : pairs) {
        if (!writer.add(alias, modname, 0))
            report_non_ascii("modules.builtin.modinfo", alias, diagnostics);
    }
    writer.serialize(out);
}

} // namespace

uint64_t alias_order_key(const index::FileKey& key)
{
    return base::Digest64()
        .update(static_cast<uint64_t>(key.dev))
        .update(static_cast<uint64_t>(key.ino))
        .update(static_cast<uint64_t>(key.size))
        .update(static_cast<uint64_t>(key.mtime_ns))
        .update(static_cast<uint64_t>(key.ctime_ns))
        .value();
}

void OutputBuilder::make_fragment(const index::Candidate& file, Fragment& f,
                                  std::vector<AliasEntry>& fresh) const
{
    f.parsed = file.parsed;
    auto rare = [&f]() -> Rare& {
        if (!f.rare)
            f.rare = std::make_unique<Rare>();
        return *f.rare;
    };
    const std::string& name = file.name;
    std::string_view devname;
    bool has_devname = false;
    bool device_done = false;
    char type = '\0';
    unsigned major = 0, minor = 0;
    uint32_t ordinal = 0;
    std::vector<std::pair<uint32_t, std::string>> changed_keys;
    file.parsed->for_each_modinfo([&](std::string_view key, std::string_view value) {
        if (key != "alias")
            return;
        // The key points into the parsed module when normalising changes nothing (most
        // aliases, which are not even copied to find out), else into the fragment (below,
        // once all are known).
        const bool needs_normalizing = index::alias_needs_normalizing(value);
        std::optional<std::string> normalized =
            needs_normalizing ? index::normalize_alias(value) : std::nullopt;
        if (needs_normalizing && !normalized)
            rare().notes.push_back(
                {Diagnostic::Level::Warning, "Unmatched bracket in " + std::string(value)});
        else if (normalized && *normalized != value)
            changed_keys.emplace_back(ordinal++, std::move(*normalized));
        else
            fresh.emplace_back(value, &f, ordinal++);

        // kmod stops looking at a module's aliases once it has a devname and a device number.
        if (device_done)
            return;
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
    });
    if (!changed_keys.empty()) {
        // Reserved first: the strings must not move once keys point at them.
        std::vector<std::string>& keys = rare().normalized_keys;
        keys.reserve(changed_keys.size());
        for (auto& [key_ordinal, key] : changed_keys) {
            keys.push_back(std::move(key));
            fresh.emplace_back(keys.back(), &f, key_ordinal);
        }
    }
    if (has_devname && type == '\0')
        rare().devname_note = Diagnostic{
            Diagnostic::Level::Error, "Module '" + name + "' has devname (" + std::string(devname) +
                                          ") but lacks major and minor information. "
                                          "Ignoring."};
    else if (has_devname)
        rare().devname_line = name + " " + std::string(devname) + " " + type +
                              std::to_string(major) + ":" + std::to_string(minor) + "\n";
}

size_t OutputBuilder::expected_size(const std::string& name) const
{
    auto it = expected_sizes_.find(name);
    return it == expected_sizes_.end() ? 0 : it->second;
}

std::vector<OutputFile> OutputBuilder::build(const Resolution& resolution,
                                             const BuiltinInputs& builtin, bool warn_dups,
                                             KmodFormat format, Diagnostics& diagnostics)
{
    // Each file whole, in a buffer of the size it had last time.
    class Collecting final : public StringSink {
    public:
        Collecting(std::vector<OutputFile>& files, std::mutex& adding, const char* name,
                   bool is_binary, size_t expected_size)
            : StringSink(expected_size), files_(files), adding_(adding), name_(name),
              is_binary_(is_binary)
        {
        }

    private:
        void finished() override
        {
            const std::lock_guard lock(adding_);
            files_.push_back({name_, take(), is_binary_});
        }
        std::vector<OutputFile>& files_;
        std::mutex& adding_;
        const char* name_;
        bool is_binary_;
    };
    std::vector<OutputFile> files;
    files.reserve(std::size(kOutputOrder));
    std::mutex adding;
    build_each(resolution, builtin, warn_dups, format, diagnostics,
               [&](const char* name, bool is_binary) -> std::unique_ptr<OutputSink> {
                   return std::make_unique<Collecting>(files, adding, name, is_binary,
                                                       with_room(expected_size(name)));
               });
    auto rank = [](const OutputFile& file) {
        return std::find(std::begin(kOutputOrder), std::end(kOutputOrder), file.name) -
               std::begin(kOutputOrder);
    };
    std::stable_sort(files.begin(), files.end(),
                     [&](const OutputFile& a, const OutputFile& b) { return rank(a) < rank(b); });
    return files;
}

void OutputBuilder::build_each(const Resolution& resolution, const BuiltinInputs& builtin,
                               bool warn_dups, KmodFormat format, Diagnostics& diagnostics,
                               const SinkOpener& open, const Keeper& keep)
{
    ++build_;
    const IndexLayout layout =
        format.is_parent_first() ? IndexLayout::ParentFirst : IndexLayout::ChildrenFirst;
    const auto& modules = resolution.modules;
    // The outputs are made biggest temporaries first (while few outputs exist yet), each
    // temporary freed before the next is made: the peak of a build is what stays resident
    // in a daemon. The sizes are noted once nothing reads them any more.
    std::vector<std::pair<const char*, size_t>> made_sizes;
    std::mutex noting; // files are made on two threads
    auto make = [&](const char* name, bool is_binary, const auto& write) {
        std::unique_ptr<OutputSink> sink = open(name, is_binary);
        write(*sink);
        sink->finish();
        const std::lock_guard lock(noting);
        made_sizes.emplace_back(name, sink->size());
    };
    auto make_text = [&](const char* name, std::string_view text) {
        make(name, false, [&](OutputSink& out) { out.append(text); });
    };
    // A one-shot run (parallel_) makes what comes from the resolution alone on another thread,
    // which gives each file as soon as it is made, while this one makes the fragments and the
    // alias index from them: about as long (15 ms each on amd64, against 13 and 20 with
    // modules.alias on this side; after a module's content changed, with the symbol files
    // kept and the alias order taken from the last run, 9 and 10.5). The diagnostics are
    // reported in kmod's order.
    Diagnostics alias_bin_notes, symbols_bin_notes, dep_notes, list_notes;
    auto make_from_resolution = [&] {
        // The symbols' files stay as they are when their inputs did (a module's content
        // changed, not what it exports). -w reports the duplicates found making them: made.
        symbols_digest_ = symbols_digest_of(resolution);
        const bool may_keep_symbols =
            keep && !warn_dups && symbols_digest_ != 0 && symbols_digest_ == expected_symbols_;
        if (!may_keep_symbols || !keep("modules.symbols.bin"))
            make("modules.symbols.bin", true, [&](OutputSink& out) {
                make_symbols_bin(resolution, warn_dups, layout, symbols_bin_notes, out);
            });
        std::vector<uint32_t> line_ends;
        const DepNames names = DepNames::of(resolution);
        std::string dep_text = make_dep_text(resolution, names, line_ends);
        make_text("modules.dep", dep_text);
        make("modules.dep.bin", true, [&](OutputSink& out) {
            make_dep_bin(names, dep_text, line_ends, warn_dups, layout, dep_notes, out);
        });
        dep_text = std::string();
        if (!may_keep_symbols || !keep("modules.symbols"))
            make("modules.symbols", false,
                 [&](OutputSink& out) { make_symbols_text(resolution, out); });
        // modules.alias as its lines are made; the few lines of the other two are kept until then.
        std::string softdep_text, weakdep_text;
        make("modules.alias", false,
             [&](OutputSink& out) { make_text_lists(modules, out, softdep_text, weakdep_text); });
        make_text("modules.softdep", softdep_text);
        if (format.writes_weakdep())
            make_text("modules.weakdep", weakdep_text);
    };
    base::JoinedThread helper;
    if (parallel_)
        helper.thread = base::try_start_thread(make_from_resolution);
    std::vector<const Fragment*> in_order(modules.size());
    fragments_.reserve(modules.size());
    std::vector<AliasEntry> fresh;
    // A first build makes every module's entries (about 6.5 a module on distribution trees),
    // and the vector stays as the alias order: a daemon counts them first (0.14 MiB less than a
    // guess of eight a module on amd64, and never a regrowth that would hold them twice). A
    // one-shot run guesses: its fresh heap faults in only what is written, and counting reads
    // every module's .modinfo once more (~1.5 ms on amd64).
    if (fragments_.empty() && parallel_) {
        fresh.reserve(modules.size() * 8);
    } else if (fragments_.empty()) {
        size_t aliases = 0;
        for (const auto& module : modules)
            module.file->parsed->for_each_modinfo(
                [&](std::string_view key, std::string_view) { aliases += key == "alias"; });
        fresh.reserve(aliases);
    }
    module_keys_.resize(modules.size());
    for (uint32_t m = 0; m < modules.size(); ++m) {
        const index::Candidate& file = *modules[m].file;
        module_keys_[m] = alias_order_key(file.key);
        auto [it, inserted] = fragments_.try_emplace(file.parsed.get());
        if (inserted)
            make_fragment(file, it->second, fresh);
        it->second.position = m;
        it->second.build = build_;
        in_order[m] = &it->second;
    }
    update_alias_entries(std::move(fresh), fragments_.size() > modules.size());

    make("modules.alias.bin", true, [&](OutputSink& out) {
        make_alias_bin(modules, warn_dups, layout, alias_bin_notes, out);
    });
    if (!helper.thread.joinable())
        make_from_resolution();
    // What the lines of modules.alias would have said: the unmatched brackets, in module order.
    for (const Fragment* f : in_order) {
        if (const Rare* rare = f->rare.get())
            list_notes.insert(list_notes.end(), rare->notes.begin(), rare->notes.end());
    }
    if (helper.thread.joinable())
        helper.thread.join();
    for (const Diagnostics* notes : {&dep_notes, &list_notes, &alias_bin_notes, &symbols_bin_notes})
        diagnostics.insert(diagnostics.end(), notes->begin(), notes->end());

    std::string devname_text;
    for (const Fragment* f : in_order) {
        const Rare* rare = f->rare.get();
        if (rare == nullptr)
            continue;
        if (rare->devname_note)
            diagnostics.push_back(*rare->devname_note);
        if (!rare->devname_line.empty()) {
            if (devname_text.empty())
                devname_text = "# Device nodes to trigger on-demand module loading.\n";
            devname_text += rare->devname_line;
        }
    }
    make("modules.builtin.bin", true, [&](OutputSink& out) {
        make_builtin_bin(builtin.modules_builtin, layout, diagnostics, out);
    });
    make("modules.builtin.alias.bin", true, [&](OutputSink& out) {
        make_builtin_alias_bin(builtin.modules_builtin_modinfo, layout, diagnostics, out);
    });
    make_text("modules.devname", devname_text);
    for (const auto& [name, size] : made_sizes)
        expected_sizes_[name] = size;
}

DepNames DepNames::of(const Resolution& resolution)
{
    DepNames names;
    names.paths.reserve(resolution.modules.size());
    names.names.reserve(resolution.modules.size());
    for (const auto& module : resolution.modules) {
        names.paths.push_back(module.file->output_path());
        names.names.push_back(module.file->name);
    }
    return names;
}

void OutputBuilder::build_dep_files(const Resolution& resolution, const DepNames& names,
                                    bool warn_dups, KmodFormat format, Diagnostics& diagnostics,
                                    const SinkOpener& open) const
{
    const IndexLayout layout =
        format.is_parent_first() ? IndexLayout::ParentFirst : IndexLayout::ChildrenFirst;
    std::vector<uint32_t> line_ends;
    const std::string dep_text = make_dep_text(resolution, names, line_ends);
    std::unique_ptr<OutputSink> text = open("modules.dep", false);
    text->append(dep_text);
    text->finish();
    std::unique_ptr<OutputSink> bin = open("modules.dep.bin", true);
    make_dep_bin(names, dep_text, line_ends, warn_dups, layout, diagnostics, *bin);
    bin->finish();
}

std::string OutputBuilder::make_dep_text(const Resolution& resolution, const DepNames& names,
                                         std::vector<uint32_t>& line_ends) const
{
    // A line per module: its path, a colon, and the paths of what it needs, loaded first last.
    const auto& modules = resolution.modules;
    std::string dep_text;
    dep_text.reserve(with_room(expected_size("modules.dep")));
    line_ends.resize(modules.size());
    std::vector<uint32_t> closure, seen;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        dep_text.append(names.paths[m]).push_back(':');
        if (!modules[m].deps.empty()) {
            resolution.closure(m, closure, seen);
            for (uint32_t d : closure)
                dep_text.append(" ").append(names.paths[d]);
        }
        line_ends[m] = static_cast<uint32_t>(dep_text.size());
        dep_text.push_back('\n');
    }
    // Cut to fit only when the text came out well short of the room made for it (it shrinks
    // by a few lines when a module goes, which is not worth a copy).
    if (dep_text.capacity() > with_room(with_room(dep_text.size())))
        dep_text.shrink_to_fit();
    return dep_text;
}

void OutputBuilder::make_dep_bin(const DepNames& names, std::string_view dep_text,
                                 const std::vector<uint32_t>& line_ends, bool warn_dups,
                                 IndexLayout layout, Diagnostics& diagnostics, OutputSink& out)
{
    // The lines of modules.dep, without their newlines, as the values of the module names.
    IndexWriter dep_index(layout);
    dep_index.reserve(names.names.size());
    size_t start = 0;
    for (uint32_t m = 0; m < names.names.size(); ++m) {
        if (!dep_index.add(names.names[m], dep_text.substr(start, line_ends[m] - start), m))
            report_non_ascii("modules.dep.bin", names.names[m], diagnostics);
        start = line_ends[m] + 1;
    }
    dep_index.serialize(out);
    if (warn_dups)
        warn_duplicates(dep_index, "deps", diagnostics);
}

void OutputBuilder::make_text_lists(const std::vector<Resolution::Module>& modules,
                                    OutputSink& alias_out, std::string& softdep_text,
                                    std::string& weakdep_text)
{
    // Lines in array order then .modinfo order. modules.alias lines read
    // "alias <value> <module>", the others "<key> <module> <value>".
    alias_out.append("# Aliases extracted from modules themselves.\n");
    softdep_text = "# Soft dependencies extracted from modules themselves.\n";
    weakdep_text = "# Weak dependencies extracted from modules themselves.\n";
    for (uint32_t m = 0; m < modules.size(); ++m) {
        const std::string& name = modules[m].file->name;
        modules[m].file->parsed->for_each_modinfo(
            [&](std::string_view key, std::string_view value) {
                if (key == "alias") {
                    alias_out.append("alias ");
                    alias_out.append(value);
                    alias_out.push_back(' ');
                    alias_out.append(name);
                    alias_out.push_back('\n');
                    return;
                }
                std::string* text = key == "softdep"   ? &softdep_text
                                    : key == "weakdep" ? &weakdep_text
                                                       : nullptr;
                if (text != nullptr)
                    text->append(key).append(" ").append(name).append(" ").append(value).push_back(
                        '\n');
            });
    }
}

void OutputBuilder::make_alias_bin(const std::vector<Resolution::Module>& modules, bool warn_dups,
                                   IndexLayout layout, Diagnostics& diagnostics,
                                   OutputSink& out) const
{
    IndexWriter alias_index(layout);
    alias_index.reserve(alias_entries_.size());
    for (const AliasEntry& e : alias_entries_) {
        const std::string& module_name = modules[e.fragment->position].file->name;
        if (!alias_index.add_in_order(e.key(), module_name, e.fragment->position))
            report_non_ascii("modules.alias.bin", e.key(), diagnostics);
    }
    alias_index.serialize(out);
    if (warn_dups)
        warn_duplicates(alias_index, "alias", diagnostics);
}

void OutputBuilder::make_symbols_bin(const Resolution& resolution, bool warn_dups,
                                     IndexLayout layout, Diagnostics& diagnostics, OutputSink& out)
{
    // The index fed in name order; its keys are "symbol:<name>".
    const auto& modules = resolution.modules;
    IndexWriter symbol_index(layout, "symbol:");
    symbol_index.reserve(resolution.symbols_by_name.size());
    for (const auto& sym : resolution.symbols_by_name) {
        const std::string_view name = resolution.name_of(sym);
        if (!symbol_index.add_in_order(name, modules[sym.owner].file->name, sym.owner))
            report_non_ascii("modules.symbols.bin", "symbol:" + std::string(name), diagnostics);
    }
    symbol_index.serialize(out);
    if (warn_dups)
        warn_duplicates(symbol_index, "syms", diagnostics);
}

void OutputBuilder::make_symbols_text(const Resolution& resolution, OutputSink& out)
{
    // In kmod's symbol hash-table order.
    const auto& modules = resolution.modules;
    out.append("# Aliases for symbols, used by symbol_request().\n");
    for (const auto& sym : resolution.symbols) {
        out.append("alias symbol:");
        out.append(resolution.name_of(sym));
        out.push_back(' ');
        out.append(modules[sym.owner].file->name);
        out.push_back('\n');
    }
}

} // namespace kmodd::depmod
