// SPDX-License-Identifier: LGPL-2.1-or-later
// Load, Unload, ListDeps, ListLoaded and GetModuleInfo over an index snapshot.
#include "service/module_service.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string_view>
#include <utility>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "elf/module_file.hpp"
#include "index/names.hpp"
#include "loader/loader.hpp"
#include "loader/resolver.hpp"
#include "service/load_diagnosis.hpp"
#include "service/request_support.hpp"

namespace kmodd::service {

using base::quoted;

namespace {

std::vector<std::string> split_list(std::string_view text)
{
    std::vector<std::string> out;
    for (std::string_view piece : base::split_tokens(text, ","))
        out.emplace_back(base::trim(piece));
    std::erase_if(out, [](const std::string& piece) { return piece.empty(); });
    return out;
}

ParameterInfo& parameter_named(std::vector<ParameterInfo>& parameters, std::string_view name)
{
    auto it = std::find_if(parameters.begin(), parameters.end(),
                           [&](const ParameterInfo& p) { return p.name == name; });
    if (it != parameters.end())
        return *it;
    parameters.push_back(ParameterInfo{std::string(name), {}, {}});
    return parameters.back();
}

/// Fills `details` from .modinfo entries in section order, as modinfo reads them: the first
/// value of a single-valued key counts, list keys keep every value.
void fill_details(ModuleDetails& details, const std::vector<elf::ModinfoEntry>& entries)
{
    auto set_once = [](std::string& field, bool& seen, const std::string& value) {
        if (!seen)
            field = value;
        seen = true;
    };
    bool has_version = false, has_description = false, has_license = false, has_vermagic = false,
         has_srcversion = false, has_signer = false;
    for (const elf::ModinfoEntry& entry : entries) {
        const std::string& key = entry.key;
        const std::string& value = entry.value;
        if (key == "version") {
            set_once(details.version, has_version, value);
        } else if (key == "description") {
            set_once(details.description, has_description, value);
        } else if (key == "author") {
            details.authors.push_back(value);
        } else if (key == "license") {
            set_once(details.license, has_license, value);
        } else if (key == "alias") {
            details.aliases.push_back(value);
        } else if (key == "depends") {
            for (std::string& dep : split_list(value))
                details.depends.push_back(std::move(dep));
        } else if (key == "softdep") {
            details.softdeps.push_back(value);
        } else if (key == "firmware") {
            details.firmware.push_back(value);
        } else if (key == "vermagic") {
            set_once(details.vermagic, has_vermagic, value);
        } else if (key == "srcversion") {
            set_once(details.srcversion, has_srcversion, value);
        } else if (key == "intree") {
            details.intree = value == "Y";
        } else if (key == "signer") {
            set_once(details.signer, has_signer, value);
        } else if (key == "parm" || key == "parmtype") {
            // "name:text"; a parameter appears where its first parm or parmtype line is.
            size_t colon = value.find(':');
            std::string_view param_name = std::string_view(value).substr(0, colon);
            std::string text = colon == std::string::npos ? std::string() : value.substr(colon + 1);
            ParameterInfo& param = parameter_named(details.parameters, param_name);
            (key == "parm" ? param.description : param.type) = std::move(text);
        }
    }
}

/// The entries of `module` in a modules.builtin.modinfo text ("module.key=value\0...").
std::vector<elf::ModinfoEntry> builtin_entries(std::string_view text, const std::string& module)
{
    std::vector<elf::ModinfoEntry> entries;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\0', pos);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view item = text.substr(pos, end - pos);
        pos = end + 1;
        size_t dot = item.find('.');
        if (dot == std::string_view::npos ||
            index::normalize_modname(item.substr(0, dot)) != module)
            continue;
        std::string_view rest = item.substr(dot + 1);
        size_t eq = rest.find('=');
        if (eq == std::string_view::npos)
            entries.push_back(elf::ModinfoEntry{std::string(rest), {}});
        else
            entries.push_back(elf::ModinfoEntry{std::string(rest.substr(0, eq)),
                                                std::string(rest.substr(eq + 1))});
    }
    return entries;
}

} // namespace

