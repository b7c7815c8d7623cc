// SPDX-License-Identifier: LGPL-2.1-or-later
// The questions about modules beyond load and unload: why one is loaded (Explain), what
// needs it (ListHolders), and a search over names, aliases and descriptions (FindModules).
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "elf/module_file.hpp"
#include "index/module_index.hpp"
#include "index/names.hpp"
#include "index/parse_cache.hpp"
#include "service/module_service.hpp"
#include "service/request_support.hpp"

namespace kmodd::service {

using base::quoted;

namespace {

/// Deeper than this, explain() stops following the chain of users (a record can only
/// name modules kmodd loaded, so a real chain is as deep as a load plan).
constexpr int kMaxChainDepth = 16;

/// A CLOCK_REALTIME time in microseconds as "2026-12-03 13:05:07 UTC".
std::string format_time(uint64_t usec)
{
    const auto seconds = static_cast<time_t>(usec / 1000000U);
    tm parts{};
    if (::gmtime_r(&seconds, &parts) == nullptr)
        return "an unknown time";
    char text[40];
    if (std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts) == 0)
        return "an unknown time";
    return text;
}

/// " at <time>" when the time is known.
std::string at_time(uint64_t usec)
{
    return usec == 0 ? std::string() : " at " + format_time(usec);
}

/// "kmodctl (uid 0, bus name :1.42)" for a recorded requester.
std::string describe_requester(const loader::Requester& requester)
{
    std::string who = requester.command.empty() ? std::string("a client") : requester.command;
    std::vector<std::string> facts;
    if (requester.uid >= 0)
        facts.push_back("uid " + std::to_string(requester.uid));
    if (!requester.bus_name.empty())
        facts.push_back("bus name " + requester.bus_name);
    if (!facts.empty())
        who += " (" + base::join(facts, ", ") + ")";
    return who;
}

/// The modules whose modules.dep entry lists `name` as a dependency, sorted.
std::vector<std::string> index_users(const depmod::ModuleDatabase& database,
                                     const std::string& name)
{
    std::vector<std::string> users;
    database.for_each_module([&](std::string_view user, std::string_view line) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            return;
        for (std::string_view dep : base::split_tokens(line.substr(colon + 1), " \t")) {
            if (index::modname_from_path(dep) == name) {
                users.emplace_back(user);
                return;
            }
        }
    });
    std::sort(users.begin(), users.end());
    return users;
}

/// Whether `module` is in the modules.dep entry of `user` (a hard dependency); a module
/// kmodd loaded for `user` that is not came as a softdep of its plan.
bool is_dependency_of(loader::Resolver& resolver, const std::string& module,
                      const std::string& user)
{
    loader::Module* found = resolver.module_by_name(user);
    if (found == nullptr)
        return false;
    const auto& deps = resolver.dependencies(*found);
    return std::any_of(deps.begin(), deps.end(),
                       [&](const loader::Module* dep) { return dep->name == module; });
}

/// Whether `pattern` has a glob character.
bool is_glob(std::string_view pattern)
{
    return pattern.find_first_of("*?[") != std::string_view::npos;
}

} // namespace

