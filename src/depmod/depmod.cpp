// SPDX-License-Identifier: LGPL-2.1-or-later
// One depmod run, and the incremental engine the daemon keeps per kernel version.
#include "depmod/depmod.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "base/digest.hpp"
#include "base/file.hpp"
#include "base/strings.hpp"
#include "depmod/output_publisher.hpp"
#include "depmod/output_state.hpp"

namespace kmodd::depmod {

using index::Diagnostic;
using index::Diagnostics;

namespace {

/// At most this many records (and at most one in 16 of the cache's) go into the parse cache's
/// delta instead of a new cache (ParseCache::delta_path()); each run that reads the delta
/// looks their symbols' names up again, and a run writing more rewrites the whole cache.
constexpr size_t kMaxDeltaRecords = 64;

/// "<root>/<directory>/<version>": `directory` is always under `root`, absolute or not (as
/// kmod 34 reads -m).
std::string module_dir_under(const std::string& root, std::string_view directory,
                             const std::string& version)
{
    std::string dir = root;
    while (!dir.empty() && dir.back() == '/')
        dir.pop_back();
    while (directory.starts_with('/'))
        directory.remove_prefix(1);
    while (directory.ends_with('/'))
        directory.remove_suffix(1);
    dir.push_back('/');
    if (!directory.empty())
        dir.append(directory).push_back('/');
    return dir + version;
}

base::Result<void> make_directories(const std::string& path)
{
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/')
            continue;
        std::string part = path.substr(0, pos);
        if (::mkdir(part.c_str(), 0755) < 0 && errno != EEXIST)
            return base::errno_error(errno, "cannot create directory '" + part + "'");
    }
    return {};
}

/// What the output state keeps of `file`.
OutputState::File described(const OutputFile& file)
{
    return {file.name, file.content.size(), content_digest(file.content)};
}

} // namespace

std::string module_dir_of(const DepmodOptions& options)
{
    return module_dir_under(options.base_dir, options.module_directory, options.kernel_version);
}

std::string parse_cache_path(const std::string& cache_dir, const DepmodOptions& options)
{
    const std::string module_dir = module_dir_of(options);
    if (module_dir == "/lib/modules/" + options.kernel_version)
        return cache_dir + "/" + options.kernel_version + "/modules.cache";
    // FNV-1a: a stable name for the tree, not a security measure (the file names it too).
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (char c : module_dir) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    char name[17];
    std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(hash));
    return cache_dir + "/trees/" + name + "/modules.cache";
}

void prune_parse_caches(const std::string& cache_dir)
{
    const std::string trees = cache_dir + "/trees";
    DIR* dir = ::opendir(trees.c_str());
    if (dir == nullptr)
        return;
    std::vector<std::string> gone;
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name == "." || name == "..")
            continue;
        std::string path = trees;
        path.append("/").append(name);
        auto tree = base::read_file(AT_FDCWD, path + "/module-dir");
        struct stat st {};
        if (tree && ::stat(tree->c_str(), &st) != 0 && errno == ENOENT)
            gone.push_back(std::move(path));
    }
    ::closedir(dir);
    for (const auto& path : gone) {
        ::unlink((path + "/modules.cache").c_str());
        ::unlink((path + "/module-dir").c_str());
        ::rmdir(path.c_str());
    }
}

Depmod::Depmod(DepmodOptions options, index::ModuleIndex::Settings settings)
    : options_(std::move(options)), index_(std::move(settings))
{
    outputs_.set_parallel(options_.parallel_outputs);
}

