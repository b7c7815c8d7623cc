// SPDX-License-Identifier: LGPL-2.1-or-later
// Modules under development (kmodctl dev): a developer's module file made part of a kernel's
// tree by a symlink that depmod's default search prefers to the kernel's own modules.
#pragma once

#include <string>

#include "service/request_error.hpp"

namespace kmodd::service {

/// The directory below a release's module directory that holds the links: depmod searches
/// "updates" before the kernel's own modules, so a linked module wins over one of the same
/// name that the kernel ships.
inline constexpr const char* kDevLinkDir = "updates/kmodd-dev";

/// A module file linked into a release's tree.
struct DevLink {
    std::string module; ///< the module's name (kmod's, from the file name)
    std::string link;   ///< the symlink's path
};

/// Links `file` (an absolute path to a regular file named NAME.ko, .ko.xz, .ko.zst or .ko.gz)
/// into `release_dir`/updates/kmodd-dev/, made if missing. The link appears at once, complete
/// (made under a temporary name and renamed). Linking the same file again changes nothing.
/// Errors: InvalidName (not absolute, not a module file name, a name kmodd refuses), NotFound
/// (no such regular file), InUse (the module is linked to another file: the message names it
/// and how to unlink it), Failed (the file system's errno, with the path).
[[nodiscard]] RequestResult<DevLink> link_dev_module(const std::string& release_dir,
                                                     const std::string& file);

/// Removes the link of module `module` from `release_dir`/updates/kmodd-dev/ (the directory
/// too when it is left empty). Returns the link's path. Errors: InvalidName, NotFound (no
/// link of that module), Failed (errno with the path).
[[nodiscard]] RequestResult<std::string> unlink_dev_module(const std::string& release_dir,
                                                           const std::string& module);

} // namespace kmodd::service
