// SPDX-License-Identifier: LGPL-2.1-or-later
// Finding module files: the tree walk, and the parse cache as a whole scan takes it.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "base/digest.hpp"
#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/threads.hpp"
#include "elf/module_file.hpp"
#include "index/kmod_hash.hpp"
#include "index/module_index.hpp"
#include "index/names.hpp"
#include "index/tree_paths.hpp"

namespace kmodd::index {

FileKey file_key_of(const struct stat& st)
{
    return FileKey{st.st_dev, st.st_ino, st.st_size,
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

ModuleIndex::ModuleIndex(Settings settings) : settings_(std::move(settings))
{
    while (settings_.module_dir.size() > 1 && settings_.module_dir.back() == '/')
        settings_.module_dir.pop_back();
    // A later entry for the same name replaces the earlier one, as kmod's hash_add does.
    for (const VmlinuxSymbol& sym : settings_.vmlinux_symbols) {
        uint32_t id = intern(sym.name, kmod_hash(sym.name));
        is_vmlinux_[id] = 1;
        vmlinux_crc_[id] = sym.crc;
    }
    sort_new_symbols();
}

bool ModuleIndex::is_excluded(std::string_view name) const
{
    if (name == "." || name == ".." || name == "build" || name == "source")
        return true;
    return std::find(settings_.config.excludes.begin(), settings_.config.excludes.end(), name) !=
           settings_.config.excludes.end();
}

void ModuleIndex::walk(base::UniqueFd directory, const std::string& dir_path,
                       std::vector<FoundFile>& found, std::vector<std::pair<dev_t, ino_t>>& stack,
                       Diagnostics& diagnostics, WalkMemo* memo, const struct stat* dir_st) const
{
    const int dir_fd = directory.get();
    // The listing as read, recorded (for the next walk) unless the directory just changed.
    size_t listing = SIZE_MAX;
    if (memo != nullptr) {
        ++memo->read_count;
        const FileKey key = file_key_of(*dir_st);
        if (!is_racy(key.mtime_ns, key.ctime_ns, memo->since_ns)) {
            listing = memo->recorded.size();
            memo->recorded.push_back({dir_path, key, {}});
        }
    }
    auto record = [&](std::string_view name, uint8_t type, bool is_dir) {
        if (listing != SIZE_MAX)
            memo->recorded[listing].entries.push_back({std::string(name), type, is_dir});
    };
    base::DirectoryReader reader(dir_fd);
    base::DirectoryReader::Entry entry{};
    while (reader.next(entry)) {
        const std::string_view name = entry.name;
        // NUL-terminated: getdents64 gives each name with its NUL.
        const char* const c_name = name.data();
        if (is_excluded(name))
            continue;
        std::string path = dir_path + "/" + std::string(name);
        bool is_dir = entry.type == DT_DIR;
        bool is_file = entry.type == DT_REG;
        if (!is_dir && !is_file) {
            struct stat st {};
            if (::fstatat(dir_fd, c_name, &st, 0) < 0) {
                diagnostics.push_back({Diagnostic::Level::Error,
                                       describe_unusable_entry(dir_fd, c_name, path, errno)});
                continue;
            }
            is_dir = S_ISDIR(st.st_mode);
            is_file = S_ISREG(st.st_mode);
            if (!is_dir && !is_file) {
                if (has_module_extension(name))
                    diagnostics.push_back(
                        {Diagnostic::Level::Error,
                         base::quoted(path) + ": not a regular file or directory, ignoring"});
                continue;
            }
        }
        if (is_dir) {
            base::UniqueFd sub(::openat(dir_fd, c_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            struct stat st {};
            if (!sub.is_valid() || ::fstat(sub.get(), &st) < 0) {
                diagnostics.push_back(cannot_open_directory(path, errno));
                continue;
            }
            auto id = std::make_pair(st.st_dev, st.st_ino);
            if (std::find(stack.begin(), stack.end(), id) != stack.end()) {
                diagnostics.push_back(
                    {Diagnostic::Level::Error, base::quoted(path) + ": symlink loop (the directory "
                                                                    "contains itself), ignoring"});
                continue;
            }
            record(name, entry.type, true);
            stack.push_back(id);
            if (memo != nullptr)
                enter_directory(std::move(sub), path, st, found, stack, diagnostics, *memo);
            else
                walk(std::move(sub), path, found, stack, diagnostics);
            stack.pop_back();
            continue;
        }
        if (!has_module_extension(name))
            continue;
        record(name, entry.type, false);
        FoundFile f = found_file(std::move(path), dir_path.size(), name, entry.type == DT_LNK);
        // A regular file is stat'ed once the walk is done (stat_found_files(), on several
        // threads); anything else now, relative to the directory.
        if (entry.type != DT_REG)
            f.has_stat = ::fstatat(dir_fd, c_name, &f.st, 0) == 0;
        found.push_back(std::move(f));
    }
    // kmod's readdir() loop ends there silently; said, the walk's listings are not kept either
    // (a listing cut short would hide the rest of the directory from later walks).
    if (reader.error() != 0)
        diagnostics.push_back({Diagnostic::Level::Error,
                               base::quoted(dir_path) + ": cannot read the whole directory: " +
                                   std::strerror(reader.error()) + ", using what was read"});
}

Diagnostic ModuleIndex::cannot_open_directory(const std::string& path, int err)
{
    return {Diagnostic::Level::Error,
            base::quoted(path) + ": cannot open directory: " + std::strerror(err) + ", ignoring"};
}

ModuleIndex::FoundFile ModuleIndex::found_file(std::string path, size_t dir_len,
                                               std::string_view name, bool is_symlink) const
{
    FoundFile f;
    f.path = std::move(path);
    f.name = normalize_modname(name);
    f.dir_len = dir_len;
    if (starts_with_dir(f.path, settings_.module_dir))
        f.relpath_at = static_cast<uint32_t>(settings_.module_dir.size() + 1);
    if (is_symlink) {
        if (char* real = ::realpath(f.path.c_str(), nullptr)) {
            f.symlink_target = real;
            std::free(real);
        }
    }
    return f;
}

bool ModuleIndex::merge(std::vector<FoundFile>& found, const std::string& scope,
                        Diagnostics& diagnostics)
{
    bool changed = false;
    // Drop what vanished inside the scope.
    std::unordered_map<std::string_view, const FoundFile*> seen;
    seen.reserve(found.size());
    for (const FoundFile& f : found)
        seen.emplace(f.path, &f);
    for (auto it = candidates_.begin(); it != candidates_.end();) {
        bool in_scope = scope.empty() || it->first == scope || starts_with_dir(it->first, scope);
        if (in_scope && !seen.contains(it->first)) {
            it = candidates_.erase(it);
            changed = true;
        } else {
            ++it;
        }
    }

    // Decide what must be parsed: new files and files whose identity changed.
    std::vector<Pending> to_parse;
    to_parse.reserve(found.size());
    // Kept from an earlier scan (a rescan with the same index): the cache being written still
    // holds them, from the cache read (they have not changed since it was written or parsed).
    std::vector<Pending> unchanged;
    if (candidates_.empty())
        candidates_.reserve(found.size());
    for (FoundFile& f : found) {
        auto it = candidates_.find(f.path);
        const bool inserted = it == candidates_.end();
        if (inserted) {
            auto owned = std::make_unique<Candidate>();
            owned->path = std::move(f.path);
            std::string_view key = owned->path;
            it = candidates_.emplace(key, std::move(owned)).first;
        }
        Candidate& c = *it->second;
        if (inserted || scope.empty())
            c.seq = next_seq_++;
        if (!inserted && f.has_stat && file_key_of(f.st) == c.key) {
            if (cache_writer_ != nullptr)
                unchanged.push_back({&c, &f});
            continue;
        }
        // `path` stays as it is: it is the key of the map.
        c.relpath_at = f.relpath_at;
        c.name = std::move(f.name);
        c.dir_len = f.dir_len;
        c.symlink_target = std::move(f.symlink_target);
        c.name_hash = kmod_hash(c.name);
        // kmod matches modules.order lines against the relpath cut after the module name
        // plus three characters (".ko" for the usual file names).
        c.order_key_size = 0;
        if (const std::string_view relpath = c.relpath(); !relpath.empty()) {
            size_t slash = relpath.rfind('/');
            size_t base = slash == std::string::npos ? 0 : slash + 1;
            c.order_key_size =
                static_cast<uint32_t>(std::min(relpath.size(), base + c.name.size() + 3));
        }
        to_parse.push_back({&c, &f});
    }
    keep_in_cache_written(unchanged);
    if (to_parse.empty()) {
        if (!unchanged.empty())
            give_symbol_table_to_cache_written();
        return changed;
    }

    std::atomic<size_t> hits{0};
    std::atomic<size_t> numbered{0};
    std::mutex symbols_lock;
    // A cache whose symbol table begins with the index's numbers its entries' symbols as the
    // index does: those entries need no name looked up.
    const bool ids_from_cache = adopt_cached_symbols();
    // Takes the files of `queue` from `next` on, until none is left: each one's cached entry
    // when it has one, else (unless `cached_only`, which leaves them in `missed`) the file
    // parsed.
    auto work = [&](const std::vector<Pending>& queue, std::atomic<size_t>& next, bool cached_only,
                    std::vector<Pending>* missed) {
        // Reused from module to module; large buffers are unmapped when the thread is done.
        elf::LoadBuffers buffers;
        elf::ModuleInfoView view;
        // Other symbols are interned a batch at a time: one lock per batch, not one per module.
        // A cached entry's names are in the mapped cache, which outlives the run; its record
        // goes to the writer with the ids it got (`head_of`).
        constexpr size_t kBatch = 32;
        std::vector<SymbolLookups> batch(kBatch);
        std::vector<Candidate*> batch_of(kBatch);
        std::vector<std::string_view> head_of(kBatch);
        size_t batched = 0;
        // The ids given to the writer here were interned, not read in place: never copied.
        std::vector<uint32_t> export_scratch, import_scratch;
        auto flush = [&] {
            {
                std::lock_guard lock(symbols_lock);
                for (size_t b = 0; b < batched; ++b)
                    intern_symbols(*batch_of[b], batch[b]);
            }
            for (size_t b = 0; b < batched && cache_writer_ != nullptr; ++b) {
                if (!head_of[b].empty())
                    cache_writer_->add_renumbered(head_of[b],
                                                  batch_of[b]->export_ids.span(export_scratch),
                                                  batch_of[b]->import_ids.span(import_scratch));
            }
            batched = 0;
        };
        for (size_t i = next.fetch_add(1); i < queue.size(); i = next.fetch_add(1)) {
            Candidate& c = *queue[i].candidate;
            struct stat st = queue[i].found->st;
            // A cached entry is read in place; a parsed file's full ModuleInfo lives only until
            // its compact form and symbol ids are made (one per thread at a time).
            base::Result<elf::ModuleInfo> info{};
            std::optional<CachedRecord> cached;
            if (queue[i].found->has_stat && cache_)
                cached = cache_->find_view(c.path, CacheKey::of(st, c.symlink_target), view);
            if (!cached && cached_only) {
                missed->push_back(queue[i]);
                continue;
            }
            c.key = file_key_of(st);
            c.error.clear();
            if (cached) {
                hits.fetch_add(1);
            } else {
                info = elf::load_module_file(AT_FDCWD, c.path, st, buffers);
                if (info) {
                    view.assign(*info);
                } else {
                    c.error = std::move(info.error().message);
                    view.clear();
                }
            }
            c.parsed =
                cached && settings_.read_cache_in_place
                    ? ParsedModule::make(view, settings_.symbol_prefix, settings_.keep_import_crcs,
                                         cached->modinfo, *cached->keeper)
                    : ParsedModule::make(view, settings_.symbol_prefix, settings_.keep_import_crcs);
            if (!c.error.empty()) {
                c.export_ids.clear();
                c.import_ids.clear();
                continue;
            }
            // A record of the cache's delta has no ids of this table (no `whole` either).
            if (cached && ids_from_cache && !cached->whole.empty()) {
                take_cached_ids(c, view.exports.size(), cached->ids, c.parsed->backing != nullptr);
                numbered.fetch_add(1);
                if (cache_writer_ != nullptr)
                    cache_writer_->add_raw(cached->whole);
                continue;
            }
            look_up_symbols(view, batch[batched]);
            head_of[batched] = cached ? cached->head : std::string_view();
            batch_of[batched++] = &c;
            if (cached) {
                if (batched == kBatch)
                    flush();
                continue;
            }
            // A parsed module's names live in `info`, replaced by the next file's.
            flush();
            if (cache_writer_ != nullptr)
                cache_writer_->add(c.path, CacheKey::of(st, c.symlink_target), *info,
                                   c.export_ids.span(export_scratch),
                                   c.import_ids.span(import_scratch));
        }
        if (batched != 0)
            flush();
    };
    // A run that reads the cache in place takes its cached entries on this thread first: one
    // takes a few microseconds, and two threads sharing the heap's lock and its fresh pages
    // took longer than this one alone (measured on the amd64 tree: 17 against 11 ms for 4,023
    // entries, copied then). The files left are parsed on as many threads as there are cores.
    const bool cached_first = cache_ && settings_.read_cache_in_place;
    std::vector<Pending> missed;
    std::atomic<size_t> next_cached{0};
    if (cached_first)
        work(to_parse, next_cached, true, &missed);
    const std::vector<Pending>& queue = cached_first ? missed : to_parse;
    unsigned threads = settings_.parse_threads != 0
                           ? settings_.parse_threads
                           : std::max(1U, std::thread::hardware_concurrency());
    threads = std::clamp<unsigned>(static_cast<unsigned>(queue.size()), 1, threads);
    std::atomic<size_t> next{0};
    if (!queue.empty())
        base::run_on_threads(threads - 1, [&] { work(queue, next, false, nullptr); });
    parse_count_ += to_parse.size() - hits.load();
    cache_hit_count_ += hits.load();
    cache_numbered_count_ += numbered.load();

    // Reported in discovery order, whatever thread parsed the file.
    std::sort(to_parse.begin(), to_parse.end(), [](const Pending& a, const Pending& b) {
        return a.candidate->seq < b.candidate->seq;
    });
    for (const Pending& pending : to_parse) {
        const Candidate* c = pending.candidate;
        if (!c->error.empty())
            diagnostics.push_back({Diagnostic::Level::Error,
                                   base::quoted(c->path) + ": " + c->error +
                                       "; listed without dependencies, as kmod's depmod does"});
    }
    sort_new_symbols();
    give_symbol_table_to_cache_written();
    return true;
}

void ModuleIndex::give_symbol_table_to_cache_written() const
{
    // A table that numbers many symbols no module has any more is not saved: the next run
    // numbers them afresh (else run after run would keep every name the tree ever had). A
    // delta has no table: a run that changed a module does not copy the table (~0.6 MiB).
    if (cache_writer_ != nullptr && !cache_writer_->saves_delta_only() &&
        unused_symbol_count() <= symbol_names_.size() / 4)
        cache_writer_->set_symbol_table(symbol_table_record());
}

void ModuleIndex::keep_in_cache_written(const std::vector<Pending>& unchanged) const
{
    if (cache_writer_ == nullptr || !cache_)
        return;
    // A module parsed after the cache read was written (by update_path()) is not in it: the
    // next run that finds it missing parses it.
    elf::ModuleInfoView view;
    std::vector<uint32_t> export_scratch, import_scratch; // for ids read in place
    for (const Pending& kept : unchanged) {
        const Candidate& c = *kept.candidate;
        if (!c.error.empty())
            continue;
        if (auto cached =
                cache_->find_view(c.path, CacheKey::of(kept.found->st, c.symlink_target), view))
            cache_writer_->add_renumbered(cached->head, c.export_ids.span(export_scratch),
                                          c.import_ids.span(import_scratch));
    }
}

void ModuleIndex::load_modules_order()
{
    modules_order_.clear();
    modules_order_text_.clear();
    modules_order_ok_ = false;
    const std::string file = settings_.module_dir + "/modules.order";
    auto text = base::read_file(AT_FDCWD, file);
    modules_order_digest_ = base::Digest64::of_read(text);
    if (!text) {
        modules_order_problem_ = {Diagnostic::Level::Warning, "could not open modules.order at " +
                                                                  settings_.module_dir + ": " +
                                                                  std::strerror(text.error().code)};
        return;
    }
    // Kept: the keys of modules_order_ point into it.
    modules_order_text_ = std::move(*text);
    std::vector<std::string_view> lines;
    std::string_view rest = modules_order_text_;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            modules_order_problem_ = {Diagnostic::Level::Error,
                                      file + ":" + std::to_string(lines.size() + 1) +
                                          " corrupted line misses '\\n'"};
            modules_order_text_.clear();
            return;
        }
        lines.push_back(rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
    }
    // Listed modules sort before all others, in file order (kmod 30: the last of duplicated
    // lines counts); the others keep kmod's key 1.
    const int total = static_cast<int>(lines.size()) + 1;
    modules_order_.reserve(lines.size());
    for (size_t i = 0; i < lines.size(); ++i)
        modules_order_[lines[i]] = static_cast<int>(i + 1) - total;
    modules_order_ok_ = true;
}

base::Result<void> ModuleIndex::scan(Diagnostics& diagnostics)
{
    auto found = list_files(diagnostics);
    if (!found)
        return base::Unexpected(found.error());
    scan(std::move(*found), diagnostics);
    return {};
}

void ModuleIndex::scan(std::vector<FoundFile> walked, Diagnostics& diagnostics)
{
    load_modules_order();
    merge(walked, std::string(), diagnostics);
}

uint64_t ModuleIndex::file_digest(std::string_view path, const FileKey& key,
                                  std::string_view symlink_target)
{
    base::Digest64 digest;
    digest.update(path)
        .update(static_cast<uint64_t>(key.dev))
        .update(static_cast<uint64_t>(key.ino))
        .update(static_cast<uint64_t>(key.size))
        .update(static_cast<uint64_t>(key.mtime_ns))
        .update(static_cast<uint64_t>(key.ctime_ns))
        .update(symlink_target);
    return digest.value();
}

std::optional<uint64_t> ModuleIndex::files_digest() const
{
    uint64_t sum = 0;
    for (const auto& [path, candidate] : candidates_) {
        if (!candidate->error.empty())
            return std::nullopt;
        sum += file_digest(candidate->path, candidate->key, candidate->symlink_target);
    }
    return sum;
}

std::vector<const Candidate*> ModuleIndex::candidates() const
{
    std::vector<const Candidate*> out;
    out.reserve(candidates_.size());
    for (const auto& [path, c] : candidates_)
        out.push_back(c.get());
    return out;
}

} // namespace kmodd::index
