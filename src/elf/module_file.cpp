// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading a module file from disk, decompressed, into a parsed ModuleInfo.
#include "elf/module_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>

#include "base/file.hpp"
#include "base/unique_fd.hpp"
#include "elf/decompress.hpp"
#include "elf/image_buffer.hpp"
#include "elf/parse_module.hpp"

namespace kmodd::elf {

namespace {

/// The whole file into `content`; `size_hint` (st_size) only sizes the first read.
base::Result<void> read_all(int fd, size_t size_hint, ImageBuffer& content)
{
    if (!content.resize(size_hint + 1))
        return base::make_error(ENOMEM, "cannot read: out of memory");
    size_t used = 0;
    for (;;) {
        if (used == content.size() && !content.resize(content.size() * 2))
            return base::make_error(ENOMEM, "cannot read: out of memory");
        ssize_t count = base::read_at(fd, content.data() + used, content.size() - used, used);
        if (count < 0)
            return base::errno_error(errno, "cannot read");
        used += static_cast<size_t>(count);
        if (used < content.size())
            break;
    }
    (void)content.resize(used); // shrinking always succeeds
    return {};
}

} // namespace

base::Result<ModuleInfo> load_module_file(int dir_fd, const std::string& path, struct stat& st)
{
    LoadBuffers buffers;
    return load_module_file(dir_fd, path, st, buffers);
}

base::Result<ModuleInfo> load_module_file(int dir_fd, const std::string& path, struct stat& st,
                                          LoadBuffers& buffers)
{
    base::UniqueFd fd(::openat(dir_fd, path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_valid())
        return base::errno_error(errno, "cannot open");
    if (::fstat(fd.get(), &st) < 0)
        return base::errno_error(errno, "cannot stat");
    if (S_ISDIR(st.st_mode))
        return base::errno_error(EISDIR, "cannot read");
    if (!S_ISREG(st.st_mode))
        return base::make_error(EINVAL, "not a regular file");
    if (st.st_size <= 0)
        return parse_module({});
    if (static_cast<uintmax_t>(st.st_size) > SIZE_MAX / 2)
        return base::errno_error(EFBIG, "cannot read");

    // The ELF header decides between the two paths (the magic, not the file name).
    char head[64];
    ssize_t head_size = base::read_at(fd.get(), head, sizeof head, 0);
    if (head_size < 0)
        return base::errno_error(errno, "cannot read");
    std::string_view head_bytes(head, static_cast<size_t>(head_size));

    if (detect_compression(head_bytes) == Compression::None) {
        // pread of the headers and the few sections needed: most of a module is code that
        // is never read. (mmap would also fault in only those pages, but unmapping costs a
        // TLB flush per module, which made a full tree several times slower, and a file
        // truncated meanwhile would raise SIGBUS instead of returning an error.)
        return parse_module_file(fd.get(), static_cast<uint64_t>(st.st_size), head_bytes);
    }
    if (auto read = read_all(fd.get(), static_cast<size_t>(st.st_size), buffers.compressed); !read)
        return base::Unexpected(std::move(read.error()));
    fd.reset();
    if (auto done = decompress_image(buffers.compressed.view(), buffers.image); !done)
        return base::Unexpected(std::move(done.error()));
    return parse_module(buffers.image.view());
}

} // namespace kmodd::elf