IndexSnapshot::IndexSnapshot(std::string release, uint64_t generation,
                             depmod::ModuleDatabase database, loader::ModprobeConfig config,
                             index::Diagnostics diagnostics)
    : release_(std::move(release)), generation_(generation), database_(std::move(database)),
      config_(std::move(config)), diagnostics_(std::move(diagnostics))
{
}

base::Result<std::shared_ptr<const IndexSnapshot>> IndexSnapshot::open(const Options& options)
{
    auto database = depmod::ModuleDatabase::open(options.module_dir);
    if (!database)
        return base::Unexpected(database.error());

    index::Diagnostics diagnostics;
    std::string cmdline;
    if (!options.cmdline_path.empty()) {
        if (auto text = base::read_file(AT_FDCWD, options.cmdline_path))
            cmdline = std::move(*text);
        else
            diagnostics.push_back(
                {index::Diagnostic::Level::Warning,
                 "cannot read the kernel command line: " + text.error().message + ", ignoring"});
    }
    auto config = loader::ModprobeConfig::load(options.config_paths.empty()
                                                   ? loader::ModprobeConfig::default_paths()
                                                   : options.config_paths,
                                               options.module_dir, cmdline, diagnostics);
    // The constructor is private, so make_shared cannot reach it.
    auto snapshot = std::shared_ptr<IndexSnapshot>(
        new IndexSnapshot(options.release, options.generation, std::move(*database),
                          std::move(config), std::move(diagnostics)));
    snapshot->unusable_ = options.unusable;
    return std::shared_ptr<const IndexSnapshot>(std::move(snapshot));
}

ModuleService::ModuleService(sys::Kernel& kernel, loader::StateStore* state)
    : kernel_(kernel), state_(state)
{
    copy_records();
}

void ModuleService::copy_records()
{
    std::map<std::string, loader::Record, std::less<>> records;
    std::string problem;
    if (state_ != nullptr) {
        records = state_->records();
        if (state_->unsaved())
            problem = state_->unsaved()->message;
    }
    std::lock_guard lock(records_mutex_);
    records_ = std::move(records);
    records_problem_ = std::move(problem);
}

std::string ModuleService::records_problem() const
{
    std::lock_guard lock(records_mutex_);
    return records_problem_;
}

void ModuleService::note_start()
{
    std::set<std::string, std::less<>> names;
    if (auto loaded = kernel_.loaded_modules()) {
        for (const sys::LoadedModule& module : *loaded)
            names.insert(module.name);
    }
    std::lock_guard lock(records_mutex_);
    loaded_at_start_ = std::move(names);
    start_usec_ = loader::realtime_usec();
}

RequestResult<std::vector<std::string>> ModuleService::load(const IndexSnapshot& snapshot,
                                                            const std::string& name,
                                                            const std::string& params,
                                                            loader::Origin origin,
                                                            const loader::Provenance& provenance)
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    if (params.find_first_of(std::string_view("\n\0", 2)) != std::string::npos)
        return fail(Failure::InvalidName, "Invalid parameters for " + quoted(name) +
                                              ": they contain a newline or a NUL character");

    LoadOutcome outcome;
    outcome.module = index::normalize_modname(name);
    auto loaded = load_noting(snapshot, name, params, origin, provenance, outcome);
    // What is kept stays small whatever the callers send (up to 512 names are kept).
    constexpr size_t kMaxKeptText = 4096;
    outcome.params = params.substr(0, kMaxKeptText);
    outcome.time_usec = loader::realtime_usec();
    outcome.loaded = loaded.has_value();
    if (loaded) {
        outcome.inserted = *loaded;
    } else {
        outcome.kind = loaded.error().kind;
        outcome.message = loaded.error().message.substr(0, kMaxKeptText);
    }
    remember(std::move(outcome));
    return loaded;
}

