// SPDX-License-Identifier: LGPL-2.1-or-later
// Asking the installed kmod tool which release it is.
#pragma once

#include <optional>
#include <string>

namespace kmodd::sys {

/// What `kmod --version` prints (e.g. "kmod version 34.2\n+ZSTD +XZ ..."), running the kmod
/// found on PATH; nullopt when there is none or it fails. Blocks until it exits.
[[nodiscard]] std::optional<std::string> installed_kmod_version();

/// installed_kmod_version(), remembered in `<cache_dir>/kmod-version` with the identity of the
/// kmod binary found on PATH (path, device, inode, size, modification and change times): while
/// that binary is the same, the answer is read from there instead of running it (a run costs
/// a few milliseconds, as much as a whole warm depmod run's walk of a thousand directories).
/// Where the cache cannot be written, kmod is run each time.
[[nodiscard]] std::optional<std::string> installed_kmod_version(const std::string& cache_dir);

} // namespace kmodd::sys
