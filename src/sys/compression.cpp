// SPDX-License-Identifier: LGPL-2.1-or-later
// Telling a module file's compression by its magic bytes, and the one the kernel decompresses.
#include "sys/compression.hpp"

#include "base/strings.hpp"

namespace kmodd::sys {

Compression detect_compression(std::string_view head)
{
    using namespace std::string_view_literals;
    if (head.starts_with("\x28\xB5\x2F\xFD"sv))
        return Compression::Zstd;
    if (head.starts_with("\xFD\x37\x7A\x58\x5A\x00"sv))
        return Compression::Xz;
    if (head.starts_with("\x1F\x8B"sv))
        return Compression::Gzip;
    return Compression::None;
}

Compression parse_kernel_compression(std::string_view text)
{
    text = base::trim(text);
    if (text == "zstd")
        return Compression::Zstd;
    if (text == "xz")
        return Compression::Xz;
    if (text == "gzip")
        return Compression::Gzip;
    return Compression::None;
}

InsertMethod choose_insert_method(Compression file, Compression kernel)
{
    if (file == Compression::None)
        return InsertMethod::FinitPlain;
    if (file == kernel)
        return InsertMethod::FinitCompressed;
    return InsertMethod::Decompress;
}

} // namespace kmodd::sys