RequestResult<std::vector<std::string>>
ModuleService::load_noting(const IndexSnapshot& snapshot, const std::string& name,
                           const std::string& params, loader::Origin origin,
                           const loader::Provenance& provenance, LoadOutcome& outcome)
{
    std::lock_guard change(change_mutex_);
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    auto modules = find_modules(resolver, snapshot, name);
    if (!modules)
        return tl::unexpected(std::move(modules.error()));

    if (state_ != nullptr)
        state_->flush(); // a write that failed before is retried with this change
    loader::Loader loader(resolver, kernel_, state_);
    loader::LoadRequest request;
    request.name = name;
    request.params = params;
    request.origin = origin;
    request.provenance = provenance;
    auto report = loader.load(request);
    // A failed load may have recorded and then forgotten modules: copy in any case.
    copy_records();
    if (!report) {
        RequestError error{Failure::Failed, as_sentence(report.error().message),
                           report.error().code};
        // The kernel refused an insertion: name its cause and the fix.
        if (const auto& failed = loader.insert_failure();
            failed && failed->code == report.error().code) {
            Diagnosis diagnosis = diagnose_failed_load(*failed, snapshot, kernel_);
            outcome.diagnosis_usec = diagnosis.usec;
            error.kind = diagnosis.kind;
            error.message = with_kernel_messages(std::move(error.message), failed->kernel_messages);
            if (!diagnosis.cause.empty())
                error.message += ". Cause: " + diagnosis.cause;
            if (!diagnosis.fix.empty())
                error.message += ". Fix: " + diagnosis.fix;
            outcome.cause = diagnosis.cause;
            outcome.fix = diagnosis.fix;
            outcome.failed_module = failed->module;
            outcome.file = failed->path;
            outcome.code = failed->code;
            outcome.kernel_messages = failed->kernel_messages;
        }
        return tl::unexpected(std::move(error));
    }
    outcome.warnings = load_warnings(*report, kernel_);
    if (report->blacklisted) {
        std::string names;
        for (const loader::Module* module : *modules)
            names += (names.empty() ? "" : ", ") + module->name;
        return fail(Failure::Blacklisted,
                    "Module " + quoted(name) + " is blacklisted (it resolves to " + names + ")");
    }
    return std::move(report->inserted);
}

void ModuleService::remember(LoadOutcome outcome)
{
    // Bounded: a long-running kmodd asked for many names keeps the latest.
    constexpr size_t kMaxOutcomes = 512;
    std::lock_guard lock(outcomes_mutex_);
    if (outcomes_.size() >= kMaxOutcomes && !outcomes_.contains(outcome.module)) {
        auto oldest =
            std::min_element(outcomes_.begin(), outcomes_.end(), [](const auto& a, const auto& b) {
                return a.second.time_usec < b.second.time_usec;
            });
        outcomes_.erase(oldest);
    }
    std::string key = outcome.module;
    outcomes_.insert_or_assign(std::move(key), std::move(outcome));
}

RequestResult<LoadOutcome> ModuleService::diagnose(const std::string& name) const
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    std::lock_guard lock(outcomes_mutex_);
    auto it = outcomes_.find(index::normalize_modname(name));
    if (it == outcomes_.end())
        return fail(Failure::NotFound,
                    "kmodd has not been asked to load " + quoted(name) + " since it started");
    return it->second;
}

RequestResult<std::vector<std::string>> ModuleService::unload(const IndexSnapshot& snapshot,
                                                              const std::string& name)
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));

    std::lock_guard change(change_mutex_);
    return unload_locked(snapshot, name, false);
}

RequestResult<std::vector<std::string>> ModuleService::plan_unload(const IndexSnapshot& snapshot,
                                                                   const std::string& name)
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    std::lock_guard change(change_mutex_);
    return unload_locked(snapshot, name, true);
}

