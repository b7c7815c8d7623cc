// SPDX-License-Identifier: LGPL-2.1-or-later
// Resolving the module set into kmod depmod's order: priorities, modules.order, symbol
// owners, dependency edges, the topological rank and cycle reports.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <unordered_map>

#include "base/strings.hpp"
#include "index/kmod_hash.hpp"
#include "index/module_index.hpp"

namespace kmodd::index {

namespace {

constexpr uint32_t kNoOwner = UINT32_MAX;

/// Strongly connected components (Tarjan, iterative) of the modules left unsorted by the
/// topological sort; returns the components that really are cycles.
std::vector<std::vector<uint32_t>> find_cycles(const std::vector<Resolution::Module>& modules,
                                               const std::vector<bool>& pending)
{
    const auto n = static_cast<uint32_t>(modules.size());
    std::vector<uint32_t> index(n, UINT32_MAX), low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<uint32_t> stack;
    std::vector<std::vector<uint32_t>> cycles;
    uint32_t counter = 0;
    struct Frame {
        uint32_t node;
        size_t next_edge;
    };
    for (uint32_t start = 0; start < n; ++start) {
        if (!pending[start] || index[start] != UINT32_MAX)
            continue;
        std::vector<Frame> frames{{start, 0}};
        index[start] = low[start] = counter++;
        stack.push_back(start);
        on_stack[start] = true;
        while (!frames.empty()) {
            Frame& f = frames.back();
            const auto& deps = modules[f.node].deps;
            if (f.next_edge < deps.size()) {
                uint32_t to = deps[f.next_edge++];
                if (!pending[to])
                    continue;
                if (index[to] == UINT32_MAX) {
                    index[to] = low[to] = counter++;
                    stack.push_back(to);
                    on_stack[to] = true;
                    frames.push_back({to, 0});
                } else if (on_stack[to]) {
                    low[f.node] = std::min(low[f.node], index[to]);
                }
                continue;
            }
            uint32_t node = f.node;
            frames.pop_back();
            if (!frames.empty())
                low[frames.back().node] = std::min(low[frames.back().node], low[node]);
            if (low[node] != index[node])
                continue;
            std::vector<uint32_t> component;
            uint32_t member = 0;
            do {
                member = stack.back();
                stack.pop_back();
                on_stack[member] = false;
                component.push_back(member);
            } while (member != node);
            bool self_loop = std::find(modules[node].deps.begin(), modules[node].deps.end(),
                                       node) != modules[node].deps.end();
            if (component.size() > 1 || self_loop) {
                std::sort(component.begin(), component.end());
                cycles.push_back(std::move(component));
            }
        }
    }
    std::sort(cycles.begin(), cycles.end());
    return cycles;
}

/// One path around a cyclic component, from its first module back to it: "a -> b -> a".
std::string describe_cycle(const std::vector<Resolution::Module>& modules,
                           const std::vector<uint32_t>& component)
{
    uint32_t start = component.front();
    auto in_component = [&](uint32_t m) {
        return std::binary_search(component.begin(), component.end(), m);
    };
    // Breadth-first search for the shortest way back to `start`.
    std::unordered_map<uint32_t, uint32_t> parent;
    std::vector<uint32_t> queue{start};
    uint32_t last = UINT32_MAX;
    for (size_t head = 0; head < queue.size() && last == UINT32_MAX; ++head) {
        uint32_t node = queue[head];
        for (uint32_t to : modules[node].deps) {
            if (!in_component(to))
                continue;
            if (to == start) {
                last = node;
                break;
            }
            if (parent.emplace(to, node).second)
                queue.push_back(to);
        }
    }
    std::vector<uint32_t> path;
    for (uint32_t node = last; node != start; node = parent.at(node))
        path.push_back(node);
    path.push_back(start);
    std::reverse(path.begin(), path.end());
    std::string text;
    for (uint32_t node : path)
        text += modules[node].file->name + " -> ";
    text += modules[start].file->name;
    return text;
}

} // namespace

bool ModuleIndex::is_higher_priority(const Candidate& old_file, const Candidate& new_file) const
{
    // The comparison deliberately mirrors kmod's depmod_module_is_higher_priority(): paths
    // are compared without their extension, through the module dir prefix, against the
    // depmod.d lists in kmod's internal (reversed) order.
    const std::string& dirname = settings_.module_dir;
    const size_t newlen = new_file.dir_len + 1 + new_file.name.size();
    const size_t oldlen = old_file.dir_len + 1 + old_file.name.size();
    std::string_view newpath(new_file.path.data(), std::min(newlen, new_file.path.size()));
    std::string_view oldpath(old_file.path.data(), std::min(oldlen, old_file.path.size()));
    const bool has_relnew = newpath.starts_with(dirname) && newpath.size() > dirname.size();
    const bool has_relold = oldpath.starts_with(dirname) && oldpath.size() > dirname.size();
    std::string_view relnew = has_relnew ? newpath.substr(dirname.size() + 1) : std::string_view();
    std::string_view relold = has_relold ? oldpath.substr(dirname.size() + 1) : std::string_view();

    for (const std::string& ov : settings_.config.overrides) {
        if (has_relnew && relnew == ov)
            return false;
        if (has_relold && relold == ov)
            return true;
    }

    auto path_starts_with = [](std::string_view path, std::string_view prefix) {
        return path.size() > prefix.size() && path[prefix.size()] == '/' &&
               path.starts_with(prefix);
    };
    int i = 0, builtin_prio = -1, old_prio = -1, new_prio = -1;
    for (const auto& search : settings_.config.searches) {
        using Kind = DepmodConfig::Search::Kind;
        if (search.kind == Kind::BuiltIn) {
            builtin_prio = i;
        } else if (search.kind == Kind::External) {
            for (const std::string& ext : settings_.config.externals) {
                if (path_starts_with(newpath, ext))
                    new_prio = i;
                if (path_starts_with(oldpath, ext))
                    old_prio = i;
                ++i;
            }
        } else if (has_relnew && path_starts_with(relnew, search.path)) {
            new_prio = i;
        } else if (has_relold && path_starts_with(relold, search.path)) {
            old_prio = i;
        }
        ++i;
    }
    if (new_prio < 0)
        new_prio = builtin_prio;
    if (old_prio < 0)
        old_prio = builtin_prio;
    return new_prio <= old_prio;
}

std::string ModuleIndex::import_name(const Candidate& c, size_t s) const
{
    // As the module file spells it: with what was cut off to look it up.
    uint8_t flags = c.parsed->import_flag_bits(s);
    std::string name;
    if ((flags & ParsedModule::kImportHasDot) != 0)
        name.push_back('.');
    if ((flags & ParsedModule::kImportHasPrefix) != 0)
        name.push_back(settings_.symbol_prefix);
    name.append(symbol_names_[c.import_ids[s]]);
    return name;
}

void Resolution::closure(uint32_t position, std::vector<uint32_t>& out,
                         std::vector<uint32_t>& seen) const
{
    // `seen` holds, per module, the last position whose closure visited it.
    if (seen.size() != modules.size())
        seen.assign(modules.size(), UINT32_MAX);
    out.clear();
    std::vector<uint32_t> stack(modules[position].deps.rbegin(), modules[position].deps.rend());
    while (!stack.empty()) {
        uint32_t m = stack.back();
        stack.pop_back();
        if (seen[m] == position)
            continue;
        seen[m] = position;
        out.push_back(m);
        for (auto it = modules[m].deps.rbegin(); it != modules[m].deps.rend(); ++it) {
            if (seen[*it] != position)
                stack.push_back(*it);
        }
    }
    std::sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) {
        return modules[a].dep_sort_idx < modules[b].dep_sort_idx;
    });
}

