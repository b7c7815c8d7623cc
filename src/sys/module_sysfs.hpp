// SPDX-License-Identifier: LGPL-2.1-or-later
// Loaded modules read the way libkmod reads them, for the tools that must print kmod's bytes.
#pragma once

#include <string>
#include <vector>

#include "base/result.hpp"

namespace kmodd::sys {

/// What lsmod and rmmod show about loaded modules, read from the same files in the same way
/// as kmod's libkmod, so that kmodctl invoked as lsmod or rmmod prints the same bytes, races
/// included (a module leaving between the reads gives -2 where kmod gives -2). The Kernel seam
/// (kernel.hpp) is the one the loader uses: it sorts holders and fills gaps from /proc/modules.
/// Names are used as given (an empty one too, as libkmod does); a name with a '/' or one that
/// is "." or ".." reads as absent.
class ModuleSysfs {
public:
    explicit ModuleSysfs(std::string sysfs_root = "/sys", std::string procfs_root = "/proc");

    /// The first word of each line of <procfs>/modules, in the file's order. Errors: the
    /// errno of opening or reading it.
    [[nodiscard]] base::Result<std::vector<std::string>> loaded_names() const;

    /// <sysfs>/module/<name>/refcnt; a negative errno when it cannot be opened or does not
    /// hold a number followed by a newline (-EINVAL). For the latter (libkmod complains of it,
    /// not of a missing file) `complaint` gets "could not read integer from '<path>': '<why>'".
    [[nodiscard]] long refcount(const std::string& name, std::string* complaint = nullptr) const;

    /// <sysfs>/module/<name>/coresize, or without that file the second column of the
    /// module's line in <procfs>/modules; a negative errno when <sysfs>/module/<name> is
    /// missing or neither gives a number (-ENOENT).
    [[nodiscard]] long size(const std::string& name) const;

    /// The entries of <sysfs>/module/<name>/holders/ in directory order. Errors: the errno of
    /// opening it, with the path in the message ("could not open '<path>': ...").
    [[nodiscard]] base::Result<std::vector<std::string>> holders(const std::string& name) const;

    /// The first line of <sysfs>/module/<name>/initstate ("live", "coming", "going"); when the
    /// file is missing but the directory exists, "coming" (a module being set up, or a built-in
    /// one: callers check modules.builtin first, as libkmod does). Errors: the errno of the
    /// open when neither exists.
    [[nodiscard]] base::Result<std::string> initstate(const std::string& name) const;

private:
    [[nodiscard]] std::string module_dir(const std::string& name) const;

    std::string sysfs_root_;
    std::string procfs_root_;
};

} // namespace kmodd::sys
