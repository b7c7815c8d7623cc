// SPDX-License-Identifier: LGPL-2.1-or-later
// A run in which a few modules changed what they import or their aliases, not what they export:
// the outputs made from the published generation's graph and files (the output state's), not
// from a scan and resolution of the whole tree.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/digest.hpp"
#include "base/file.hpp"
#include "base/threads.hpp"
#include "depmod/depmod.hpp"
#include "depmod/index_reader.hpp"
#include "depmod/index_writer.hpp"
#include "depmod/output_publisher.hpp"
#include "index/names.hpp"

namespace kmodd::depmod {

using index::Diagnostics;

namespace {

constexpr std::string_view kAliasHeader = "# Aliases extracted from modules themselves.\n";

/// What the splice leaves to a full run: a module with soft or weak dependencies or a device
/// name (modules.softdep, .weakdep and .devname are kept as they are).
bool has_other_lists(const elf::ModuleInfoView& info)
{
    return std::any_of(info.modinfo.begin(), info.modinfo.end(), [](const auto& entry) {
        return entry.key == "softdep" || entry.key == "weakdep" ||
               (entry.key == "alias" && entry.value.starts_with("devname:"));
    });
}

bool same_exports(const elf::ModuleInfoView& a, const elf::ModuleInfoView& b)
{
    return std::equal(
        a.exports.begin(), a.exports.end(), b.exports.begin(), b.exports.end(),
        [](const auto& x, const auto& y) { return x.name == y.name && x.crc == y.crc; });
}

/// An entry of the alias index: its key, and the module position and ordinal that order it.
struct Alias {
    std::string_view key;
    uint32_t position;
    uint32_t ordinal;
};

/// The order the alias index stores its entries in (OutputBuilder's): by key, then module
/// position, then ordinal backwards.
bool alias_before(const Alias& a, const Alias& b)
{
    if (int c = a.key.compare(b.key); c != 0)
        return c < 0;
    if (a.position != b.position)
        return a.position < b.position;
    return a.ordinal > b.ordinal;
}

/// The aliases of a build, made from modules.alias as it was with the lines of some modules
/// replaced: the new text, written into a sink as it is made, and the index entries.
class AliasSplice {
public:
    AliasSplice(size_t modules, OutputSink& text) : text_(&text), counts_(modules, 0)
    {
        text_->append(kAliasHeader);
    }

    /// Adds the line "alias <value> <name>" of the module at `position`, and its entry; false
    /// for an alias with an unmatched bracket (which a full run reports).
    bool add(std::string_view value, std::string_view name, uint32_t position)
    {
        text_->append("alias ");
        text_->append(value);
        text_->push_back(' ');
        text_->append(name);
        text_->push_back('\n');
        return add_entry(value, position);
    }
    /// Adds a line of the old text as it is ("alias <value> <name>\n"), and its entry; false
    /// when it is not such a line, or as add().
    bool add_line(std::string_view line, std::string_view name, uint32_t position)
    {
        if (!line.starts_with("alias ") || line.size() < 8 + name.size())
            return false;
        text_->append(line);
        return add_entry(line.substr(6, line.size() - 8 - name.size()), position);
    }
    void reserve(size_t entries) { entries_.reserve(entries); }
    /// The entries in index order: the order `old` kept for the modules whose lines were
    /// copied (not `changed`), with the changed modules' sorted and merged in; sorted whole
    /// when that order does not give each entry once, in order (so it never changes a byte).
    [[nodiscard]] const std::vector<Alias>& sorted(const AliasOrder& old,
                                                   const std::vector<bool>& changed)
    {
        if (!take_order(old, changed))
            std::sort(entries_.begin(), entries_.end(), alias_before);
        return entries_;
    }
    /// The order of the entries as AliasOrder keeps it (after sorted()).
    [[nodiscard]] AliasOrder order(std::vector<uint64_t> module_keys) const
    {
        AliasOrder order;
        order.starts = starts();
        order.module_keys = std::move(module_keys);
        order.sorted.reserve(entries_.size());
        for (const Alias& a : entries_)
            order.sorted.push_back(order.starts[a.position] + a.ordinal);
        return order;
    }

private:
    bool add_entry(std::string_view value, uint32_t position)
    {
        std::string_view key = value;
        if (index::alias_needs_normalizing(value)) {
            auto normalized = index::normalize_alias(value);
            if (!normalized)
                return false;
            if (*normalized != value)
                key = normalized_.emplace_back(std::move(*normalized));
        }
        entries_.push_back({key, position, counts_[position]++});
        return true;
    }
    /// Per module position, where its entries begin (they are added in the modules' order);
    /// then their total.
    [[nodiscard]] std::vector<uint32_t> starts() const
    {
        std::vector<uint32_t> starts(counts_.size() + 1, 0);
        for (size_t p = 0; p < counts_.size(); ++p)
            starts[p + 1] = starts[p] + counts_[p];
        return starts;
    }
    bool take_order(const AliasOrder& old, const std::vector<bool>& changed)
    {
        const size_t modules = counts_.size();
        if (old.starts.size() != modules + 1 || old.starts.back() != old.sorted.size())
            return false;
        const std::vector<uint32_t> now = starts();
        std::vector<uint32_t> position_of(old.sorted.size());
        std::vector<Alias> fresh;
        for (uint32_t p = 0; p < modules; ++p) {
            if (changed[p])
                fresh.insert(fresh.end(), entries_.begin() + now[p], entries_.begin() + now[p + 1]);
            else if (old.starts[p + 1] - old.starts[p] != counts_[p])
                return false;
            std::fill(position_of.begin() + old.starts[p], position_of.begin() + old.starts[p + 1],
                      p);
        }
        // The copied modules' entries in the old order, each once.
        std::vector<Alias> kept;
        kept.reserve(entries_.size() - fresh.size());
        std::vector<bool> seen(old.sorted.size(), false);
        for (uint32_t id : old.sorted) {
            if (id >= old.sorted.size() || seen[id])
                return false;
            seen[id] = true;
            const uint32_t p = position_of[id];
            if (!changed[p])
                kept.push_back(entries_[now[p] + (id - old.starts[p])]);
        }
        std::sort(fresh.begin(), fresh.end(), alias_before);
        std::vector<Alias> merged;
        merged.reserve(entries_.size());
        std::merge(kept.begin(), kept.end(), fresh.begin(), fresh.end(), std::back_inserter(merged),
                   alias_before);
        const auto out_of_order = [](const Alias& a, const Alias& b) {
            return !alias_before(a, b);
        };
        if (merged.size() != entries_.size() ||
            std::adjacent_find(merged.begin(), merged.end(), out_of_order) != merged.end())
            return false;
        entries_ = std::move(merged);
        return true;
    }

