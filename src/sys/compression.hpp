// SPDX-License-Identifier: LGPL-2.1-or-later
// Internal to kmodd_sys (and its tests): which syscall loads a module file.
#pragma once

#include <string_view>

namespace kmodd::sys {

/// A module file's compression, told by its magic bytes.
enum class Compression { None, Zstd, Xz, Gzip };

/// The compression of a file starting with `head` (its first bytes; 6 are enough).
[[nodiscard]] Compression detect_compression(std::string_view head);

/// The compression named by /sys/module/compression ("zstd\n", "xz\n", "gzip\n"); None for
/// anything else, including an absent file (kernel without CONFIG_MODULE_DECOMPRESS).
[[nodiscard]] Compression parse_kernel_compression(std::string_view text);

/// How a module file reaches the kernel.
enum class InsertMethod {
    FinitPlain,      ///< finit_module(fd, params, 0)
    FinitCompressed, ///< finit_module(fd, params, MODULE_INIT_COMPRESSED_FILE)
    Decompress,      ///< decompress in userspace, then init_module
};

/// The method for a file compressed with `file` on a kernel that decompresses `kernel`.
[[nodiscard]] InsertMethod choose_insert_method(Compression file, Compression kernel);

} // namespace kmodd::sys