std::optional<RequestError> check_pattern(const std::string& pattern)
{
    auto invalid = [](std::string message) {
        return RequestError{Failure::InvalidName, std::move(message)};
    };
    if (pattern.empty())
        return invalid("The search pattern is empty.");
    if (pattern.size() > loader::kMaxAliasLength)
        return invalid("The search pattern is longer than " +
                       std::to_string(loader::kMaxAliasLength) + " bytes.");
    if (std::any_of(pattern.begin(), pattern.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
        return invalid("The search pattern contains a control character.");
    return std::nullopt;
}

bool matches_pattern(std::string_view pattern, std::string_view text, bool fold_dashes)
{
    auto fold = [fold_dashes](char c) {
        if (fold_dashes && c == '-')
            return '_';
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    };
    if (is_glob(pattern)) {
        std::string glob(pattern);
        std::string subject(text);
        if (fold_dashes) {
            // As modprobe normalises a name: not inside [...], where '-' makes a range.
            bool in_brackets = false;
            for (char& c : glob) {
                if (c == '[')
                    in_brackets = true;
                else if (c == ']')
                    in_brackets = false;
                else if (c == '-' && !in_brackets)
                    c = '_';
            }
            std::replace(subject.begin(), subject.end(), '-', '_');
        }
        return ::fnmatch(glob.c_str(), subject.c_str(), FNM_CASEFOLD) == 0;
    }
    // A substring, compared character by character without copies: a search runs over
    // every name, alias and description of a tree.
    return std::search(text.begin(), text.end(), pattern.begin(), pattern.end(),
                       [&](char a, char b) { return fold(a) == fold(b); }) != text.end();
}

void ModuleService::explain_lines(loader::Resolver& resolver, const std::string& name, int depth,
                                  std::set<std::string>& seen,
                                  std::vector<std::string>& lines) const
{
    const std::string indent(static_cast<size_t>(depth) * 2, ' ');
    auto say = [&](std::string sentence) { lines.push_back(indent + std::move(sentence)); };
    if (!seen.insert(name).second) {
        say(quoted(name) + ": as above.");
        return;
    }
    if (loader::Module* module = resolver.module_by_name(name);
        module != nullptr && resolver.is_builtin(*module)) {
        say(quoted(name) + " is built into the kernel: it is always there and is neither "
                           "loaded nor unloaded.");
        return;
    }
    if (kernel_.module_state(name) == sys::ModuleState::NotLoaded) {
        say(quoted(name) + (depth == 0 ? " is not loaded." : " is not loaded any more."));
        return;
    }
    auto record = records_.find(name);
    if (record == records_.end()) {
        if (start_usec_ == 0)
            say(quoted(name) + " was not loaded by kmodd; kmodd cannot tell by whom (modprobe, "
                               "the initramfs, udev).");
        else if (loaded_at_start_.contains(name))
            say(quoted(name) + " was loaded before kmodd started (" + format_time(start_usec_) +
                "): by the initramfs, systemd-modules-load, udev or modprobe; kmodd cannot "
                "tell which.");
        else
            say(quoted(name) + " was loaded beside kmodd after it started (by modprobe, insmod "
                               "or the kernel's request_module); kmodd cannot tell by whom.");
        return;
    }
    const loader::Record& facts = record->second;
    const std::string when = at_time(facts.provenance.usec);
    switch (facts.origin) {
    case loader::Origin::Explicit:
        if (facts.provenance.requester)
            say(quoted(name) + " was loaded by kmodd" + when + " because " +
                describe_requester(*facts.provenance.requester) + " asked for it.");
        else
            say(quoted(name) + " was loaded by kmodd" + when +
                " because a user asked for it (who was not recorded).");
        return;
    case loader::Origin::Autoload:
        if (facts.provenance.device)
            say(quoted(name) + " was loaded by kmodd" + when + " for the device " +
                facts.provenance.device->syspath + " (modalias " +
                facts.provenance.device->modalias + ").");
        else
            say(quoted(name) + " was loaded by kmodd" + when +
                " for a device (which was not recorded).");
        return;
    case loader::Origin::External:
    case loader::Origin::Dependency:
        break;
    }
    if (facts.needed_by.empty()) {
        say(quoted(name) + " was loaded by kmodd" + when +
            " as a dependency of modules that are gone; nothing kmodd loaded needs it now.");
        return;
    }
    std::vector<std::string> hard;
    std::vector<std::string> soft;
    for (const std::string& user : facts.needed_by) {
        (is_dependency_of(resolver, name, user) ? hard : soft).push_back(quoted(user));
    }
    std::string sentence = quoted(name) + " was loaded by kmodd" + when;
    if (!hard.empty())
        sentence += " as a dependency of " + base::join(hard, ", ");
    if (!soft.empty())
        sentence += std::string(hard.empty() ? "" : ", and") + " as a softdep brought by loading " +
                    base::join(soft, ", ");
    say(sentence + ".");
    if (depth >= kMaxChainDepth)
        return;
    for (const std::string& user : facts.needed_by)
        explain_lines(resolver, user, depth + 1, seen, lines);
}

RequestResult<Explanation> ModuleService::explain(const IndexSnapshot& snapshot,
                                                  const std::string& name) const
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    // The module the name gives: the first of an alias's modules that is in the kernel, else
    // the first; a module the index does not know may still be loaded (from elsewhere).
    std::string module;
    for (loader::Module* found : resolver.lookup(name)) {
        if (module.empty())
            module = found->name;
        if (kernel_.module_state(found->name) != sys::ModuleState::NotLoaded) {
            module = found->name;
            break;
        }
    }
    if (module.empty()) {
        // Only a plain module name is looked for in the kernel (/sys/module/NAME).
        std::string plain = index::normalize_modname(name);
        const bool is_plain = std::all_of(plain.begin(), plain.end(), [](unsigned char c) {
            return std::isalnum(c) != 0 || c == '_';
        });
        if (!is_plain || kernel_.module_state(plain) == sys::ModuleState::NotLoaded)
            return not_found(snapshot, name);
        module = std::move(plain);
    }

    Explanation explanation;
    explanation.name = module;
    loader::Module* found = resolver.module_by_name(module);
    explanation.builtin = found != nullptr && resolver.is_builtin(*found);
    if (!explanation.builtin) {
        if (auto entry = kernel_.loaded_module(module)) {
            explanation.loaded = true;
            explanation.refcount = entry->refcount;
            explanation.holders = std::move(entry->holders);
            std::sort(explanation.holders.begin(), explanation.holders.end());
        }
    }

    std::lock_guard lock(records_mutex_);
    explanation.start_usec = start_usec_;
    auto record = records_.find(module);
    if (explanation.loaded && record != records_.end()) {
        explanation.origin = record->second.origin;
        explanation.provenance = record->second.provenance;
        for (const std::string& user : record->second.needed_by) {
            explanation.needed_by.push_back(
                ModuleUser{user, !is_dependency_of(resolver, module, user),
                           kernel_.module_state(user) == sys::ModuleState::Live});
        }
    } else if (explanation.loaded) {
        explanation.loaded_before_start = loaded_at_start_.contains(module);
    }

    std::set<std::string> seen;
    explain_lines(resolver, module, 0, seen, explanation.lines);
    if (explanation.loaded) {
        if (!explanation.holders.empty())
            explanation.lines.push_back("Used by: " + base::join(explanation.holders, ", ") + ".");
        else if (explanation.refcount > 0)
            explanation.lines.push_back(
                "No module uses it, but it holds " + std::to_string(explanation.refcount) +
                " reference(s) of something else: an open device, a mounted filesystem, a "
                "network interface or another kernel user.");
        else
            explanation.lines.emplace_back("Nothing uses it now.");
    }
    return explanation;
}

RequestResult<HolderReport> ModuleService::holders(const IndexSnapshot& snapshot,
                                                   const std::string& name)
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    auto modules = find_modules(resolver, snapshot, name);
    if (!modules)
        return tl::unexpected(std::move(modules.error()));
    const std::string module = modules->front()->name;

    HolderReport report;
    if (auto entry = kernel_.loaded_module(module)) {
        report.holders = std::move(entry->holders);
        std::sort(report.holders.begin(), report.holders.end());
    }
    report.users = index_users(snapshot.database(), module);
    std::lock_guard change(change_mutex_);
    auto plan = unload_locked(snapshot, name, true);
    if (plan)
        report.unload = std::move(*plan);
    else
        report.unload_error = plan.error().message;
    return report;
}