base::Result<std::unique_ptr<Depmod>> Depmod::create(DepmodOptions options,
                                                     Diagnostics& diagnostics)
{
    index::ModuleIndex::Settings settings;
    settings.module_dir = module_dir_of(options);
    settings.symbol_prefix = options.symbol_prefix;
    settings.parse_threads = options.parse_threads;
    settings.config = index::DepmodConfig::load(
        options.config_paths.empty() ? index::DepmodConfig::default_paths() : options.config_paths,
        options.kernel_version, diagnostics);

    index::ResolveOptions resolve;
    resolve.print_unknown = options.print_unknown;
    resolve.verbose = options.verbose;
    // -E wins over -F; either one also brings the symbols the module loader provides.
    const bool use_symvers = !options.module_symvers.empty();
    const std::string& symbol_file = use_symvers ? options.module_symvers : options.system_map;
    if (!symbol_file.empty()) {
        auto text = base::read_file(AT_FDCWD, symbol_file);
        if (!text)
            return base::make_error(text.error().code, "could not load " + symbol_file + ": " +
                                                           std::strerror(text.error().code));
        auto parse = use_symvers ? index::parse_module_symvers : index::parse_system_map;
        settings.vmlinux_symbols = parse(*text, symbol_file, options.symbol_prefix, diagnostics);
        index::add_loader_symbols(settings.vmlinux_symbols);
        resolve.check_symvers = use_symvers;
    } else if (options.print_unknown) {
        diagnostics.push_back({Diagnostic::Level::Warning, "-e needs -E or -F"});
        resolve.print_unknown = false;
    }

    // Only a run that reports CRC mismatches needs the CRC of every import.
    settings.keep_import_crcs = resolve.check_symvers && resolve.print_unknown;
    settings.read_cache_in_place = options.read_cache_in_place;

    // Everything but the tree's own files that a published generation depends on.
    base::Digest64 digest;
    digest.update(KMODD_VERSION)
        .update(uint64_t{options.format.version})
        .update(static_cast<uint64_t>(static_cast<unsigned char>(options.symbol_prefix)))
        .update(uint64_t{resolve.print_unknown} | uint64_t{resolve.check_symvers} << 2 |
                uint64_t{options.warn_dups} << 3 | uint64_t{settings.keep_import_crcs} << 4)
        .update(settings.module_dir)
        .update(options.output_dir)
        .update(options.module_directory)
        .update(symbol_file);
    for (const index::VmlinuxSymbol& symbol : settings.vmlinux_symbols)
        digest.update(symbol.name).update(symbol.crc);
    for (const auto& search : settings.config.searches)
        digest.update(static_cast<uint64_t>(search.kind)).update(search.path);
    for (const auto* list :
         {&settings.config.overrides, &settings.config.externals, &settings.config.excludes}) {
        digest.update(uint64_t{list->size()});
        for (const std::string& item : *list)
            digest.update(item);
    }
    std::unique_ptr<Depmod> depmod(new Depmod(std::move(options), std::move(settings)));
    depmod->resolve_options_ = resolve;
    depmod->options_digest_ = digest.value();
    depmod->output_dir_ =
        depmod->options_.output_dir.empty()
            ? depmod->module_dir()
            : module_dir_under(depmod->options_.output_dir, depmod->options_.module_directory,
                               depmod->options_.kernel_version);
    return depmod;
}

void Depmod::keep_listings(index::WalkMemo& memo)
{
    walk_counts_ = {memo.read_count, memo.replayed_count};
    listings_ = memo.complete ? std::move(memo.recorded) : std::vector<index::DirListing>();
}

void Depmod::load_builtin_inputs()
{
    builtin_problems_.clear();
    auto load = [&](const char* name, uint64_t& digest) -> std::optional<std::string> {
        auto text = base::read_file(AT_FDCWD, module_dir() + "/" + name);
        digest = base::Digest64::of_read(text);
        if (!text) {
            // Said when the index files are written, as kmod does (not by a dry run).
            builtin_problems_.push_back(
                {Diagnostic::Level::Warning, std::string("could not open ") + name + " at " +
                                                 module_dir() + ": " +
                                                 std::strerror(text.error().code)});
            return std::nullopt;
        }
        return std::move(*text);
    };
    builtin_.modules_builtin = load("modules.builtin", builtin_digest_);
    builtin_.modules_builtin_modinfo = load("modules.builtin.modinfo", builtin_modinfo_digest_);
}

