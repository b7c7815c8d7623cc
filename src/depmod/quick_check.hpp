// SPDX-License-Identifier: LGPL-2.1-or-later
// depmod -A's check: is the index newer than every module file?
#pragma once

#include <string>

namespace kmodd::depmod {

/// depmod -A: true when modules.dep exists in `module_dir` and no module file under it
/// (build/ and source/ skipped) is newer than it. Any error means "not up to date".
[[nodiscard]] bool is_index_up_to_date(const std::string& module_dir);

} // namespace kmodd::depmod
