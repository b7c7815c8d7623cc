// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading module files from disk: compression detected, image decompressed and parsed.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "elf/image_buffer.hpp"
#include "elf/module_info.hpp"

namespace kmodd::elf {

enum class Compression { None, Xz, Zstd, Gzip };

/// Detects the compression of a module image from its magic bytes
/// (zstd 28 B5 2F FD, xz FD 37 7A 58 5A 00, gzip 1F 8B), whatever the file name says.
[[nodiscard]] Compression detect_compression(std::string_view bytes);

/// Decompresses an xz, zstd or gzip image into memory. Errors: EBADMSG (corrupt or
/// truncated stream, message names the codec), ENOMEM, EINVAL (not compressed).
[[nodiscard]] base::Result<std::string> decompress(std::string_view bytes);

/// Parses an uncompressed ELF module image (ELF32/ELF64, either byte order) with libelf.
/// Never reads outside `image`. Errors: ENOEXEC with a sentence saying what is wrong
/// ("not an ELF file", ".symtab: entry 12 name offset out of range", ...).
[[nodiscard]] base::Result<ModuleInfo> parse_module(std::string_view image);

/// modprobe --show-modversions: the records of the __versions section of an uncompressed
/// image, in section order (CRC and name; a leading '.' of a name dropped, as kmod does).
/// Errors: ENOEXEC (not ELF, as parse_module), ENOENT (no __versions section), EINVAL (its
/// size is no multiple of the 64-byte record).
[[nodiscard]] base::Result<std::vector<ImportedSymbol>> read_modversions(std::string_view image);

/// modprobe --show-exports: the symbols an uncompressed image exports, with their CRCs, in
/// parse_module's (and kmod's) order. Errors: ENOEXEC; ENOENT when the module has neither
/// __crc_ symbols nor a __ksymtab_strings section.
[[nodiscard]] base::Result<std::vector<ExportedSymbol>>
read_exported_symbols(std::string_view image);

/// Reads the module file `path` relative to `dir_fd` (following symlinks), decompresses it
/// if needed and parses it. Uncompressed files are read with pread through libelf, section by
/// section, so only the headers and the few sections depmod needs are read (mmap was measured
/// 4x slower on VMs, where every munmap flushes TLBs). `st` receives the stat of the file that was
/// read. Errors carry the errno (ENOENT, EACCES, ENOEXEC, EBADMSG, ...) and a message without the
/// path (the caller adds it).
[[nodiscard]] base::Result<ModuleInfo> load_module_file(int dir_fd, const std::string& path,
                                                        struct stat& st);

/// Memory that load_module_file reuses from one call to the next, for a loop over many
/// compressed modules on one thread: a call then neither allocates its buffers nor faults in
/// fresh pages. What it holds beyond ImageBuffer::kMapThreshold goes back to the system when
/// it is destroyed (not to the heap, where a daemon would keep it).
struct LoadBuffers {
    ImageBuffer compressed; ///< the file as read
    ImageBuffer image;      ///< the file decompressed
};

/// load_module_file, reusing `buffers`.
[[nodiscard]] base::Result<ModuleInfo> load_module_file(int dir_fd, const std::string& path,
                                                        struct stat& st, LoadBuffers& buffers);

} // namespace kmodd::elf
