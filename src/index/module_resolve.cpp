// SPDX-License-Identifier: LGPL-2.1-or-later
// Resolving the module set into kmod depmod's order: priorities, modules.order, symbol
// owners, dependency edges, the topological rank and cycle reports.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <list>
#include <optional>
#include <unordered_map>

#include "base/strings.hpp"
#include "index/kmod_hash.hpp"
#include "index/module_index.hpp"

namespace kmodd::index {

namespace {

constexpr uint32_t kNoOwner = UINT32_MAX;

/// Beyond this many steps a walk of the cycle search is taken as one that never ends.
constexpr size_t kMaxCycleSearchSteps = size_t{1} << 20;

struct Vertex {
    uint32_t module;
    uint32_t parent; ///< index into the walk's vertices; UINT32_MAX for the root
};

/// Whether `module` (not the root) is already on the path that ends at vertex `v`.
bool is_on_path(const std::vector<Vertex>& vertices, uint32_t v, uint32_t module, uint32_t root)
{
    if (module == root)
        return false;
    for (uint32_t p = v; p != UINT32_MAX; p = vertices[p].parent) {
        if (vertices[p].module == module)
            return true;
    }
    return false;
}

/// One run of kmod's search (see report_cycles). nullopt when a walk would not end. With
/// `prune`, a walk follows only modules from which its root can be reached and that are not on
/// its path yet, so every walk ends.
std::optional<std::pair<std::vector<std::string>, size_t>>
search_cycles(const std::vector<Resolution::Module>& modules, const std::vector<bool>& pending,
              bool prune)
{
    // kmod keeps the roots in a circular list and, removing one, takes the removed entry's
    // successor as the new head: the order in which roots are taken rotates with every
    // removal, and that order decides where each reported cycle starts.
    std::list<uint32_t> roots;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        if (pending[m])
            roots.push_back(m);
    }
    auto head = roots.begin();
    auto remove = [&](std::list<uint32_t>::iterator it) {
        auto next = std::next(it);
        roots.erase(it);
        head = roots.empty() ? roots.end() : (next == roots.end() ? roots.begin() : next);
    };
    auto drop_root = [&](uint32_t m) {
        if (auto it = std::find(roots.begin(), roots.end(), m); it != roots.end())
            remove(it);
    };
    // Who uses whom among the pending modules, for pruning.
    std::vector<std::vector<uint32_t>> users(prune ? modules.size() : 0);
    for (uint32_t m = 0; prune && m < modules.size(); ++m) {
        for (uint32_t dep : modules[m].deps) {
            if (pending[m] && pending[dep])
                users[dep].push_back(m);
        }
    }
    std::vector<bool> visited(modules.size(), false);
    std::vector<bool> in_loop(modules.size(), false);
    std::vector<std::string> lines;
    size_t in_loops = 0;
    // kmod's stack holds at most as many vertices as there are roots (it asserts so).
    const size_t stack_limit = roots.size();
    while (!roots.empty()) {
        const uint32_t root = *head;
        remove(head);
        std::vector<bool> reaches_root;
        if (prune) {
            reaches_root.assign(modules.size(), false);
            std::vector<uint32_t> queue{root};
            reaches_root[root] = true;
            for (size_t i = 0; i < queue.size(); ++i) {
                for (uint32_t user : users[queue[i]]) {
                    if (!reaches_root[user]) {
                        reaches_root[user] = true;
                        queue.push_back(user);
                    }
                }
            }
        }
        std::vector<Vertex> vertices{{root, UINT32_MAX}};
        std::vector<uint32_t> stack{0};
        while (!stack.empty()) {
            const uint32_t v = stack.back();
            stack.pop_back();
            const uint32_t m = vertices[v].module;
            if (visited[m] && m == root) {
                std::vector<uint32_t> path;
                for (uint32_t p = vertices[v].parent; p != UINT32_MAX; p = vertices[p].parent)
                    path.push_back(vertices[p].module);
                std::string line = "Cycle detected: ";
                for (auto it = path.rbegin(); it != path.rend(); ++it) {
                    line += modules[*it].file->name + " -> ";
                    drop_root(*it);
                    if (!in_loop[*it]) {
                        in_loop[*it] = true;
                        ++in_loops;
                    }
                }
                lines.push_back(line + modules[m].file->name);
                continue;
            }
            visited[m] = true;
            if (modules[m].deps.empty()) {
                drop_root(m);
                continue;
            }
            // A walk that circles a cycle its root is not on (a module downstream of one
            // cycle leading into another, or a second cycle beside the root's) never ends:
            // kmod's runs out of stack or memory.
            if (!prune && (stack.size() + modules[m].deps.size() > stack_limit ||
                           vertices.size() > kMaxCycleSearchSteps))
                return std::nullopt;
            if (prune && vertices.size() > kMaxCycleSearchSteps)
                break;
            for (uint32_t dep : modules[m].deps) {
                if (prune && (!reaches_root[dep] || is_on_path(vertices, v, dep, root)))
                    continue;
                vertices.push_back({dep, v});
                stack.push_back(static_cast<uint32_t>(vertices.size() - 1));
            }
        }
    }
    return std::pair{std::move(lines), in_loops};
}

/// kmod's report of dependency cycles (depmod_report_cycles), line for line. The modules
/// left by the topological sort (`pending`: still used by someone) are the roots, in array
/// order to begin with. From each root, a depth-first walk over paths (a LIFO of (module,
/// parent) vertices, a module's dependencies pushed in order, so the last is walked first)
/// reports every path that comes back to the root as "Cycle detected: root -> ... -> root";
/// the modules on a reported path, and modules without dependencies, are no longer roots.
/// Every module the walk expands is marked visited for good, which is how kmod ends a walk: a
/// root met again as its own first vertex prints just its name. Where kmod's search would not
/// end, the walks follow only modules that lead back to their root and are not on the path. Returns
/// the lines and the number of modules on reported paths (kmod's "Found N modules in dependency
/// cycles!").
std::pair<std::vector<std::string>, size_t>
report_cycles(const std::vector<Resolution::Module>& modules, const std::vector<bool>& pending)
{
    if (auto exact = search_cycles(modules, pending, false))
        return std::move(*exact);
    return search_cycles(modules, pending, true)
        .value_or(std::pair<std::vector<std::string>, size_t>{});
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

bool rank_for_dep_order(std::vector<Resolution::Module>& modules, std::vector<uint32_t>& users)
{
    // kmod's Kahn sort with a LIFO of modules nobody uses.
    std::vector<uint32_t> roots;
    for (uint32_t m = 0; m < modules.size(); ++m) {
        if (users[m] == 0)
            roots.push_back(m);
    }
    uint32_t sorted = 0;
    while (!roots.empty()) {
        uint32_t src = roots.back();
        roots.pop_back();
        modules[src].dep_sort_idx = sorted++;
        for (uint32_t dst : modules[src].deps) {
            if (--users[dst] == 0)
                roots.push_back(dst);
        }
    }
    return sorted == modules.size();
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
        if (c->parsed) // every file that was looked at, parsed or not (as kmod)
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

    // 5. Topological rank.
    if (!rank_for_dep_order(result.modules, users)) {
        std::vector<bool> pending(result.modules.size());
        for (size_t m = 0; m < pending.size(); ++m)
            pending[m] = users[m] > 0;
        auto [lines, in_cycles] = report_cycles(result.modules, pending);
        for (std::string& line : lines)
            diagnostics.push_back({Diagnostic::Level::Error, std::move(line)});
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
                out.push_back({id, owner[id]});
        }
    };
    result.symbol_names = &symbol_names_;
    owned_in(ids_in_hash_order_, result.symbols);
    owned_in(ids_in_name_order_, result.symbols_by_name);
    return result;
}

} // namespace kmodd::index
