// SPDX-License-Identifier: LGPL-2.1-or-later
// Internal to kmodd_elf (and its tests): decompression with an explicit output limit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "elf/image_buffer.hpp"

namespace kmodd::elf {

/// The largest decompressed module image `decompress` accepts (a decompression bomb guard;
/// the largest Debian module is about 20 MiB).
inline constexpr size_t kMaxDecompressedSize = size_t{1} << 30;

/// Like `decompress`, but fails with ENOMEM once the output would exceed `max_size` bytes.
[[nodiscard]] base::Result<std::string> decompress_bounded(std::string_view bytes, size_t max_size);

/// Like `decompress`, into `image` (reusing its memory; a large image does not stay in the
/// heap). On failure `image` holds garbage.
[[nodiscard]] base::Result<void> decompress_image(std::string_view bytes, ImageBuffer& image);

} // namespace kmodd::elf