base::Result<void> Depmod::scan_files(const std::vector<std::string>& paths,
                                      Diagnostics& diagnostics)
{
    Walk walk;
    walk.started_ns = index::realtime_ns();
    std::map<std::string, std::string> path_of_name;
    for (const std::string& path : paths) {
        if (!path.starts_with('/'))
            return base::make_error(EINVAL, path + ": not absolute path.");
        auto file = index_.describe_file(path);
        if (!file)
            return base::make_error(file.error().code, "could not create module " + path + ": " +
                                                           std::strerror(file.error().code));
        // As kmod: one module name, one file.
        auto [known, is_new] = path_of_name.emplace(file->name, path);
        if (!is_new && known->second == path) {
            diagnostics.push_back(
                {Diagnostic::Level::Error, "hash_add_unique " + file->name + ": File exists"});
            return base::make_error(EEXIST, "could not add module " + path + ": File exists");
        }
        if (!is_new) {
            diagnostics.push_back(
                {Diagnostic::Level::Error, "kmod_module '" + file->name +
                                               "' already exists with different path: new-path='" +
                                               path + "' old-path='" + known->second + "'"});
            return base::make_error(EEXIST, "could not create module " + path + ": File exists");
        }
        walk.files.push_back(std::move(*file));
    }
    last_walk_ = std::move(walk);
    return scan(diagnostics);
}

base::Result<void> Depmod::scan(Diagnostics& diagnostics)
{
    finish_cache_save(diagnostics);
    std::optional<Walk> walk = std::exchange(last_walk_, std::nullopt);
    // Before the first file is looked at: the racy-timestamp rule compares with it.
    const int64_t started_ns = walk ? walk->started_ns : index::realtime_ns();
    if (scan_started_ns_ == 0)
        scan_started_ns_ = started_ns;
    std::shared_ptr<const index::ParseCache> old;
    std::unique_ptr<index::ParseCacheWriter> writer;
    if (!options_.parse_cache.empty()) {
        if (proof_cache_)
            old = std::exchange(proof_cache_, nullptr);
        else if (auto cache = index::ParseCache::load(options_.parse_cache))
            old = std::make_shared<const index::ParseCache>(std::move(*cache));
        else if (cache.error().code != ENOENT)
            diagnostics.push_back({Diagnostic::Level::Warning,
                                   "parse cache " + cache.error().message + ", ignoring it"});
        writer = std::make_unique<index::ParseCacheWriter>(started_ns);
        if (options_.save_parse_cache)
            writer->stream_into(options_.parse_cache);
        if (old)
            writer->limit_delta_to(std::min(kMaxDeltaRecords, old->size() / 16));
        index_.use_parse_cache(old);
        index_.record_parses_into(writer.get());
    }
    const size_t parsed_before = index_.parse_count();
    const size_t hits_before = index_.cache_hit_count();
    const size_t numbered_before = index_.cache_numbered_count();
    base::Result<void> scanned;
    if (!walk) {
        // Walked here, its listings recorded for the next run's (see outputs_are_current()).
        walk = Walk{};
        index::WalkMemo memo;
        memo.since_ns = started_ns;
        // A run that keeps no state records no listings (the memo stays empty).
        const bool keeps_state = !options_.parse_cache.empty() && options_.save_parse_cache;
        auto files = index_.list_files(walk->said, keeps_state ? &memo : nullptr);
        if (!files)
            scanned = base::Unexpected(files.error());
        else
            walk->files = std::move(*files);
        keep_listings(memo);
    }
    if (scanned) {
        diagnostics.insert(diagnostics.end(), walk->said.begin(), walk->said.end());
        index_.scan(std::move(walk->files), diagnostics);
    }
    index_.record_parses_into(nullptr);
    index_.use_parse_cache(nullptr);
    if (!scanned)
        return scanned;
    load_builtin_inputs();
    // Stale too when its symbol table was not this run's (other -E/-F symbols, another -P): the
    // next run numbers the symbols by the table this one saves.
    const bool renumbered =
        index_.cache_hit_count() - hits_before != index_.cache_numbered_count() - numbered_before;
    const bool is_stale = writer && (!old || index_.parse_count() != parsed_before ||
                                     old->size() != writer->size() || renumbered);
    if (is_stale && options_.save_parse_cache) {
        // A few modules parsed since (a rebuilt driver) go into the cache's delta: a run that
        // changed one module does not write megabytes for it. Without any (modules removed,
        // a table renumbered) the whole cache is written, its table pruned.
        const bool delta_only = writer->saves_delta_only();
        start_cache_save(std::move(writer), std::move(old), delta_only);
    }
    return {};
}

