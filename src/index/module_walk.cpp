// SPDX-License-Identifier: LGPL-2.1-or-later
// The walk of a whole tree: each directory read, or replayed from the listing an earlier walk
// recorded when the directory is provably the same; then every regular file stat'ed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/threads.hpp"
#include "index/module_index.hpp"
#include "index/tree_paths.hpp"

namespace kmodd::index {

namespace {

std::string read_link(int dir_fd, const char* name)
{
    char buf[PATH_MAX];
    ssize_t n = ::readlinkat(dir_fd, name, buf, sizeof buf - 1);
    if (n < 0)
        return {};
    return std::string(buf, static_cast<size_t>(n));
}

/// stat(2) of `path`, looked up from `dir_fd` (the module dir `dir`; -1 when not open) when it
/// lies below it: the kernel walks the names below it only, not the ten or so of the whole
/// path (~15% of each stat's time).
int stat_from(int dir_fd, const std::string& dir, const std::string& path, struct stat& st)
{
    if (dir_fd >= 0 && starts_with_dir(path, dir))
        return ::fstatat(dir_fd, path.c_str() + dir.size() + 1, &st, 0);
    return ::stat(path.c_str(), &st);
}

} // namespace

std::string describe_unusable_entry(int dir_fd, const char* name, const std::string& path, int err)
{
    std::string target = read_link(dir_fd, name);
    if (target.empty())
        return base::quoted(path) + ": " + std::strerror(err) + ", ignoring";
    bool is_relative = target[0] != '/';
    std::string hint = is_relative ? " (a relative target is resolved from the link's own "
                                     "directory; link to an absolute path)"
                                   : "";
    if (err == ENOENT)
        return base::quoted(path) + ": dangling symlink to " + base::quoted(target) + hint +
               ", ignoring";
    if (err == ELOOP)
        return base::quoted(path) + ": symlink loop through " + base::quoted(target) + hint +
               ", ignoring";
    return base::quoted(path) + ": symlink to " + base::quoted(target) + ": " + std::strerror(err) +
           ", ignoring";
}

base::UniqueFd ModuleIndex::open_module_dir_for_lookups() const
{
    return base::UniqueFd(::open(settings_.module_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
}

void ModuleIndex::stat_found_files(std::vector<FoundFile>& found, int module_dir_fd) const
{
    // A stat is a few microseconds of system call: thousands of them are worth a second thread.
    constexpr size_t kFilesPerThread = 1024;
    constexpr size_t kBatch = 64;
    const unsigned threads = static_cast<unsigned>(std::clamp<size_t>(
        found.size() / kFilesPerThread, 1, std::max(1U, std::thread::hardware_concurrency())));
    const std::string& dir = settings_.module_dir;
    std::atomic<size_t> next{0};
    auto work = [&] {
        for (size_t begin = next.fetch_add(kBatch); begin < found.size();
             begin = next.fetch_add(kBatch)) {
            for (size_t i = begin; i < std::min(begin + kBatch, found.size()); ++i) {
                FoundFile& f = found[i];
                if (f.has_stat)
                    continue;
                f.has_stat = stat_from(module_dir_fd, dir, f.path, f.st) == 0;
            }
        }
    };
    base::run_on_threads(threads - 1, work);
}

void ModuleIndex::enter_directory(base::UniqueFd directory, const std::string& dir_path,
                                  const struct stat& st, std::vector<FoundFile>& found,
                                  std::vector<std::pair<dev_t, ino_t>>& stack,
                                  Diagnostics& diagnostics, WalkMemo& memo) const
{
    auto known = memo.previous_by_path.find(dir_path);
    if (known != memo.previous_by_path.end() && known->second->key == file_key_of(st) &&
        replay_directory(*known->second, found, stack, diagnostics, memo))
        return;
    if (!directory.is_valid()) {
        directory = base::UniqueFd(::open(dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!directory.is_valid()) {
            diagnostics.push_back(cannot_open_directory(dir_path, errno));
            return;
        }
    }
    walk(std::move(directory), dir_path, found, stack, diagnostics, &memo, &st);
}

bool ModuleIndex::replay_directory(const DirListing& listing, std::vector<FoundFile>& found,
                                   std::vector<std::pair<dev_t, ino_t>>& stack,
                                   Diagnostics& diagnostics, WalkMemo& memo) const
{
    // What the directory's key cannot prove: where its symlinks lead. Every entry the walk
    // would stat is stat'ed first; any that is not what it was makes the walk read the
    // directory instead (before anything of it was added).
    std::vector<struct stat> stats(listing.entries.size());
    std::string path;
    auto path_of = [&](const DirListing::Entry& entry) -> const std::string& {
        path.assign(listing.path).append("/").append(entry.name);
        return path;
    };
    for (size_t i = 0; i < listing.entries.size(); ++i) {
        const DirListing::Entry& entry = listing.entries[i];
        if (!entry.is_dir && entry.type == DT_REG)
            continue; // stat'ed with the others once the walk is done
        if (stat_from(memo.module_dir_fd, settings_.module_dir, path_of(entry), stats[i]) != 0 ||
            (entry.is_dir ? !S_ISDIR(stats[i].st_mode) : !S_ISREG(stats[i].st_mode)))
            return false;
        const auto id = std::make_pair(stats[i].st_dev, stats[i].st_ino);
        if (entry.is_dir && std::find(stack.begin(), stack.end(), id) != stack.end())
            return false;
    }
    ++memo.replayed_count;
    if (!is_racy(listing.key.mtime_ns, listing.key.ctime_ns, memo.since_ns)) {
        memo.replayed.emplace_back(memo.recorded.size(),
                                   static_cast<size_t>(&listing - memo.previous.data()));
        memo.recorded.emplace_back();
    }
    for (size_t i = 0; i < listing.entries.size(); ++i) {
        const DirListing::Entry& entry = listing.entries[i];
        if (!entry.is_dir) {
            FoundFile f =
                found_file(path_of(entry), listing.path.size(), entry.name, entry.type == DT_LNK);
            if (entry.type != DT_REG) {
                f.st = stats[i];
                f.has_stat = true;
            }
            found.push_back(std::move(f));
            continue;
        }
        const std::string& sub_path = path_of(entry);
        stack.emplace_back(stats[i].st_dev, stats[i].st_ino);
        enter_directory(base::UniqueFd(), sub_path, stats[i], found, stack, diagnostics, memo);
        stack.pop_back();
    }
    return true;
}

void ModuleIndex::take_replayed_listings(WalkMemo& memo)
{
    // Each slot filled by the listing that was in its place (a directory walked twice is
    // replayed from the first of its two listings).
    memo.recorded_unchanged =
        memo.recorded.size() == memo.previous.size() &&
        memo.replayed.size() == memo.recorded.size() &&
        std::all_of(memo.replayed.begin(), memo.replayed.end(), [&](auto r) {
            return r.first == r.second || memo.previous[r.first] == memo.previous[r.second];
        });
    constexpr size_t kNotTaken = ~size_t{0};
    std::vector<size_t> taken_into(memo.previous.size(), kNotTaken);
    for (const auto& [slot, from] : memo.replayed) {
        // A directory walked twice (an external directory inside the tree) is replayed twice.
        if (taken_into[from] != kNotTaken) {
            memo.recorded[slot] = memo.recorded[taken_into[from]];
        } else {
            memo.recorded[slot] = std::move(memo.previous[from]);
            taken_into[from] = slot;
        }
    }
    memo.replayed.clear();
}

base::Result<void> ModuleIndex::walk_all(std::vector<FoundFile>& found, Diagnostics& diagnostics,
                                         WalkMemo* memo) const
{
    auto root = base::open_directory(AT_FDCWD, settings_.module_dir);
    if (!root)
        return base::make_error(root.error().code, "could not open directory " +
                                                       settings_.module_dir + ": " +
                                                       std::strerror(root.error().code));
    size_t listed_files = 0;
    const base::UniqueFd module_dir = open_module_dir_for_lookups();
    if (memo != nullptr) {
        memo->module_dir_fd = module_dir.get();
        memo->recorded.clear();
        memo->replayed.clear();
        memo->complete = true;
        memo->read_count = memo->replayed_count = 0;
        memo->previous_by_path.clear();
        for (const DirListing& listing : memo->previous) {
            memo->previous_by_path.emplace(listing.path, &listing);
            listed_files +=
                static_cast<size_t>(std::count_if(listing.entries.begin(), listing.entries.end(),
                                                  [](const auto& e) { return !e.is_dir; }));
        }
    }
    // The files the listings hold, most of them found again: no growth by doubling.
    found.reserve(std::max({candidates_.size(), size_t{1024}, listed_files + listed_files / 16}));
    const size_t said_before = diagnostics.size();
    std::vector<std::pair<dev_t, ino_t>> stack;
    auto walk_from = [&](base::UniqueFd dir, const std::string& path) {
        stack.clear();
        struct stat st {};
        if (::fstat(dir.get(), &st) != 0) {
            walk(std::move(dir), path, found, stack, diagnostics);
            return;
        }
        stack.emplace_back(st.st_dev, st.st_ino);
        if (memo != nullptr)
            enter_directory(std::move(dir), path, st, found, stack, diagnostics, *memo);
        else
            walk(std::move(dir), path, found, stack, diagnostics);
    };
    walk_from(std::move(*root), settings_.module_dir);
    for (const std::string& external : settings_.config.externals) {
        auto dir = base::open_directory(AT_FDCWD, external);
        if (!dir)
            continue; // a missing external directory is not an error, as in kmod
        std::string path = external;
        while (path.size() > 1 && path.back() == '/')
            path.pop_back();
        walk_from(std::move(*dir), path);
    }
    stat_found_files(found, module_dir.get());
    if (memo != nullptr) {
        memo->module_dir_fd = -1;
        memo->complete = diagnostics.size() == said_before;
        memo->previous_by_path.clear();
        take_replayed_listings(*memo);
    }
    return {};
}

base::Result<std::vector<ModuleIndex::FoundFile>> ModuleIndex::list_files(Diagnostics& diagnostics,
                                                                          WalkMemo* memo) const
{
    std::vector<FoundFile> found;
    if (auto walked = walk_all(found, diagnostics, memo); !walked)
        return base::Unexpected(walked.error());
    return found;
}

} // namespace kmodd::index
