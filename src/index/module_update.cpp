// SPDX-License-Identifier: LGPL-2.1-or-later
// Incremental updates: one path the watcher reported, looked at alone and merged into the index.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "index/module_index.hpp"
#include "index/names.hpp"
#include "index/tree_paths.hpp"

namespace kmodd::index {

base::Result<ModuleIndex::FoundFile> ModuleIndex::describe_file(const std::string& path) const
{
    FoundFile f;
    if (::stat(path.c_str(), &f.st) != 0)
        return base::errno_error(errno, base::quoted(path));
    f.has_stat = true;
    const size_t slash = path.rfind('/');
    f.dir_len = slash == std::string::npos ? 0 : slash;
    f.name = normalize_modname(slash == std::string::npos ? path : path.substr(slash + 1));
    if (starts_with_dir(path, settings_.module_dir))
        f.relpath_at = static_cast<uint32_t>(settings_.module_dir.size() + 1);
    struct stat link {};
    if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
        if (char* real = ::realpath(path.c_str(), nullptr)) {
            f.symlink_target = real;
            std::free(real);
        }
    }
    f.path = path;
    return f;
}

bool ModuleIndex::update_path(const std::string& path, Diagnostics& diagnostics)
{
    std::string clean = path;
    while (clean.size() > 1 && clean.back() == '/')
        clean.pop_back();
    if (clean == settings_.module_dir + "/modules.order") {
        load_modules_order();
        return true;
    }
    // Which tree is the path in, and is any component of it skipped?
    std::string base;
    if (starts_with_dir(clean, settings_.module_dir)) {
        base = settings_.module_dir;
    } else {
        for (const std::string& external : settings_.config.externals) {
            if (starts_with_dir(clean, external)) {
                base = external;
                break;
            }
        }
    }
    if (base.empty())
        return false;
    for (std::string_view part :
         base::split_tokens(std::string_view(clean).substr(base.size()), "/")) {
        if (is_excluded(part))
            return false;
    }

    std::vector<FoundFile> found;
    struct stat st {};
    if (::stat(clean.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        auto dir = base::open_directory(AT_FDCWD, clean);
        if (dir) {
            std::vector<std::pair<dev_t, ino_t>> stack{{st.st_dev, st.st_ino}};
            walk(std::move(*dir), clean, found, stack, diagnostics);
            stat_found_files(found, open_module_dir_for_lookups().get());
        }
    } else if (::stat(clean.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        size_t slash = clean.rfind('/');
        std::string_view name = std::string_view(clean).substr(slash + 1);
        if (!has_module_extension(name))
            return false;
        FoundFile f;
        f.name = normalize_modname(name);
        f.dir_len = slash;
        f.st = st;
        f.has_stat = true;
        if (starts_with_dir(clean, settings_.module_dir))
            f.relpath_at = static_cast<uint32_t>(settings_.module_dir.size() + 1);
        struct stat lst {};
        if (::lstat(clean.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
            if (char* real = ::realpath(clean.c_str(), nullptr)) {
                f.symlink_target = real;
                std::free(real);
            }
        }
        f.path = clean;
        found.push_back(std::move(f));
    } else if (errno != ENOENT && errno != 0) {
        // A dangling or looping symlink: say so once, and forget any module it was.
        size_t slash = clean.rfind('/');
        base::UniqueFd dir(
            ::open(clean.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (has_module_extension(std::string_view(clean).substr(slash + 1)))
            diagnostics.push_back(
                {Diagnostic::Level::Error,
                 describe_unusable_entry(dir.get(), clean.c_str() + slash + 1, clean, errno)});
    } else {
        size_t slash = clean.rfind('/');
        struct stat lst {};
        if (::lstat(clean.c_str(), &lst) == 0 &&
            has_module_extension(std::string_view(clean).substr(slash + 1))) {
            base::UniqueFd dir(
                ::open(clean.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            diagnostics.push_back(
                {Diagnostic::Level::Error,
                 describe_unusable_entry(dir.get(), clean.c_str() + slash + 1, clean, ENOENT)});
        }
    }
    return merge(found, clean, diagnostics);
}

} // namespace kmodd::index