void Depmod::start_cache_save(std::unique_ptr<index::ParseCacheWriter> writer,
                              std::shared_ptr<const index::ParseCache> borrowed_from,
                              bool delta_only)
{
    // Nothing the outputs need waits for it: it is written while they are made (megabytes of
    // write(2) on the second core) and joined before the run ends.
    auto save = [writer = std::move(writer), borrowed_from = std::move(borrowed_from),
                 path = options_.parse_cache, tree = module_dir(), delta_only]() mutable {
        Diagnostics said;
        const std::string delta = index::ParseCache::delta_path(path);
        base::Result<void> saved;
        if (delta_only)
            saved = writer->save_fresh_only(delta);
        // Too many for a delta after all, or a whole cache wanted: the whole cache, and its
        // delta goes (else read and ignored, being older, by every run).
        if (!delta_only || (!saved && saved.error().code == EINVAL)) {
            saved = writer->save(path);
            if (saved && ::unlink(delta.c_str()) != 0 && errno != ENOENT)
                said.push_back(
                    {Diagnostic::Level::Warning,
                     "could not remove " + base::quoted(delta) + ": " + std::strerror(errno)});
        }
        if (saved) {
            // Names the tree of a cache kept by hash (see parse_cache_path()).
            const std::string dir = path.substr(0, path.rfind('/'));
            if (auto fd = base::open_directory(AT_FDCWD, dir))
                saved = base::publish_file(fd->get(), "module-dir", tree, false);
        }
        // Saved: the old cache (its map of entries, ~0.6 MiB on amd64, and its mapping) and the
        // writer go now, while the outputs are being made, not when the run joins this save:
        // a one-shot run's outputs then reuse that memory instead of faulting fresh pages in.
        writer.reset();
        borrowed_from.reset();
        // Where the caller may not write (a user's run), the cache is only read.
        const int code = saved ? 0 : saved.error().code;
        if (!saved && code != EACCES && code != EPERM && code != EROFS)
            said.push_back({Diagnostic::Level::Warning,
                            "could not save the parse cache: " + saved.error().message});
        return said;
    };
    // Shared, so that it is still here when no thread can be had (a task limit) and the save
    // is made now instead.
    auto job = std::make_shared<decltype(save)>(std::move(save));
    try {
        cache_save_ = std::async(std::launch::async, [job] { return (*job)(); });
    } catch (const std::system_error&) {
        std::promise<Diagnostics> saved;
        saved.set_value((*job)());
        cache_save_ = saved.get_future();
    }
}

void Depmod::finish_cache_save(Diagnostics& diagnostics)
{
    if (!cache_save_.valid())
        return;
    Diagnostics said = cache_save_.get();
    diagnostics.insert(diagnostics.end(), said.begin(), said.end());
}

uint64_t Depmod::inputs_digest(uint64_t modules_order, uint64_t builtin, uint64_t builtin_modinfo,
                               bool verbose) const
{
    return base::Digest64(options_digest_)
        .update(uint64_t{verbose})
        .update(modules_order)
        .update(builtin)
        .update(builtin_modinfo)
        .value();
}

uint64_t Depmod::current_inputs_digest() const
{
    return inputs_digest(index_.modules_order_digest(), builtin_digest_, builtin_modinfo_digest_,
                         resolve_options_.verbose);
}