    OutputSink* text_;
    std::vector<Alias> entries_;
    std::deque<std::string> normalized_; ///< keys that normalising changed (stable addresses)
    std::vector<uint32_t> counts_;       ///< per module position, its entries so far
};

/// The bytes of the output file `recorded` in `dir_fd` when they are still what it recorded.
std::optional<std::string> read_recorded(int dir_fd, const OutputState::File& recorded)
{
    auto bytes = base::read_file(dir_fd, recorded.name);
    if (!bytes || bytes->size() != recorded.size || content_digest(*bytes) != recorded.digest)
        return std::nullopt;
    return std::move(*bytes);
}

/// The alias values of `info`, in .modinfo order.
std::vector<std::string_view> aliases_of(const elf::ModuleInfoView& info)
{
    std::vector<std::string_view> values;
    for (const auto& entry : info.modinfo) {
        if (entry.key == "alias")
            values.push_back(entry.value);
    }
    return values;
}

/// modules.alias as `old` holds it with the lines of the `changed` modules (whose aliases
/// `aliases_of(position)` gives now) made anew, into `text`, and the entries of the alias
/// index; none when
/// `old` is not such a file of the modules `names` names, or an alias has an unmatched bracket
/// (which a full run reports).
template <typename AliasesOf>
std::optional<AliasSplice>
splice_alias_lines(std::string_view old, const std::vector<std::string_view>& names,
                   const std::vector<bool>& changed, const AliasesOf& aliases_of, OutputSink& text)
{
    AliasSplice aliases(names.size(), text);
    aliases.reserve(old.size() / 24);
    if (!old.starts_with(kAliasHeader))
        return std::nullopt;
    old.remove_prefix(kAliasHeader.size());
    auto add_new = [&](uint32_t p) {
        for (std::string_view value : aliases_of(p)) {
            if (!aliases.add(value, names[p], p))
                return false;
        }
        return true;
    };
    uint32_t at = 0; // the module whose lines are being read
    while (!old.empty()) {
        const size_t end = old.find('\n');
        const size_t space = old.substr(0, end).rfind(' ');
        if (end == std::string_view::npos || space == std::string_view::npos)
            return std::nullopt;
        const std::string_view line = old.substr(0, end + 1);
        const std::string_view name = line.substr(space + 1, end - space - 1);
        for (; at < names.size() && names[at] != name; ++at) {
            if (changed[at] && !add_new(at))
                return std::nullopt;
        }
        if (at == names.size())
            return std::nullopt; // not a module's line, or out of order
        if (!changed[at] && !aliases.add_line(line, name, at))
            return std::nullopt;
        old.remove_prefix(line.size());
    }
    for (; at < names.size(); ++at) {
        if (changed[at] && !add_new(at))
            return std::nullopt;
    }
    return std::optional<AliasSplice>(std::move(aliases));
}

/// Makes modules.alias.bin from `aliases` (whose index entries the modules not `changed` have
/// in the order `old` kept) into `publisher`'s sink; false when a key or name is not 7-bit
/// ASCII (which a full run reports).
bool publish_aliases(AliasSplice& aliases, const AliasOrder& old, const std::vector<bool>& changed,
                     const std::vector<std::string_view>& names, KmodFormat format,
                     OutputPublisher& publisher)
{
    IndexWriter index(format.is_parent_first() ? IndexLayout::ParentFirst
                                               : IndexLayout::ChildrenFirst);
    const std::vector<Alias>& sorted = aliases.sorted(old, changed);
    index.reserve(sorted.size());
    bool is_ascii = true;
    for (const Alias& a : sorted) {
        if (!index.add_in_order(a.key, names[a.position], a.position))
            is_ascii = false;
    }
    std::unique_ptr<OutputSink> bin = publisher.open("modules.alias.bin");
    index.serialize(*bin);
    bin->finish();
    return is_ascii;
}

/// The INFO lines of a -v run, `old` (each "<path> needs "<symbol>": <path>", the modules' in
/// their order; `paths` gives each module position's path), with those of the modules at
/// `changed_at` replaced by `edges`; none when a line is not one of those.
std::optional<Diagnostics> splice_edge_lines(const Diagnostics& old,
                                             const std::vector<std::string_view>& paths,
                                             const std::vector<uint32_t>& changed_at,
                                             std::vector<Diagnostics>& edges)
{
    Diagnostics lines;
    if (old.empty() &&
        std::all_of(edges.begin(), edges.end(), [](const Diagnostics& e) { return e.empty(); }))
        return lines;
    std::unordered_map<std::string_view, uint32_t> by_path;
    by_path.reserve(paths.size());
    for (uint32_t p = 0; p < paths.size(); ++p)
        by_path.emplace(paths[p], p);
    std::vector<Diagnostics*> replaced(paths.size(), nullptr);
    for (size_t i = 0; i < changed_at.size(); ++i)
        replaced[changed_at[i]] = &edges[i];
    lines.reserve(old.size() + 16);
    uint32_t next = 0; // the modules before it have all their lines
    auto give_until = [&](uint32_t end) {
        for (; next < end; ++next) {
            if (replaced[next] != nullptr)
                std::move(replaced[next]->begin(), replaced[next]->end(),
                          std::back_inserter(lines));
        }
    };
    for (const index::Diagnostic& line : old) {
        const std::string_view text = line.message;
        const size_t needs = text.find(" needs \"");
        const auto it =
            needs == std::string_view::npos ? by_path.end() : by_path.find(text.substr(0, needs));
        if (it == by_path.end() || it->second < next)
            return std::nullopt;
        give_until(it->second);
        if (replaced[it->second] == nullptr)
            lines.push_back(line);
    }
    give_until(static_cast<uint32_t>(paths.size()));
    return lines;
}

/// What a splice makes anew; the other files are kept.
constexpr std::string_view kDepFiles[] = {"modules.dep", "modules.dep.bin"};
constexpr std::string_view kAliasFiles[] = {"modules.alias", "modules.alias.bin"};

} // namespace

bool Depmod::may_splice(const OutputState& state) const
{
    // What a splice cannot say again or make: unknown symbols (-e), duplicates (-w), vmlinux's
    // symbols (-E, -F), a prefix to strip (-P), and whatever the last generation said but the
    // dependencies -v lists (it may have been about a module that changed).
    const bool said_only_edges = std::all_of(
        state.diagnostics.begin(), state.diagnostics.end(),
        [](const index::Diagnostic& d) { return d.level == index::Diagnostic::Level::Info; });
    return !resolve_options_.print_unknown && !options_.warn_dups &&
           options_.module_symvers.empty() && options_.system_map.empty() &&
           options_.symbol_prefix == '\0' && said_only_edges && !state.graph.empty();
}

bool Depmod::splice_outputs(OutputState& state,
                            const std::vector<index::ModuleIndex::FoundFile>& files,
                            std::vector<Reparsed>& changed, int64_t started_ns, uint64_t current,
                            std::vector<OutputState::Renewed> renewed)
{
    const OutputState::Graph& graph = state.graph;
    const size_t modules = graph.files.size();
    // The graph numbers the files of the walk that found the same paths in the same order.
    if (files.size() != state.module_count)
        return false;
    std::vector<std::string_view> walked(files.size());
    std::transform(files.begin(), files.end(), walked.begin(),
                   [](const auto& file) { return std::string_view(file.path); });
    if (walk_digest(walked) != graph.walk_digest)
        return false;

    // The changed modules: where each is, and what it says now.
    std::vector<uint32_t> position_of(files.size(), UINT32_MAX);
    for (uint32_t p = 0; p < modules; ++p)
        position_of[graph.files[p]] = p;
    std::vector<elf::ModuleInfoView> now(changed.size());
    std::vector<uint32_t> changed_at(changed.size());
    std::vector<bool> is_changed(modules, false);
    bool same_aliases = true;
    for (size_t i = 0; i < changed.size(); ++i) {
        elf::ModuleInfoView before;
        now[i].assign(changed[i].info);
        changed_at[i] = position_of[changed[i].file];
        // Not one of the modules (another file of its name wins), or one whose change reaches
        // beyond its imports and aliases: the full run.
        if (changed_at[i] == UINT32_MAX || !index::read_info_record(changed[i].cached, before) ||
            !same_exports(before, now[i]) || has_other_lists(before) || has_other_lists(now[i]))
            return false;
        is_changed[changed_at[i]] = true;
        same_aliases = same_aliases && aliases_of(before) == aliases_of(now[i]);
    }
    // Each module's path, as found and as modules.dep prints it, and name.
    std::vector<std::string_view> paths(modules);
    DepNames names;
    names.paths.resize(modules);
    names.names.resize(modules);
    std::unordered_map<std::string_view, uint32_t> by_name;
    by_name.reserve(modules);
    for (uint32_t p = 0; p < modules; ++p) {
        const auto& found = files[graph.files[p]];
        paths[p] = found.path;
        names.paths[p] = found.relpath_at == 0 ? paths[p] : paths[p].substr(found.relpath_at);
        names.names[p] = found.name;
        by_name.emplace(names.names[p], p);
    }
    auto dir = open_output_directory();
    if (!dir)
        return false;

    // The dependencies: the last generation's, but the changed modules' from their imports now
    // (the owner of each symbol is what modules.symbols.bin names: no export changed), in
    // first-use order, as the resolver finds them.
    const OutputState::File* symbols_bin = find_file(state.files, "modules.symbols.bin");
    auto symbols_bytes =
        symbols_bin != nullptr ? read_recorded(dir->get(), *symbols_bin) : std::nullopt;
    if (!symbols_bytes)
        return false;
    auto symbols = IndexReader::from_bytes(std::move(*symbols_bytes));
    if (!symbols)
        return false;
    index::Resolution resolution;
    resolution.modules.resize(modules);
    for (uint32_t p = 0; p < modules; ++p) {
        resolution.modules[p].deps.assign(graph.deps.begin() + graph.dep_starts[p],
                                          graph.deps.begin() + graph.dep_starts[p + 1]);
    }
    bool same_deps = true;
    std::string key;
    // With -v, the INFO line of each dependency, as the resolver words it.
    std::vector<Diagnostics> edges(changed.size());
    for (size_t i = 0; i < changed.size(); ++i) {
        std::vector<uint32_t> deps;
        for (const auto& import : now[i].imports) {
            std::string_view name = import.name;
            if (name.starts_with('.'))
                name.remove_prefix(1); // PPC64's
            key.assign("symbol:").append(name);
            auto owner = symbols->lookup(key);
            if (!owner)
                continue;
            auto it = by_name.find(*owner);
            if (it == by_name.end())
                return false;
            if (std::find(deps.begin(), deps.end(), it->second) != deps.end())
                continue;
            deps.push_back(it->second);
            if (resolve_options_.verbose)
                edges[i].push_back(
                    {index::Diagnostic::Level::Info, std::string(paths[changed_at[i]]) +
                                                         " needs \"" + std::string(name) +
                                                         "\": " + std::string(paths[it->second])});
        }
        std::vector<uint32_t>& row = resolution.modules[changed_at[i]].deps;
        same_deps = same_deps && deps == row;
        row = std::move(deps);
    }
    std::vector<uint32_t> users(modules, 0);
    for (const auto& module : resolution.modules) {
        for (uint32_t dep : module.deps)
            ++users[dep];
    }
    if (!index::rank_for_dep_order(resolution.modules, users))
        return false; // a cycle, which the full run reports
    std::optional<Diagnostics> said =
        splice_edge_lines(state.diagnostics, paths, changed_at, edges);
    if (!said)
        return false;

    // What changed is made (on two threads, as a full one-shot run makes its files), the rest
    // kept as it is on disk. First modules.alias with the changed modules' lines made anew, and
    // the entries of its index.
    base::PublishBatch batch(dir->get(), options_.durable);
    OutputPublisher publisher(dir->get(), batch);
    std::vector<uint64_t> module_keys(modules);
    for (uint32_t p = 0; p < modules; ++p)
        module_keys[p] = alias_order_key(index::file_key_of(files[graph.files[p]].st));
    std::optional<AliasSplice> aliases;
    std::optional<std::string> old_aliases;
    if (!same_aliases) {
        const OutputState::File* alias_file = find_file(state.files, "modules.alias");
        old_aliases = alias_file != nullptr ? read_recorded(dir->get(), *alias_file) : std::nullopt;
        if (!old_aliases)
            return false;
        std::unique_ptr<OutputSink> text = publisher.open("modules.alias");
        aliases = splice_alias_lines(
            *old_aliases, names.names, is_changed,
            [&](uint32_t p) {
                const auto at = std::find(changed_at.begin(), changed_at.end(), p);
                return aliases_of(now[static_cast<size_t>(at - changed_at.begin())]);
            },
            *text);
        if (!aliases)
            return false;
        text->finish();
    }
    auto made = [&](std::string_view name) {
        return (!same_deps && std::find(std::begin(kDepFiles), std::end(kDepFiles), name) !=
                                  std::end(kDepFiles)) ||
               (aliases && std::find(std::begin(kAliasFiles), std::end(kAliasFiles), name) !=
                               std::end(kAliasFiles));
    };
    for (const OutputState::File& file : state.files) {
        if (!made(file.name) && !publisher.keep(file))
            return false;
    }
    const KmodFormat format = options_.format;
    Diagnostics dep_said;
    auto make_deps = [&] {
        if (!same_deps)
            outputs_.build_dep_files(resolution, names, false, format, dep_said,
                                     [&](const char* name, bool) { return publisher.open(name); });
    };
    base::JoinedThread helper;
    if (aliases)
        helper.thread = base::try_start_thread(make_deps);
    const bool is_ascii = !aliases || publish_aliases(*aliases, state.alias_order, is_changed,
                                                      names.names, format, publisher);
    if (helper.thread.joinable())
        helper.thread.join();
    else
        make_deps();
    // Anything said (a name or key not in 7-bit ASCII) is for the full run to say.
    if (!is_ascii || !dep_said.empty() || publisher.failure() || !batch.commit())
        return false;
    const std::vector<std::string>& written = publisher.changed();
    if (std::find(written.begin(), written.end(), "modules.dep") == written.end())
        ::utimensat(dir->get(), "modules.dep", nullptr, 0); // for depmod -A

    // The parse cache's delta gets the changed modules' records (and keeps what it held).
    if (options_.save_parse_cache && proof_cache_) {
        index::ParseCacheWriter writer(started_ns);
        std::unordered_set<std::string_view> parsed;
        for (const Reparsed& r : changed) {
            writer.add(files[r.file].path, r.key, r.info);
            parsed.insert(files[r.file].path);
        }
        for (const auto& [path, head] : proof_cache_->delta_heads()) {
            if (!parsed.contains(path))
                writer.add_renumbered(head, {}, {});
        }
        writer.limit_delta_to(writer.fresh_count());
        (void)writer.save_fresh_only(index::ParseCache::delta_path(options_.parse_cache));
    }

    // The state of what is on disk now.
    OutputState::Graph next;
    next.walk_digest = graph.walk_digest;
    next.files = graph.files;
    next.dep_starts.reserve(modules + 1);
    next.dep_starts.push_back(0);
    next.deps.reserve(graph.deps.size() + 64);
    for (const auto& module : resolution.modules) {
        next.deps.insert(next.deps.end(), module.deps.begin(), module.deps.end());
        next.dep_starts.push_back(static_cast<uint32_t>(next.deps.size()));
    }
    state.graph = std::move(next);
    if (aliases)
        state.alias_order = aliases->order(std::move(module_keys));
    else
        state.alias_order.module_keys = std::move(module_keys);
    state.files = publisher.take_files();
    state.diagnostics = std::move(*said);
    state.modules = current;
    state.keys_since_ns = started_ns;
    state.renewed = std::move(renewed);
    state.listings = std::move(listings_);
    (void)state.save(output_state_path(options_.parse_cache)); // else the next run does the work
    files_spliced_ = changed.size();
    return true;
}

} // namespace kmodd::depmod
