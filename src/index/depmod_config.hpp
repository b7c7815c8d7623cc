// SPDX-License-Identifier: LGPL-2.1-or-later
// depmod.d configuration: which copy of a module wins, which folders count.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "index/diagnostic.hpp"

namespace kmodd::index {

/// depmod.d configuration: which copy of a duplicated module wins, which extra directories
/// are scanned, which names are skipped. Lists are kept in kmod's internal order (each
/// directive is prepended, so the entry listed first in the files comes last here).
struct DepmodConfig {
    struct Search {
        enum class Kind { Path, BuiltIn, External };
        Kind kind = Kind::Path;
        std::string path; ///< subdirectory of the module dir, for Kind::Path
    };
    std::vector<Search> searches;       ///< lowest priority first
    std::vector<std::string> overrides; ///< "subdir/modname" (raw spelling, no extension)
    std::vector<std::string> externals; ///< absolute directories, not prefixed by -b
    std::vector<std::string> excludes;  ///< entry names skipped anywhere in the walk

    /// The default config paths of kmod 30: /etc, /run, /usr/local/lib, /lib (depmod.d).
    static std::vector<std::string> default_paths();

    /// Loads the configuration from `paths` (files or directories of *.conf; basenames are
    /// sorted across all directories and the first directory wins for a basename), for
    /// kernel `kernel_version` (override/external version patterns are POSIX EREs or "*").
    /// A missing path is skipped. Problems are reported in `diagnostics` with file:line.
    static DepmodConfig load(const std::vector<std::string>& paths,
                             const std::string& kernel_version, Diagnostics& diagnostics);

    /// Parses one file's text (exposed for tests). `filename` is used in messages.
    void parse(std::string_view text, std::string_view filename, const std::string& kernel_version,
               Diagnostics& diagnostics);

    /// Adds kmod's implicit "search updates" when no search directive was given.
    void finish();
};

} // namespace kmodd::index
