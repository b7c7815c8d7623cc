// SPDX-License-Identifier: LGPL-2.1-or-later
// modprobe's resolution of a name into the steps kmod would take.
#include "loader/resolver.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "index/names.hpp"

namespace kmodd::loader {

namespace {

bool matches(const std::string& pattern, const std::string& text)
{
    return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

} // namespace

Resolver::Resolver(const depmod::ModuleDatabase& database, const ModprobeConfig& config)
    : database_(database), config_(config)
{
}

Module* Resolver::intern(std::string_view name, std::optional<std::string_view> alias)
{
    std::string key(name);
    if (alias) {
        key += '\\';
        key += *alias;
    }
    auto [it, inserted] = modules_.try_emplace(std::move(key));
    if (inserted) {
        it->second = std::make_unique<Module>();
        it->second->name = std::string(name);
        if (alias)
            it->second->alias = std::string(*alias);
    }
    return it->second.get();
}

Module* Resolver::module_by_name(std::string_view name)
{
    return intern(name, std::nullopt);
}

Module* Resolver::module_from_path(const std::string& absolute_path)
{
    // Keyed by the path, which no name or alias key can equal (their keys hold no '/' first).
    auto [it, inserted] = modules_.try_emplace(absolute_path);
    if (inserted) {
        it->second = std::make_unique<Module>();
        it->second->name = index::modname_from_path(absolute_path);
        it->second->path = absolute_path; // dependencies() keeps a path already set
    }
    return it->second.get();
}

bool is_module_path_argument(std::string_view argument)
{
    return argument.starts_with('/') || argument.starts_with("./");
}

const std::vector<Module*>& Resolver::dependencies(Module& module)
{
    if (module.deps_known)
        return module.deps;
    module.deps_known = true;
    auto line = database_.dependency_line(module.name);
    if (!line)
        return module.deps;
    size_t colon = line->find(':');
    if (colon == std::string::npos)
        return module.deps;
    auto absolute = [&](std::string_view rel) {
        if (!rel.empty() && rel[0] == '/')
            return std::string(rel);
        return database_.module_dir() + "/" + std::string(rel);
    };
    if (!module.path)
        module.path = absolute(std::string_view(*line).substr(0, colon));
    // The line lists users before providers; loading goes the other way.
    std::string_view rest = std::string_view(*line).substr(colon + 1);
    std::vector<Module*> deps;
    size_t pos = 0;
    while (pos < rest.size()) {
        size_t start = rest.find_first_not_of(" \t", pos);
        if (start == std::string_view::npos)
            break;
        size_t end = rest.find_first_of(" \t", start);
        if (end == std::string_view::npos)
            end = rest.size();
        std::string_view rel = rest.substr(start, end - start);
        Module* dep = intern(index::modname_from_path(rel), std::nullopt);
        if (!dep->path)
            dep->path = absolute(rel);
        deps.push_back(dep);
        pos = end;
    }
    module.deps.assign(deps.rbegin(), deps.rend());
    return module.deps;
}

std::vector<Module*> Resolver::lookup(std::string_view given)
{
    std::vector<Module*> found;
    auto normalized = index::normalize_alias(given);
    if (!normalized)
        return found;
    const std::string& name = *normalized;

    for (const auto& alias : config_.aliases) {
        if (matches(alias.pattern, name))
            found.push_back(intern(alias.module, alias.pattern));
    }
    if (!found.empty())
        return found;

    if (name.find(':') == std::string::npos && database_.dependency_line(name)) {
        Module* module = intern(name, std::nullopt);
        dependencies(*module);
        return {module};
    }

    if (name.starts_with("symbol:")) {
        if (auto owner = database_.module_for_symbol(std::string_view(name).substr(7)))
            return {intern(*owner, name)};
    }

    for (const auto* commands : {&config_.install_commands, &config_.remove_commands}) {
        for (const auto& command : *commands) {
            if (command.pattern != name)
                continue;
            Module* module = intern(name, std::nullopt);
            if (commands == &config_.install_commands) {
                module->install_known = true;
                module->install_command = &command.command;
            }
            return {module};
        }
    }

    for (const std::string& real : database_.modules_for_alias(name))
        found.push_back(intern(real, name));
    if (!found.empty())
        return found;

    if (database_.is_builtin(name)) {
        Module* module = intern(name, std::nullopt);
        module->is_builtin_hint = true;
        return {module};
    }

    for (const std::string& real : database_.builtin_modules_for_alias(name)) {
        Module* module = intern(real, name);
        module->is_builtin_hint = true;
        found.push_back(module);
    }
    return found;
}

bool Resolver::is_blacklisted(const Module& module) const
{
    return std::find(config_.blacklist.begin(), config_.blacklist.end(), module.name) !=
           config_.blacklist.end();
}

bool Resolver::is_builtin(const Module& module) const
{
    return module.is_builtin_hint || database_.is_builtin(module.name);
}

std::string Resolver::options_for(const Module& module) const
{
    std::string out;
    for (const auto& entry : config_.options) {
        bool applies = entry.name == module.name || (module.alias && entry.name == *module.alias);
        if (!applies || entry.options.empty())
            continue;
        if (!out.empty())
            out += ' ';
        out += entry.options;
    }
    return out;
}

const std::string* Resolver::install_command_for(Module& module) const
{
    if (!module.install_known) {
        module.install_known = true;
        for (const auto& command : config_.install_commands) {
            if (matches(command.pattern, module.name)) {
                module.install_command = &command.command;
                break;
            }
        }
    }
    return module.install_command;
}

std::vector<Module*> Resolver::lookup_softdeps(const std::vector<std::string>& names)
{
    std::vector<Module*> out;
    for (const std::string& name : names) {
        auto found = lookup(name);
        out.insert(out.end(), found.begin(), found.end());
    }
    return out;
}

void Resolver::fill_softdep(Module* module, std::vector<Module*>& list)
{
    std::vector<Module*> pre, post;
    if (const auto* softdep = config_.softdep_for(module->name)) {
        pre = lookup_softdeps(softdep->pre);
        post = lookup_softdeps(softdep->post);
    }
    for (Module* m : pre)
        visit(m, false, false, list);
    list.push_back(module);
    // As in libkmod: a module with softdeps ignores its install command.
    module->ignore_command = !pre.empty() || !post.empty();
    for (Module* m : post)
        visit(m, false, false, list);
}

void Resolver::visit(Module* module, bool required, bool ignore_command, std::vector<Module*>& list)
{
    if (module->visited)
        return;
    module->visited = true;
    probe_visited_.push_back(module);
    // A copy: visiting softdeps may intern modules, but never changes this list.
    const std::vector<Module*> deps = dependencies(*module);
    if (required) {
        module->required = true;
        for (Module* dep : deps) {
            dep->required = true;
            probe_visited_.push_back(dep);
        }
    }
    for (Module* dep : deps)
        fill_softdep(dep, list);
    if (ignore_command) {
        list.push_back(module);
        module->ignore_command = true;
    } else {
        fill_softdep(module, list);
    }
}

std::vector<ProbeStep> Resolver::probe_list(Module* target, const ProbeFlags& flags,
                                            std::string_view extra_options)
{
    std::vector<ProbeStep> steps;
    if ((target->alias || flags.use_blacklist) && is_blacklisted(*target))
        return steps;

    for (Module* m : probe_visited_) {
        m->visited = false;
        m->required = false;
    }
    probe_visited_.clear();

    std::vector<Module*> list;
    visit(target, true, flags.ignore_commands, list);

    steps.reserve(list.size());
    for (Module* m : list) {
        ProbeStep step;
        step.module = m;
        step.is_target = m == target;
        step.is_required = m->required;
        // libkmod joins configured and command-line options with a space, and keeps that
        // space even when there are no command-line options.
        std::string configured = options_for(*m);
        std::string_view extra = step.is_target ? extra_options : std::string_view();
        if (!configured.empty())
            step.options = configured + " " + std::string(extra);
        else
            step.options = std::string(extra);
        const std::string* command = install_command_for(*m);
        if (command != nullptr && !m->ignore_command) {
            step.kind = ProbeStep::Kind::Install;
        } else {
            dependencies(*m);
            if (m->path)
                step.kind = ProbeStep::Kind::Insert;
            else if (is_builtin(*m))
                step.kind = ProbeStep::Kind::Builtin;
            else
                step.kind = ProbeStep::Kind::Missing;
        }
        steps.push_back(std::move(step));
    }
    return steps;
}

std::vector<std::string> Resolver::find_dependency_cycle(Module& module)
{
    // Depth-first over the dependency lines, with the current path on a stack.
    std::vector<std::pair<Module*, size_t>> stack{{&module, 0}};
    std::vector<Module*> done;
    while (!stack.empty()) {
        auto& [current, next] = stack.back();
        const auto& deps = dependencies(*current);
        if (next == deps.size()) {
            done.push_back(current);
            stack.pop_back();
            continue;
        }
        Module* dep = deps[next++];
        if (std::find(done.begin(), done.end(), dep) != done.end())
            continue;
        auto on_path = std::find_if(stack.begin(), stack.end(),
                                    [dep](const auto& frame) { return frame.first == dep; });
        if (on_path != stack.end()) {
            std::vector<std::string> cycle;
            for (auto it = on_path; it != stack.end(); ++it)
                cycle.push_back(it->first->name);
            cycle.push_back(dep->name);
            return cycle;
        }
        stack.emplace_back(dep, 0);
    }
    return {};
}

bool is_valid_module_request(std::string_view text, std::string* why)
{
    auto fail = [&](const char* reason) {
        if (why != nullptr)
            *why = reason;
        return false;
    };
    if (text.empty())
        return fail("the name is empty");
    // Names are also folder names under /sys/module, where these two are no module.
    if (text == "." || text == "..")
        return fail("'.' and '..' are no module names");
    // A modalias may hold a '/' after its "subsystem:" prefix (dmi:...:bd04/01/2014:...).
    size_t slash = text.find('/');
    if (slash != std::string_view::npos && text.find(':') > slash)
        return fail("a path is not a module name; give the module's name");
    bool plain = true;
    for (char c : text) {
        auto b = static_cast<unsigned char>(c);
        if (b <= ' ' || b >= 0x7F)
            return fail("the name contains a blank, a control or a non-ASCII character");
        bool name_char = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '-';
        plain = plain && name_char;
    }
    if (plain && text.size() > 55)
        return fail("a module name has at most 55 characters");
    // kmod's limit (PATH_MAX); a CPU's modalias lists every feature flag and passes 255.
    if (text.size() > kMaxAliasLength)
        return fail("an alias has at most 4095 characters");
    return true;
}

} // namespace kmodd::loader
