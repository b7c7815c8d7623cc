// SPDX-License-Identifier: LGPL-2.1-or-later
// Carrying out load and unload plans on a kernel, recording who loaded what.
#include "loader/loader.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "base/file.hpp"
#include "base/strings.hpp"

namespace kmodd::loader {

namespace {

/// `provenance` with the time of now when it has none (a load is recorded when it happens).
Provenance stamped(Provenance provenance)
{
    if (provenance.usec == 0)
        provenance.usec = realtime_usec();
    return provenance;
}

} // namespace

int command_depth()
{
    const char* value = std::getenv(kCommandDepthVariable);
    if (value == nullptr)
        return 0;
    return std::atoi(value);
}

base::Result<void> run_shell_command(const std::string& command, const std::string& module,
                                     const std::string& options)
{
    std::string expanded = command;
    for (size_t pos = expanded.find("$CMDLINE_OPTS"); pos != std::string::npos;
         pos = expanded.find("$CMDLINE_OPTS", pos + options.size()))
        expanded.replace(pos, 13, options);
    pid_t pid = ::fork();
    if (pid < 0)
        return base::errno_error(errno, "cannot run the command for " + base::quoted(module));
    if (pid == 0) {
        ::setenv("MODPROBE_MODULE", module.c_str(), 1);
        // Install commands that call modprobe again can loop through each other; each level
        // of nesting is counted so that a modprobe deep in such a loop refuses to go on.
        ::setenv(kCommandDepthVariable, std::to_string(command_depth() + 1).c_str(), 1);
        ::execl("/bin/sh", "sh", "-c", expanded.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return base::errno_error(errno,
                                     "cannot wait for the command of " + base::quoted(module));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return {};
    std::string how = WIFEXITED(status)
                          ? "exited with status " + std::to_string(WEXITSTATUS(status))
                          : "was killed by signal " + std::to_string(WTERMSIG(status));
    return base::make_error(EINVAL, "the command for " + base::quoted(module) + " (" + expanded +
                                        ") " + how);
}

Loader::Loader(Resolver& resolver, sys::Kernel& kernel, StateStore* state,
               CommandRunner run_command)
    : resolver_(resolver), kernel_(kernel), state_(state), run_command_(std::move(run_command))
{
}

bool Loader::is_in_kernel(const Module& module) const
{
    if (resolver_.is_builtin(module))
        return true;
    return kernel_.module_state(module.name) == sys::ModuleState::Live;
}

base::Result<void> Loader::run_step(const ProbeStep& step, const LoadRequest& request,
                                    LoadReport& report)
{
    Module& module = *step.module;
    switch (step.kind) {
    case ProbeStep::Kind::Builtin:
        return {};
    case ProbeStep::Kind::Missing:
        return base::make_error(ENOENT, "module " + base::quoted(module.name) + " not found in " +
                                            resolver_.database().module_dir());
    case ProbeStep::Kind::Install: {
        if (request.dry_run)
            return {};
        auto ran = run_command_(*module.install_command, module.name, step.options);
        if (!ran)
            return ran;
        report.inserted.push_back(module.name);
        return {};
    }
    case ProbeStep::Kind::Insert:
        break;
    }
    if (request.dry_run)
        return {};
    auto inserted = request.force.any()
                        ? kernel_.insert_module_forcing(*module.path, step.options, request.force)
                        : kernel_.insert_module(*module.path, step.options);
    if (!inserted) {
        insert_failure_ = InsertFailure{module.name, *module.path, step.options,
                                        inserted.error().code, kernel_.insert_messages()};
        return inserted;
    }
    report.inserted.push_back(module.name);
    return {};
}

void Loader::roll_back(LoadReport& report, size_t from)
{
    for (size_t i = report.inserted.size(); i > from; --i) {
        const std::string& name = report.inserted[i - 1];
        if (kernel_.remove_module(name) && state_ != nullptr)
            state_->forget(name);
    }
    report.inserted.resize(from);
}

void Loader::record_plan(const Module& target, const std::vector<ProbeStep>& steps,
                         const LoadReport& report, const LoadRequest& request)
{
    const Provenance provenance = stamped(request.provenance);
    auto is_inserted = [&](const std::string& name) {
        return std::find(report.inserted.begin(), report.inserted.end(), name) !=
               report.inserted.end();
    };
    if (!resolver_.is_builtin(target)) {
        const bool is_new = is_inserted(target.name);
        if (request.origin == Origin::Autoload)
            state_->record_autoload(target.name, provenance, is_new);
        else
            state_->record_explicit(target.name, provenance, is_new);
    }
    // Everything else in the plan is needed by the target: what this call inserted is a new
    // dependency record, what was already there gains the target as a user.
    for (const ProbeStep& step : steps) {
        const std::string& name = step.module->name;
        if (name == target.name || resolver_.is_builtin(*step.module))
            continue;
        state_->record_dependency(name, target.name, is_inserted(name), provenance.usec);
    }
}

bool Loader::is_still_needed(const std::string& module, const std::string& leaving)
{
    const Record* record = state_->record_of(module);
    if (record == nullptr || record->origin != Origin::Dependency)
        return true; // a user asked for it, or kmodd did not load it: it stays
    std::vector<std::string> users(record->needed_by.begin(), record->needed_by.end());
    bool needed = false;
    for (const std::string& user : users) {
        // Users that are gone (unloaded by hand, or this one) no longer count.
        if (user == leaving || kernel_.module_state(user) != sys::ModuleState::Live) {
            needed = state_->release(module, user);
        } else {
            needed = true;
        }
    }
    return needed || !state_->record_of(module)->needed_by.empty();
}

base::Result<ModuleFile> find_module_file(Resolver& resolver, const std::string& argument)
{
    const std::string path = base::absolute_from_cwd(argument);
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return base::make_error(errno,
                                std::string(kModuleFileError) + path + ": " + std::strerror(errno));
    return ModuleFile{resolver.module_from_path(path), S_ISREG(st.st_mode)};
}

base::Result<std::vector<Module*>> Loader::find_modules(const std::string& name, bool may_be_path)
{
    if (may_be_path && is_module_path_argument(name)) {
        auto file = find_module_file(resolver_, name);
        if (!file)
            return base::Unexpected(file.error());
        if (!file->is_regular_file)
            return base::make_error(EINVAL, std::string(kModuleFileError) + *file->module->path +
                                                ": not a regular file");
        return std::vector<Module*>{file->module};
    }
    std::string why;
    if (!is_valid_module_request(name, &why))
        return base::make_error(EINVAL, "invalid module name " + base::quoted(name) + ": " + why);
    std::vector<Module*> modules = resolver_.lookup(name);
    if (modules.empty())
        return base::make_error(ENOENT, "module " + base::quoted(name) + " not found in " +
                                            resolver_.database().module_dir());
    return modules;
}

base::Result<LoadReport> Loader::load(const LoadRequest& request,
                                      const std::function<void(const ProbeStep&)>& on_step)
{
    insert_failure_.reset();
    auto found = find_modules(request.name, request.name_may_be_path);
    if (!found)
        return base::Unexpected(found.error());
    const std::vector<Module*>& modules = *found;

    LoadReport report;
    size_t blacklisted = 0;
    // An alias may match several modules (a CPU's modalias matches a dozen): as in kmod and
    // udev, each is probed on its own, and one that fails takes back only what it inserted.
    std::optional<int> failure_code;
    std::vector<std::string> failures;
    for (Module* target : modules) {
        size_t plan_start = report.inserted.size();
        if (!request.dry_run && is_in_kernel(*target)) {
            if (request.first_time)
                return base::make_error(EEXIST, "module " + base::quoted(target->name) +
                                                    " is already loaded");
            if (state_ != nullptr && !resolver_.is_builtin(*target) &&
                request.origin != Origin::Autoload)
                state_->record_explicit(target->name, stamped(request.provenance));
            continue;
        }
        if (auto cycle = resolver_.find_dependency_cycle(*target); !cycle.empty()) {
            std::string path;
            for (size_t i = 0; i < cycle.size(); ++i)
                path += (i ? " -> " : "") + cycle[i];
            return base::make_error(ELOOP, "cannot load " + base::quoted(request.name) +
                                               ": dependency cycle in modules.dep: " + path);
        }
        ProbeFlags flags{request.ignore_commands, request.use_blacklist};
        std::vector<ProbeStep> steps = resolver_.probe_list(target, flags, request.params);
        if (steps.empty()) {
            ++blacklisted;
            continue;
        }
        bool has_failed = false;
        for (const ProbeStep& step : steps) {
            bool live = !request.dry_run && is_in_kernel(*step.module);
            if (live) {
                if (step.is_target && request.first_time) {
                    roll_back(report);
                    return base::make_error(EEXIST, "module " + base::quoted(step.module->name) +
                                                        " is already loaded");
                }
                continue;
            }
            if (on_step)
                on_step(step);
            report.steps.push_back(step);
            auto ran = run_step(step, request, report);
            if (ran)
                continue;
            // Someone else loaded it in the meantime: that is success.
            if (ran.error().code == EEXIST && !(step.is_target && request.first_time))
                continue;
            if (!step.is_required)
                continue; // a softdep that failed does not fail the load, as in kmod
            std::vector<std::string> undone(report.inserted.begin() +
                                                static_cast<std::ptrdiff_t>(plan_start),
                                            report.inserted.end());
            roll_back(report, plan_start);
            std::string message = ran.error().message;
            if (!undone.empty())
                message += " (removed again: " + base::join(undone, ", ") + ")";
            failures.push_back(std::move(message));
            if (!failure_code)
                failure_code = ran.error().code;
            has_failed = true;
            break;
        }
        if (has_failed)
            continue;
        if (state_ != nullptr && !request.dry_run)
            record_plan(*target, steps, report, request);
    }
    if (failure_code) {
        // The other matches stay loaded, as with kmod; say which.
        std::string message = "cannot load " + base::quoted(request.name) + ": " + failures[0];
        for (size_t i = 1; i < failures.size(); ++i)
            message += "; " + failures[i];
        if (!report.inserted.empty())
            message += " (loaded all the same: " + base::join(report.inserted, ", ") + ")";
        return base::make_error(*failure_code, message);
    }
    report.blacklisted = blacklisted == modules.size();
    return report;
}

base::Result<void> Loader::remove_waiting(const std::string& name, const UnloadRequest& request)
{
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(request.wait_ms);
    std::chrono::milliseconds delay{0};
    for (;;) {
        auto removed =
            request.force ? kernel_.force_remove_module(name) : kernel_.remove_module(name);
        if (removed || request.wait_ms == 0 || removed.error().code != EWOULDBLOCK)
            return removed;
        // As kmod: 1, 2, 4... ms, never past the deadline.
        const Clock::time_point now = Clock::now();
        if (now >= deadline)
            return removed;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        delay = delay.count() == 0 ? std::chrono::milliseconds(1) : delay * 2;
        while (delay > left && delay.count() > 1)
            delay /= 2;
        std::this_thread::sleep_for(delay > left ? left : delay);
    }
}

void Loader::simulate_cascade(const std::vector<std::string>& candidates,
                              std::vector<std::string>& removed) const
{
    auto loaded = kernel_.loaded_modules();
    if (!loaded)
        return;
    std::map<std::string, sys::LoadedModule, std::less<>> view;
    for (sys::LoadedModule& module : *loaded)
        view.emplace(module.name, std::move(module));
    std::set<std::string, std::less<>> gone;
    // A module that goes stops holding the modules it used.
    auto take = [&](const std::string& name) {
        gone.insert(name);
        for (auto& [other, entry] : view) {
            auto it = std::find(entry.holders.begin(), entry.holders.end(), name);
            if (it == entry.holders.end())
                continue;
            entry.holders.erase(it);
            if (entry.refcount > 0)
                --entry.refcount;
        }
    };
    for (const std::string& name : removed)
        take(name);
    // As the real cascade: what kmodd loaded only as a dependency, that no module still
    // there needs and that nothing holds.
    auto is_needed = [&](const std::string& name) {
        const Record* record = state_->record_of(name);
        if (record == nullptr || record->origin != Origin::Dependency)
            return true;
        return std::any_of(
            record->needed_by.begin(), record->needed_by.end(), [&](const std::string& user) {
                return !gone.contains(user) && kernel_.module_state(user) == sys::ModuleState::Live;
            });
    };
    for (bool removed_any = true; removed_any;) {
        removed_any = false;
        for (const std::string& name : candidates) {
            if (gone.contains(name))
                continue;
            auto it = view.find(name);
            if (it == view.end() || it->second.refcount > 0 || !it->second.holders.empty())
                continue;
            if (state_ != nullptr && is_needed(name))
                continue;
            removed.push_back(name);
            take(name);
            removed_any = true;
        }
    }
}

base::Result<UnloadReport> Loader::unload(const UnloadRequest& request)
{
    auto found = find_modules(request.name);
    if (!found)
        return base::Unexpected(found.error());
    const std::vector<Module*>& modules = *found;
    UnloadReport report;
    for (Module* target : modules) {
        if (resolver_.is_builtin(*target))
            return base::make_error(EPERM, "module " + base::quoted(target->name) +
                                               " is built into the kernel and cannot be unloaded");
        auto entry = kernel_.loaded_module(target->name);
        if (!entry) {
            if (request.first_time)
                return base::make_error(ENOENT,
                                        "module " + base::quoted(target->name) + " is not loaded");
            continue;
        }
        if (request.remove_holders && !entry->holders.empty()) {
            // modprobe -r --remove-holders: the modules holding it go first, each with theirs.
            for (const std::string& holder : entry->holders) {
                UnloadRequest inner = request;
                inner.name = holder;
                inner.first_time = false;
                auto removed = unload(inner);
                if (!removed)
                    return base::Unexpected(removed.error());
                report.removed.insert(report.removed.end(), removed->removed.begin(),
                                      removed->removed.end());
            }
            if (request.dry_run) {
                // Nothing went: count the holders as gone, as they would be.
                entry->refcount -= static_cast<int>(entry->holders.size());
                entry->holders.clear();
            } else {
                entry = kernel_.loaded_module(target->name);
                if (!entry)
                    continue;
            }
        }
        // With --wait the kernel is asked until the module is free; no check first.
        if (request.wait_ms == 0 && (entry->refcount > 0 || !entry->holders.empty())) {
            std::string message = "module " + base::quoted(target->name) + " is in use";
            if (!entry->holders.empty()) {
                message += " by: ";
                for (size_t i = 0; i < entry->holders.size(); ++i)
                    message += (i ? ", " : "") + entry->holders[i];
            }
            return base::make_error(EBUSY, message);
        }

        // What was loaded with it: its dependencies and softdeps, users before providers.
        ProbeFlags flags{request.ignore_commands, false};
        std::vector<ProbeStep> steps = resolver_.probe_list(target, flags, "");
        std::vector<std::string> candidates;
        std::set<std::string> seen{target->name};
        for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
            if (seen.insert(it->module->name).second)
                candidates.push_back(it->module->name);
        }

        if (request.dry_run) {
            report.removed.push_back(target->name);
            if (request.plan_cascade)
                simulate_cascade(candidates, report.removed);
            continue;
        }
        const std::string* remove_command = nullptr;
        if (!request.ignore_commands) {
            if (const auto* command = resolver_.config().remove_command_for(target->name))
                remove_command = &command->command;
        }
        base::Result<void> removed = remove_command != nullptr
                                         ? run_command_(*remove_command, target->name, "")
                                         : remove_waiting(target->name, request);
        if (!removed)
            return base::make_error(removed.error().code, "cannot unload " +
                                                              base::quoted(target->name) + ": " +
                                                              removed.error().message);
        report.removed.push_back(target->name);
        if (state_ != nullptr)
            state_->forget(target->name);

        // Removing one module can free another listed before it (a softdep that used a
        // dependency): repeat until a pass removes nothing.
        for (bool removed_any = true; removed_any;) {
            removed_any = false;
            for (const std::string& name : candidates) {
                auto dep = kernel_.loaded_module(name);
                if (!dep || dep->refcount > 0 || !dep->holders.empty())
                    continue;
                if (state_ != nullptr && is_still_needed(name, target->name))
                    continue;
                if (kernel_.remove_module(name)) {
                    report.removed.push_back(name);
                    removed_any = true;
                    if (state_ != nullptr)
                        state_->forget(name);
                }
            }
        }
    }
    return report;
}

} // namespace kmodd::loader