RequestResult<std::vector<std::string>> ModuleService::users(const IndexSnapshot& snapshot,
                                                             const std::string& name) const
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    auto modules = find_modules(resolver, snapshot, name);
    if (!modules)
        return tl::unexpected(std::move(modules.error()));
    return index_users(snapshot.database(), modules->front()->name);
}

RequestResult<std::vector<FoundModule>>
ModuleService::find(const IndexSnapshot& snapshot, const std::string& pattern,
                    const std::map<std::string, std::string, std::less<>>& descriptions)
{
    if (auto invalid = check_pattern(pattern))
        return tl::unexpected(std::move(*invalid));

    std::map<std::string, FoundModule, std::less<>> found;
    auto describe = [&](std::string_view module) {
        auto it = descriptions.find(module);
        return it == descriptions.end() ? std::string() : it->second;
    };
    auto consider = [&](std::string_view module, const char* field, std::string_view text) {
        // Names and aliases as modprobe takes them: '-' and '_' are the same.
        const bool is_description = std::string_view(field) == "description";
        if (found.contains(module) || !matches_pattern(pattern, text, !is_description))
            return;
        found.emplace(std::string(module),
                      FoundModule{std::string(module), describe(module), field, std::string(text)});
    };
    const depmod::ModuleDatabase& database = snapshot.database();
    database.for_each_module(
        [&](std::string_view module, std::string_view) { consider(module, "name", module); });
    database.for_each_builtin([&](std::string_view module) { consider(module, "name", module); });
    database.for_each_alias(
        [&](std::string_view alias, std::string_view module) { consider(module, "alias", alias); });
    for (const auto& [module, description] : descriptions)
        consider(module, "description", description);

    std::vector<FoundModule> result;
    result.reserve(found.size());
    for (auto& [module, entry] : found)
        result.push_back(std::move(entry));
    return result;
}