OutputState::Graph Depmod::graph_of(const index::Resolution& resolution) const
{
    // The files in discovery order, which is the walk's in a one-shot run.
    std::vector<const index::Candidate*> walked = index_.candidates();
    std::sort(walked.begin(), walked.end(),
              [](const index::Candidate* a, const index::Candidate* b) { return a->seq < b->seq; });
    std::vector<std::string_view> paths(walked.size());
    std::vector<uint64_t> seqs(walked.size());
    for (size_t i = 0; i < walked.size(); ++i) {
        paths[i] = walked[i]->path;
        seqs[i] = walked[i]->seq;
    }
    OutputState::Graph graph;
    graph.walk_digest = walk_digest(paths);
    graph.files.reserve(resolution.modules.size());
    graph.dep_starts.reserve(resolution.modules.size() + 1);
    graph.dep_starts.push_back(0);
    for (const auto& module : resolution.modules) {
        const auto at = std::lower_bound(seqs.begin(), seqs.end(), module.file->seq);
        graph.files.push_back(static_cast<uint32_t>(at - seqs.begin()));
        graph.deps.insert(graph.deps.end(), module.deps.begin(), module.deps.end());
        graph.dep_starts.push_back(static_cast<uint32_t>(graph.deps.size()));
    }
    return graph;
}

void Depmod::save_output_state(std::vector<OutputState::File> files, const Diagnostics& said,
                               Diagnostics& diagnostics, OutputState::Graph graph)
{
    const uint64_t inputs = current_inputs_digest();
    published_ = Published{inputs, files};
    outputs_.expect_symbols(outputs_.symbols_digest());
    if (options_.parse_cache.empty() || !options_.save_parse_cache)
        return;
    const std::string path = output_state_path(options_.parse_cache);
    // A file that cannot be used is reported by each run's walk, which a run that skips its
    // work would not repeat: such a tree gets no state (and any old one goes).
    const std::optional<uint64_t> modules = index_.files_digest();
    if (!modules) {
        ::unlink(path.c_str());
        return;
    }
    OutputState state;
    state.inputs = inputs;
    state.symbols = outputs_.symbols_digest();
    state.alias_order = outputs_.alias_order();
    state.modules = *modules;
    state.module_count = index_.candidate_count();
    state.keys_since_ns = scan_started_ns_;
    state.files = std::move(files);
    state.diagnostics = said;
    state.graph = std::move(graph);
    // Kept for this save only: later ones (a daemon's, after changes it was told of) leave
    // them out, and the next walk reads every directory once.
    state.listings = std::exchange(listings_, {});
    auto saved = state.save(path);
    const int code = saved ? 0 : saved.error().code;
    // Where the caller may not write (a user's run) or the cache was never made, nothing is
    // kept: the next run does the work.
    if (!saved && code != EACCES && code != EPERM && code != EROFS && code != ENOENT)
        diagnostics.push_back({Diagnostic::Level::Warning,
                               "could not save the output state: " + saved.error().message});
}

bool Depmod::update_path(const std::string& path, Diagnostics& diagnostics)
{
    const std::string prefix = module_dir() + "/modules.builtin";
    if (path == prefix || path == prefix + ".modinfo") {
        load_builtin_inputs();
        return true;
    }
    return index_.update_path(path, diagnostics);
}

base::Result<std::vector<OutputFile>> Depmod::generate(Diagnostics& diagnostics)
{
    auto resolution = index_.resolve(resolve_options_, diagnostics);
    if (!resolution)
        return base::Unexpected(resolution.error());
    last_module_count_ = resolution->modules.size();
    return outputs_.build(*resolution, builtin_, options_.warn_dups, options_.format, diagnostics);
}

void Depmod::adopt_as_published(const std::vector<OutputFile>& outputs, const Diagnostics& said)
{
    Diagnostics all = said;
    all.insert(all.end(), builtin_problems_.begin(), builtin_problems_.end());
    Diagnostics ignored; // a state that cannot be saved costs only time, later
    std::vector<OutputState::File> files;
    files.reserve(outputs.size());
    for (const OutputFile& file : outputs)
        files.push_back(described(file));
    save_output_state(std::move(files), all, ignored);
    parses_at_last_write_ = index_.parse_count();
}

void Depmod::remove_stale_temp_files(Diagnostics& diagnostics) const
{
    std::vector<std::string> dirs{output_dir_};
    const std::string& cache = options_.parse_cache;
    if (const size_t slash = cache.rfind('/'); slash != std::string::npos)
        dirs.push_back(cache.substr(0, slash));
    for (const std::string& dir : dirs) {
        auto fd = base::open_directory(AT_FDCWD, dir);
        if (!fd)
            continue;
        if (const size_t removed = base::remove_stale_temp_files(fd->get()); removed > 0)
            diagnostics.push_back({Diagnostic::Level::Info,
                                   "removed " + std::to_string(removed) +
                                       (removed == 1 ? " temporary file" : " temporary files") +
                                       " that a killed run left in " + dir});
    }
}

