// SPDX-License-Identifier: LGPL-2.1-or-later
// Every kernel version's index, updated from batches of changes and written to disk.
#include "service/index_service.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/file.hpp"
#include "depmod/output_state.hpp"
#include "index/names.hpp"

namespace kmodd::service {

namespace {

/// Whether the directory `path` (relative to `parent_fd`) holds a module file (or a link to
/// one), at most `depth` levels down. Left out as depmod leaves them out: `build` and `source`
/// (links to the kernel's sources) and hidden entries.
bool holds_module_file(int parent_fd, const std::string& path, int depth)
{
    auto dir = base::open_directory(parent_fd, path);
    if (!dir)
        return false;
    base::DirectoryReader reader(dir->get());
    base::DirectoryReader::Entry entry{};
    while (reader.next(entry)) {
        if (entry.name.starts_with('.') || entry.name == "build" || entry.name == "source")
            continue;
        const std::string name(entry.name);
        struct stat st {};
        if (::fstatat(dir->get(), name.c_str(), &st, 0) != 0)
            continue;
        if (S_ISREG(st.st_mode) && index::has_module_extension(name))
            return true;
        if (S_ISDIR(st.st_mode) && depth > 0 && holds_module_file(dir->get(), name, depth - 1))
            return true;
    }
    return false;
}

bool exists(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// Drops the paths that a changed directory above them already covers (the engine re-walks
/// a directory path), so a burst into a new directory costs one walk.
std::vector<std::string> without_covered(const std::set<std::string>& paths,
                                         const std::string& module_dir)
{
    std::vector<std::string> kept;
    kept.reserve(paths.size());
    for (const std::string& path : paths) {
        bool is_covered = false;
        for (size_t slash = path.rfind('/');
             slash != std::string::npos && slash > module_dir.size();
             slash = path.rfind('/', slash - 1)) {
            if (paths.contains(path.substr(0, slash))) {
                is_covered = true;
                break;
            }
        }
        if (!is_covered)
            kept.push_back(path);
    }
    return kept;
}

} // namespace

bool is_kernel_release_name(std::string_view name)
{
    return !name.empty() && name.size() <= 255 && name.find('/') == std::string_view::npos &&
           name != "." && name != "..";
}

IndexService::IndexService(ServiceOptions options) : options_(std::move(options))
{
    std::string root = options_.base_dir;
    while (!root.empty() && root.back() == '/')
        root.pop_back();
    modules_dir_ = root + "/lib/modules";
}

IndexService::~IndexService() = default;

bool IndexService::is_kernel_dir(const std::string& version) const
{
    const std::string dir = modules_dir_ + "/" + version;
    // What the kernel's package installs, or any module file, as kmod's depmod indexes any
    // tree it is given. modules.dep is left out on purpose: a stale one in an uninstalled
    // kernel's leftover dir must not make us write there.
    if (is_directory(dir + "/kernel") || exists(dir + "/modules.order") ||
        exists(dir + "/modules.builtin"))
        return true;
    // Deep enough for any tree depmod is given; bounds a walk through looping links.
    constexpr int kMaxDepth = 16;
    return holds_module_file(AT_FDCWD, dir, kMaxDepth);
}

std::vector<std::string> IndexService::find_kernel_dirs() const
{
    std::vector<std::string> found;
    if (DIR* stream = ::opendir(modules_dir_.c_str())) {
        while (const dirent* entry = ::readdir(stream)) {
            std::string name = entry->d_name;
            if (name != "." && name != ".." && is_directory(modules_dir_ + "/" + name) &&
                is_kernel_dir(name))
                found.push_back(std::move(name));
        }
        ::closedir(stream);
    }
    std::sort(found.begin(), found.end());
    return found;
}

depmod::DepmodOptions IndexService::depmod_options(const std::string& version) const
{
    depmod::DepmodOptions options;
    options.base_dir = options_.base_dir;
    options.kernel_version = version;
    options.config_paths = options_.config_paths;
    options.format = options_.format;
    options.durable = options_.durable;
    options.parse_threads = options_.parse_threads;
    if (!options_.cache_dir.empty())
        options.parse_cache = depmod::parse_cache_path(options_.cache_dir, options);
    return options;
}

std::string IndexService::output_state_path(const std::string& version) const
{
    const depmod::DepmodOptions options = depmod_options(version);
    return options.parse_cache.empty() ? std::string()
                                       : depmod::output_state_path(options.parse_cache);
}

std::vector<VersionReport> IndexService::start()
{
    std::vector<VersionReport> reports;
    for (const std::string& version : find_kernel_dirs()) {
        if (auto report = apply_version(version, nullptr, true))
            reports.push_back(std::move(*report));
    }
    return reports;
}

std::vector<VersionReport> IndexService::apply(const ChangeSet& changes)
{
    std::vector<VersionReport> reports;
    if (changes.rescan_all) {
        std::vector<std::string> all = find_kernel_dirs();
        for (const auto& [version, entry] : versions_)
            all.push_back(version);
        std::sort(all.begin(), all.end());
        all.erase(std::unique(all.begin(), all.end()), all.end());
        for (const std::string& version : all) {
            if (auto report = apply_version(version, nullptr, false))
                reports.push_back(std::move(*report));
        }
        return reports;
    }
    for (const auto& [version, version_changes] : changes.versions) {
        if (auto report = apply_version(version, &version_changes, false))
            reports.push_back(std::move(*report));
    }
    return reports;
}

std::optional<VersionReport> IndexService::rebuild(const std::string& version)
{
    uint64_t generation = 0;
    if (auto it = versions_.find(version); it != versions_.end()) {
        generation = it->second.generation;
        versions_.erase(it);
    }
    auto report = apply_version(version, nullptr, false);
    if (auto it = versions_.find(version); it != versions_.end()) {
        it->second.generation += generation;
        if (report && report->action == VersionReport::Action::Written)
            report->generation = it->second.generation;
    }
    return report;
}

std::optional<VersionReport> IndexService::apply_version(const std::string& version,
                                                         const VersionChanges* changes,
                                                         bool is_start)
{
    VersionReport report;
    report.version = version;
    auto it = versions_.find(version);
    if (!is_kernel_release_name(version) || !is_kernel_dir(version)) {
        if (it == versions_.end())
            return std::nullopt;
        versions_.erase(it);
        report.action = VersionReport::Action::Removed;
        return report;
    }

    if (it == versions_.end()) {
        auto engine = depmod::Depmod::create(depmod_options(version), report.diagnostics);
        if (!engine) {
            report.action = VersionReport::Action::Failed;
            report.error = engine.error();
            return report;
        }
        (*engine)->remove_stale_temp_files(report.diagnostics);
        it = versions_.emplace(version, Version{std::move(*engine), 0, false}).first;
        changes = nullptr; // new to us: walk it all
    }
    Version& entry = it->second;
    depmod::Depmod& engine = *entry.engine;

    bool may_change = entry.needs_write;
    report.was_full_walk = changes == nullptr || changes->rescan ||
                           changes->paths.size() > options_.full_walk_threshold;
    if (report.was_full_walk) {
        if (auto scanned = engine.scan(report.diagnostics); !scanned) {
            report.action = VersionReport::Action::Failed;
            report.error = scanned.error();
            report.modules = engine.index().candidate_count();
            return report;
        }
        may_change = true;
    } else {
        for (const std::string& path : without_covered(changes->paths, engine.module_dir())) {
            if (engine.update_path(path, report.diagnostics))
                may_change = true;
        }
    }
    report.modules = engine.index().candidate_count();
    report.generation = entry.generation;

    // Files found current are adopted: their state is saved beside the cache, once it is saved.
    if (is_start)
        engine.finish_cache_save(report.diagnostics);
    if (is_start && outputs_match_disk(entry, report.diagnostics)) {
        report.action = VersionReport::Action::Current;
        return report;
    }
    if (!may_change) {
        report.action = VersionReport::Action::Unchanged;
        return report;
    }
    auto written = engine.write(report.diagnostics);
    if (!written) {
        entry.needs_write = true;
        report.action = VersionReport::Action::Failed;
        report.error = written.error();
        return report;
    }
    entry.needs_write = false;
    report.action = VersionReport::Action::Written;
    report.stats = *written;
    report.generation = ++entry.generation;
    return report;
}

bool IndexService::outputs_match_disk(const Version& entry, index::Diagnostics& diagnostics) const
{
    // The diagnostics of this trial run would repeat those of the write that may follow.
    index::Diagnostics scratch;
    auto outputs = entry.engine->generate(scratch);
    if (!outputs)
        return false;
    for (const depmod::OutputFile& file : *outputs) {
        auto on_disk = base::read_file(AT_FDCWD, entry.engine->output_dir() + "/" + file.name);
        if (!on_disk || *on_disk != file.content)
            return false;
    }
    diagnostics.insert(diagnostics.end(), scratch.begin(), scratch.end());
    // The engine now knows what is on disk: its first write replaces only what changes.
    entry.engine->adopt_as_published(*outputs, scratch);
    return true;
}

std::vector<WatchHints> IndexService::watch_hints() const
{
    std::vector<WatchHints> all;
    for (const auto& [version, entry] : versions_) {
        WatchHints hints;
        hints.version = version;
        for (const index::Candidate* candidate : entry.engine->index().candidates()) {
            if (!candidate->symlink_target.empty())
                hints.links.push_back({candidate->path, candidate->symlink_target});
        }
        hints.external_dirs = entry.engine->index().settings().config.externals;
        all.push_back(std::move(hints));
    }
    return all;
}

std::map<std::string, std::string> IndexService::unusable_modules(const std::string& version) const
{
    std::map<std::string, std::string> unusable;
    auto it = versions_.find(version);
    if (it == versions_.end())
        return unusable;
    for (const index::Candidate* candidate : it->second.engine->index().candidates()) {
        if (!candidate->error.empty())
            unusable.emplace(candidate->name, "'" + candidate->path + "': " + candidate->error);
    }
    return unusable;
}

std::vector<std::string> IndexService::versions() const
{
    std::vector<std::string> names;
    for (const auto& [version, entry] : versions_)
        names.push_back(version);
    return names;
}

const depmod::Depmod* IndexService::engine(const std::string& version) const
{
    auto it = versions_.find(version);
    return it == versions_.end() ? nullptr : it->second.engine.get();
}

} // namespace kmodd::service