base::Result<Resolution> ModuleIndex::resolve(const ResolveOptions& options,
                                              Diagnostics& diagnostics) const
{
    const bool check_crcs = options.check_symvers && options.print_unknown;
    assert(settings_.keep_import_crcs || !check_crcs);
    // 1. One file per module name: the first found, unless a later one has priority.
    std::vector<const Candidate*> files;
    files.reserve(candidates_.size());
    for (const auto& [path, c] : candidates_) {
        if (c->parsed)
            files.push_back(c.get());
    }
    std::sort(files.begin(), files.end(),
              [](const Candidate* a, const Candidate* b) { return a->seq < b->seq; });
    std::unordered_map<std::string_view, const Candidate*> winners;
    winners.reserve(files.size());
    for (const Candidate* c : files) {
        auto [it, inserted] = winners.try_emplace(c->name, c);
        if (!inserted && !is_higher_priority(*it->second, *c))
            it->second = c;
    }

    // 2. kmod's array order: modules.order entries first, then hash-table order.
    struct Sortable {
        const Candidate* file;
        int sort_idx;
    };
    std::vector<Sortable> order;
    order.reserve(winners.size());
    for (const auto& [name, c] : winners) {
        int sort_idx = 1;
        if (modules_order_ok_ && c->order_key_size != 0) {
            auto it = modules_order_.find(c->order_key());
            if (it != modules_order_.end())
                sort_idx = it->second;
        }
        order.push_back({c, sort_idx});
    }
    if (!modules_order_ok_)
        diagnostics.push_back(modules_order_problem_);
    std::sort(order.begin(), order.end(), [](const Sortable& a, const Sortable& b) {
        if (a.sort_idx != b.sort_idx)
            return a.sort_idx < b.sort_idx;
        uint32_t bucket_a = a.file->name_hash & (kModuleTableBuckets - 1);
        uint32_t bucket_b = b.file->name_hash & (kModuleTableBuckets - 1);
        return bucket_a != bucket_b ? bucket_a < bucket_b : a.file->name < b.file->name;
    });

    Resolution result;
    result.modules.resize(order.size());
    for (size_t i = 0; i < order.size(); ++i)
        result.modules[i].file = order[i].file;

    // 3. Symbol owners: vmlinux first, then each module in array order (the last wins).
    const size_t symbol_count = symbol_names_.size();
    std::vector<uint32_t> owner(symbol_count, kNoOwner);
    // The CRCs only when they are compared.
    std::vector<uint64_t> crc = check_crcs ? vmlinux_crc_ : std::vector<uint64_t>();
    for (uint32_t m = 0; m < result.modules.size(); ++m) {
        const Candidate& c = *result.modules[m].file;
        for (size_t s = 0; s < c.export_ids.size(); ++s) {
            owner[c.export_ids[s]] = m;
            if (check_crcs)
                crc[c.export_ids[s]] = c.parsed->export_crc(s);
        }
    }

    // 4. Dependency edges from imports, in first-reference order.
    std::vector<uint32_t> users(result.modules.size(), 0);
    std::vector<uint32_t> last_user(result.modules.size(), kNoOwner);
    for (uint32_t m = 0; m < result.modules.size(); ++m) {
        Resolution::Module& module = result.modules[m];
        const Candidate& c = *module.file;
        for (size_t s = 0; s < c.import_ids.size(); ++s) {
            const uint32_t id = c.import_ids[s];
            const uint32_t provider = owner[id];
            // The import record itself is only looked at when something is to be reported:
            // this loop runs over every import of every module.
            if (provider == kNoOwner && !is_vmlinux_[id]) {
                if (options.print_unknown && !c.parsed->is_weak_import(s))
                    diagnostics.push_back({Diagnostic::Level::Warning,
                                           c.path + " needs unknown symbol " + import_name(c, s)});
                continue;
            }
            if (check_crcs) {
                if (crc[id] != c.parsed->import_crc(s) && !c.parsed->is_weak_import(s))
                    diagnostics.push_back(
                        {Diagnostic::Level::Warning,
                         c.path + " disagrees about version of symbol " + import_name(c, s)});
            }
            if (provider == kNoOwner || last_user[provider] == m)
                continue;
            last_user[provider] = m;
            module.deps.push_back(provider);
            ++users[provider];
            if (options.verbose)
                diagnostics.push_back({Diagnostic::Level::Info,
                                       c.path + " needs \"" + std::string(symbol_names_[id]) +
                                           "\": " + result.modules[provider].file->path});
        }
    }

    // 5. Topological rank: kmod's Kahn sort with a LIFO of modules nobody uses.
    std::vector<uint32_t> roots;
    for (uint32_t m = 0; m < result.modules.size(); ++m) {
        if (users[m] == 0)
            roots.push_back(m);
    }
    uint32_t sorted = 0;
    while (!roots.empty()) {
        uint32_t src = roots.back();
        roots.pop_back();
        result.modules[src].dep_sort_idx = sorted++;
        for (uint32_t dst : result.modules[src].deps) {
            if (--users[dst] == 0)
                roots.push_back(dst);
        }
    }
    if (sorted < result.modules.size()) {
        std::vector<bool> pending(result.modules.size());
        for (size_t m = 0; m < pending.size(); ++m)
            pending[m] = users[m] > 0;
        auto cycles = find_cycles(result.modules, pending);
        size_t in_cycles = 0;
        for (const auto& cycle : cycles) {
            in_cycles += cycle.size();
            diagnostics.push_back({Diagnostic::Level::Error,
                                   "Cycle detected: " + describe_cycle(result.modules, cycle)});
        }
        diagnostics.push_back({Diagnostic::Level::Error, "Found " + std::to_string(in_cycles) +
                                                             " modules in dependency cycles!"});
        return base::make_error(EINVAL, "Found " + std::to_string(in_cycles) +
                                            " modules in dependency cycles");
    }

    // 6. Symbols owned by modules, in kmod's symbol-table order and in name order.
    auto owned_in = [&](const std::vector<uint32_t>& ids, std::vector<Resolution::Symbol>& out) {
        out.reserve(ids.size());
        for (uint32_t id : ids) {
            if (owner[id] != kNoOwner)
                out.push_back({symbol_names_[id], owner[id]});
        }
    };
    owned_in(ids_in_hash_order_, result.symbols);
    owned_in(ids_in_name_order_, result.symbols_by_name);
    return result;
}

} // namespace kmodd::index