base::Result<GenerationStats> Depmod::write(Diagnostics& diagnostics)
{
    auto written = generate_and_publish(diagnostics);
    // Whatever became of the outputs, the run's parse cache is on disk (or said why not).
    finish_cache_save(diagnostics);
    return written;
}

base::Result<base::UniqueFd> Depmod::open_output_directory() const
{
    if (!options_.output_dir.empty()) {
        if (auto made = make_directories(output_dir_); !made)
            return base::Unexpected(made.error());
    }
    auto dir = base::open_directory(AT_FDCWD, output_dir_);
    if (!dir)
        return base::make_error(dir.error().code, "could not open directory " + output_dir_ + ": " +
                                                      std::strerror(dir.error().code));
    return dir;
}

base::Result<GenerationStats> Depmod::generate_and_publish(Diagnostics& diagnostics)
{
    auto start = std::chrono::steady_clock::now();
    const size_t said_before = diagnostics.size();
    auto resolution = index_.resolve(resolve_options_, diagnostics);
    if (!resolution)
        return base::Unexpected(resolution.error());
    last_module_count_ = resolution->modules.size();
    // The state keeps the graph, for the next run's splice (output_splice.cpp).
    OutputState::Graph graph;
    if (!options_.parse_cache.empty() && options_.save_parse_cache)
        graph = graph_of(*resolution);

    // Each file is compared with the one on disk chunk by chunk as it is made, and written to
    // its temp file from the first chunk that differs: a build never holds all of them, nor
    // the big ones whole. Without an output directory the files are only made, so that the
    // run says all it would have said.
    auto dir = open_output_directory();
    base::PublishBatch batch(dir ? dir->get() : -1, options_.durable);
    OutputPublisher publisher(dir ? dir->get() : -1, batch);
    // Files whose inputs are the last published build's stay as they are on disk.
    OutputBuilder::Keeper keep;
    if (published_ && published_->inputs == current_inputs_digest())
        keep = [&](const char* name) {
            const OutputState::File* file = find_file(published_->files, name);
            return file != nullptr && publisher.keep(*file);
        };
    outputs_.build_each(
        *resolution, builtin_, options_.warn_dups, options_.format, diagnostics,
        [&](const char* name, bool) { return publisher.open(name); }, keep);
    // kmod reads the builtin files only once the dependencies resolved (not after a cycle).
    diagnostics.insert(diagnostics.end(), builtin_problems_.begin(), builtin_problems_.end());
    if (!dir)
        return base::Unexpected(dir.error());
    if (publisher.failure())
        return base::Unexpected(*publisher.failure());
    if (auto published = batch.commit(); !published)
        return base::Unexpected(published.error());
    // `depmod -A` (kmod's and ours) takes the index as current when modules.dep is newer than
    // every module: kept as it was, it gets the time of this run all the same.
    const std::vector<std::string>& changed = publisher.changed();
    const bool dep_kept = std::find(changed.begin(), changed.end(), "modules.dep") == changed.end();
    if (dep_kept)
        ::utimensat(dir->get(), "modules.dep", nullptr, 0); // a failure costs a later -A a run
    // The state goes beside the cache, into the directory a first save makes.
    finish_cache_save(diagnostics);
    save_output_state(
        publisher.take_files(),
        Diagnostics(diagnostics.begin() + static_cast<ptrdiff_t>(said_before), diagnostics.end()),
        diagnostics, std::move(graph));

    GenerationStats stats;
    stats.files_written = changed.size();
    stats.files_kept = publisher.kept_count();
    stats.files_parsed = index_.parse_count() - parses_at_last_write_;
    parses_at_last_write_ = index_.parse_count();
    stats.modules = last_module_count_;
    stats.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    return stats;
}

} // namespace kmodd::depmod
