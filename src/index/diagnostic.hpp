// SPDX-License-Identifier: LGPL-2.1-or-later
// What a run noticed and went on with, for the front-end to show.
#pragma once

#include <string>
#include <vector>

namespace kmodd::index {

/// Something a run noticed and went on with; the front-end decides how to show it
/// (kmod's depmod prints "depmod: WARNING: ..." / "depmod: ERROR: ...").
struct Diagnostic {
    enum class Level { Info, Warning, Error };
    Level level = Level::Warning;
    std::string message;
};

using Diagnostics = std::vector<Diagnostic>;

} // namespace kmodd::index