RequestResult<std::vector<std::string>>
ModuleService::unload_locked(const IndexSnapshot& snapshot, const std::string& name, bool dry_run)
{
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    auto modules = find_indexed_modules(resolver, snapshot, name);
    if (!modules)
        return tl::unexpected(std::move(modules.error()));
    // The loader passes over a module that is not loaded; a request for one is NotFound.
    // Builtin modules go on to the loader, which says why they cannot be unloaded.
    bool is_present = std::any_of(modules->begin(), modules->end(), [&](loader::Module* m) {
        return resolver.is_builtin(*m) ||
               kernel_.module_state(m->name) != sys::ModuleState::NotLoaded;
    });
    if (!is_present)
        return fail(Failure::NotFound, "Module " + quoted(name) + " is not loaded");

    if (state_ != nullptr && !dry_run)
        state_->flush(); // a write that failed before is retried with this change
    loader::Loader loader(resolver, kernel_, state_);
    loader::UnloadRequest request;
    request.name = name;
    request.dry_run = dry_run;
    request.plan_cascade = dry_run;
    auto report = loader.unload(request);
    if (!dry_run)
        copy_records();
    if (report)
        return std::move(report->removed);

    const base::Error& error = report.error();
    std::string message = as_sentence(error.message);
    // EBUSY is the loader's own "in use" check ("module 'x' is in use by: y") unless it
    // comes from the kernel, which the loader reports as "cannot unload 'x': ..." and which
    // then means "not live" (still coming or already going).
    bool is_loader_busy = error.code == EBUSY && !error.message.starts_with("cannot unload ");
    if (error.code == EWOULDBLOCK || error.code == EAGAIN || is_loader_busy)
        return fail(Failure::InUse, std::move(message));
    if (error.code == ENOENT)
        return fail(Failure::NotFound, std::move(message));
    return fail(Failure::Failed, std::move(message));
}

RequestResult<std::vector<std::string>> ModuleService::list_deps(const IndexSnapshot& snapshot,
                                                                 const std::string& name) const
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    auto modules = find_modules(resolver, snapshot, name);
    if (!modules)
        return tl::unexpected(std::move(modules.error()));
    // modprobe -D: the plan of every module the lookup gives, one after the other, with the
    // repetitions kmod prints (a softdep can list a module again after its first insmod).
    std::vector<std::string> names;
    for (loader::Module* target : *modules) {
        for (const loader::ProbeStep& step : resolver.probe_list(target, {}, "")) {
            if (step.kind != loader::ProbeStep::Kind::Missing)
                names.push_back(step.module->name);
        }
    }
    return names;
}

RequestResult<ModuleDetails> ModuleService::module_info(const IndexSnapshot& snapshot,
                                                        const std::string& name) const
{
    if (auto invalid = check_name(name))
        return tl::unexpected(std::move(*invalid));
    loader::Resolver resolver(snapshot.database(), snapshot.config());
    std::vector<loader::Module*> modules = resolver.lookup(name);
    if (modules.empty())
        return fail(Failure::NotFound, not_found_message(snapshot, name));
    loader::Module& module = *modules.front();
    resolver.dependencies(module);

    ModuleDetails details;
    details.name = module.name;
    if (module.path) {
        details.path = *module.path;
        struct stat st {};
        auto info = elf::load_module_file(AT_FDCWD, details.path, st);
        if (!info)
            return fail(Failure::Failed, "Cannot read module " + quoted(module.name) + " from '" +
                                             details.path + "': " + info.error().message);
        fill_details(details, info->modinfo);
        return details;
    }
    if (!resolver.is_builtin(module))
        return fail(Failure::NotFound, not_found_message(snapshot, name));

    details.builtin = true;
    const std::string path = snapshot.database().module_dir() + "/modules.builtin.modinfo";
    auto text = base::read_file(AT_FDCWD, path);
    if (!text) {
        // An older kernel has no modules.builtin.modinfo: a builtin module then shows its
        // name only.
        if (text.error().code == ENOENT)
            return details;
        return fail(Failure::Failed, "Cannot read the modinfo of builtin module " +
                                         quoted(module.name) + ": " + text.error().message);
    }
    fill_details(details, builtin_entries(*text, module.name));
    return details;
}

RequestResult<std::vector<LoadedEntry>> ModuleService::list_loaded() const
{
    auto loaded = kernel_.loaded_modules();
    if (!loaded)
        return fail(Failure::Failed, "Cannot list the loaded modules: " + loaded.error().message);

    std::vector<LoadedEntry> entries;
    entries.reserve(loaded->size());
    std::lock_guard lock(records_mutex_);
    for (sys::LoadedModule& module : *loaded) {
        LoadedEntry entry;
        entry.name = std::move(module.name);
        entry.size = module.size;
        entry.refcount = module.refcount;
        entry.holders = std::move(module.holders);
        std::sort(entry.holders.begin(), entry.holders.end());
        if (auto it = records_.find(entry.name); it != records_.end())
            entry.origin = it->second.origin;
        entries.push_back(std::move(entry));
    }
    return entries;
}

} // namespace kmodd::service