std::optional<std::string> DescriptionCache::persisted_description(const std::string& path,
                                                                   const struct stat& st)
{
    if (parse_cache_path_.empty())
        return std::nullopt;
    if (!parse_cache_) {
        auto loaded = index::ParseCache::load(parse_cache_path_);
        parse_cache_ = std::make_shared<const index::ParseCache>(loaded ? std::move(*loaded)
                                                                        : index::ParseCache());
    }
    // The key the index gave the file: a symlink's resolved target with the target's stat.
    std::string target;
    struct stat link {};
    if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
        char* real = ::realpath(path.c_str(), nullptr);
        if (real == nullptr)
            return std::nullopt;
        target = real;
        std::free(real);
    }
    return parse_cache_->description(path, index::CacheKey::of(st, std::move(target)));
}

size_t DescriptionCache::files_read() const
{
    std::lock_guard lock(mutex_);
    return files_read_;
}

std::map<std::string, std::string, std::less<>>
DescriptionCache::descriptions(const std::shared_ptr<const IndexSnapshot>& shared)
{
    {
        // Every change of a module file is published as a new snapshot: for the same one,
        // the files are as they were at the last search.
        std::lock_guard lock(mutex_);
        if (last_snapshot_.lock() == shared)
            return last_;
    }
    const IndexSnapshot& snapshot = *shared;
    std::map<std::string, std::string, std::less<>> out;
    const depmod::ModuleDatabase& database = snapshot.database();
    const std::string& module_dir = database.module_dir();

    // Built-in modules: their lines of modules.builtin.modinfo ("name.description=...").
    if (auto text = base::read_file(AT_FDCWD, module_dir + "/modules.builtin.modinfo")) {
        constexpr std::string_view kKey = ".description=";
        for (std::string_view item : base::split_tokens(*text, std::string_view("\0", 1))) {
            size_t key = item.find(kKey);
            if (key == std::string_view::npos || key == 0)
                continue;
            out.try_emplace(index::normalize_modname(item.substr(0, key)),
                            std::string(item.substr(key + kKey.size())));
        }
    }

    std::vector<std::pair<std::string, std::string>> files; // module, path
    database.for_each_module([&](std::string_view module, std::string_view line) {
        std::string_view path = line.substr(0, line.find(':'));
        files.emplace_back(std::string(module), path.starts_with('/')
                                                    ? std::string(path)
                                                    : module_dir + "/" + std::string(path));
    });

    std::lock_guard lock(mutex_);
    std::map<std::string, Entry, std::less<>> fresh;
    elf::LoadBuffers buffers;
    for (auto& [module, path] : files) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0)
            continue;
        Entry entry;
        std::optional<std::string> persisted;
        if (auto known = by_path_.find(path);
            known != by_path_.end() && known->second.key == index::file_key_of(st)) {
            entry = std::move(known->second);
        } else if (persisted = persisted_description(path, st); persisted) {
            entry.key = index::file_key_of(st);
            entry.description = std::move(*persisted);
        } else {
            ++files_read_;
            struct stat read_st {};
            auto info = elf::load_module_file(AT_FDCWD, path, read_st, buffers);
            if (!info)
                continue;
            entry.key = index::file_key_of(read_st);
            for (const elf::ModinfoEntry& field : info->modinfo) {
                if (field.key == "description") {
                    entry.description = field.value;
                    break;
                }
            }
        }
        if (!entry.description.empty())
            out.try_emplace(module, entry.description);
        fresh.emplace(std::move(path), std::move(entry));
    }
    // Files no longer in the index are forgotten, and so is the parse cache until a search
    // finds a file it has not seen.
    by_path_ = std::move(fresh);
    parse_cache_.reset();
    last_snapshot_ = shared;
    last_ = out;
    return out;
}

} // namespace kmodd::service
