// SPDX-License-Identifier: LGPL-2.1-or-later
// Paths in a module tree, as the walk and the incremental updates see them.
#pragma once

#include <string>
#include <string_view>

namespace kmodd::index {

/// Whether `path` lies below the directory `dir` (not `dir` itself).
inline bool starts_with_dir(std::string_view path, std::string_view dir)
{
    return path.size() > dir.size() && path[dir.size()] == '/' && path.starts_with(dir);
}

/// One sentence for the entry `name` of `dir_fd` (at `path`) that cannot be followed, with
/// `err`: a dangling or looping symlink says where it leads.
[[nodiscard]] std::string describe_unusable_entry(int dir_fd, const char* name,
                                                  const std::string& path, int err);

} // namespace kmodd::index
