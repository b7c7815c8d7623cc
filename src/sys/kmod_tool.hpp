// SPDX-License-Identifier: LGPL-2.1-or-later
// Asking the installed kmod tool which release it is.
#pragma once

#include <optional>
#include <string>

namespace kmodd::sys {

/// What `kmod --version` prints (e.g. "kmod version 34.2\n+ZSTD +XZ ..."), running the kmod
/// found on PATH; nullopt when there is none or it fails. Blocks until it exits.
[[nodiscard]] std::optional<std::string> installed_kmod_version();

} // namespace kmodd::sys
