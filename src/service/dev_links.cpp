// SPDX-License-Identifier: LGPL-2.1-or-later
// Links of modules under development, made and removed atomically.
#include "service/dev_links.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "index/names.hpp"
#include "service/request_support.hpp"

namespace kmodd::service {
namespace {

using base::quoted;

RequestError failed(int error, const std::string& what)
{
    return RequestError{Failure::Failed, what + ": " + std::strerror(error), error};
}

/// The entry of module `module` in the link directory, if any: its name.
RequestResult<std::optional<std::string>> find_entry(int dir_fd, const std::string& dir,
                                                     const std::string& module)
{
    int fd = ::dup(dir_fd);
    if (fd < 0)
        return tl::unexpected(failed(errno, "cannot read " + quoted(dir)));
    DIR* stream = ::fdopendir(fd);
    if (stream == nullptr) {
        int error = errno;
        ::close(fd);
        return tl::unexpected(failed(error, "cannot read " + quoted(dir)));
    }
    ::rewinddir(stream);
    std::optional<std::string> found;
    while (const dirent* entry = ::readdir(stream)) {
        std::string name = entry->d_name;
        if (index::has_module_extension(name) && index::modname_from_path(name) == module) {
            found = std::move(name);
            break;
        }
    }
    ::closedir(stream);
    return found;
}

/// The target of symlink `name` in `dir_fd`; nullopt when it is no symlink.
std::optional<std::string> link_target(int dir_fd, const std::string& name)
{
    char buffer[4096];
    ssize_t length = ::readlinkat(dir_fd, name.c_str(), buffer, sizeof buffer);
    if (length < 0 || static_cast<size_t>(length) == sizeof buffer)
        return std::nullopt;
    return std::string(buffer, static_cast<size_t>(length));
}

} // namespace

RequestResult<DevLink> link_dev_module(const std::string& release_dir, const std::string& file)
{
    if (file.empty() || file.front() != '/')
        return fail(Failure::InvalidName,
                    "The module file " + quoted(file) + " is not an absolute path.");
    const std::string basename = file.substr(file.rfind('/') + 1);
    if (!index::has_module_extension(basename))
        return fail(Failure::InvalidName, quoted(file) +
                                              " is not a module file: its name does not end in "
                                              ".ko, .ko.xz, .ko.zst or .ko.gz.");
    const std::string module = index::modname_from_path(basename);
    if (auto invalid = check_name(module))
        return tl::unexpected(std::move(*invalid));
    struct stat status {};
    if (::stat(file.c_str(), &status) != 0) {
        int error = errno;
        if (error == ENOENT)
            return fail(Failure::NotFound, "There is no module file " + quoted(file) + ".");
        return tl::unexpected(failed(error, "Cannot read " + quoted(file)));
    }
    if (!S_ISREG(status.st_mode))
        return fail(Failure::InvalidName, quoted(file) + " is not a regular file.");

    const std::string dir = release_dir + "/" + kDevLinkDir;
    if (auto made = base::make_directories(dir, 0755); !made)
        return fail(Failure::Failed, as_sentence(made.error().message));
    auto dir_fd = base::open_directory(AT_FDCWD, dir);
    if (!dir_fd)
        return fail(Failure::Failed, as_sentence(dir_fd.error().message));
    auto existing = find_entry(dir_fd->get(), dir, module);
    if (!existing)
        return tl::unexpected(std::move(existing.error()));
    if (*existing) {
        std::optional<std::string> target = link_target(dir_fd->get(), **existing);
        if (!target)
            return fail(Failure::Failed, quoted(dir + "/" + **existing) +
                                             " is not a link kmodd made; remove it first.");
        if (*target != file)
            return fail(Failure::InUse,
                        "Module " + quoted(module) + " is linked to " + quoted(*target) +
                            " already; unlink it first (kmodctl dev --unlink " + module + ").");
        return DevLink{module, dir + "/" + basename}; // the same file: linked already
    }
    // The link appears complete or not at all: made under a name depmod ignores, then renamed.
    const std::string temporary = "." + basename + ".kmodd-link";
    ::unlinkat(dir_fd->get(), temporary.c_str(), 0);
    if (::symlinkat(file.c_str(), dir_fd->get(), temporary.c_str()) != 0)
        return tl::unexpected(failed(errno, "Cannot link " + quoted(dir + "/" + basename)));
    if (::renameat(dir_fd->get(), temporary.c_str(), dir_fd->get(), basename.c_str()) != 0) {
        int error = errno;
        ::unlinkat(dir_fd->get(), temporary.c_str(), 0);
        return tl::unexpected(failed(error, "Cannot link " + quoted(dir + "/" + basename)));
    }
    return DevLink{module, dir + "/" + basename};
}

RequestResult<std::string> unlink_dev_module(const std::string& release_dir,
                                             const std::string& module)
{
    if (auto invalid = check_name(module))
        return tl::unexpected(std::move(*invalid));
    const std::string name = index::normalize_modname(module);
    const std::string dir = release_dir + "/" + kDevLinkDir;
    auto dir_fd = base::open_directory(AT_FDCWD, dir);
    if (!dir_fd && dir_fd.error().code != ENOENT)
        return fail(Failure::Failed, as_sentence(dir_fd.error().message));
    std::optional<std::string> entry;
    if (dir_fd) {
        auto existing = find_entry(dir_fd->get(), dir, name);
        if (!existing)
            return tl::unexpected(std::move(existing.error()));
        entry = std::move(*existing);
    }
    if (!entry || !link_target(dir_fd->get(), *entry))
        return fail(Failure::NotFound,
                    "Module " + quoted(module) + " is not linked in " + quoted(dir) + ".");
    if (::unlinkat(dir_fd->get(), entry->c_str(), 0) != 0)
        return tl::unexpected(failed(errno, "Cannot remove " + quoted(dir + "/" + *entry)));
    // Left empty, the directory goes too (a failure only means someone put something there).
    ::rmdir(dir.c_str());
    return dir + "/" + *entry;
}

} // namespace kmodd::service
