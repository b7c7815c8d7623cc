// SPDX-License-Identifier: LGPL-2.1-or-later
// Files and directories: openat-style reads, and publishing by temp file, fsync and rename.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace kmodd::base {

/// `path` made absolute against the working directory, as kmod's tools do it: prefixed with
/// the cwd and a '/', not normalised ("./x.ko" gives "<cwd>/./x.ko"). An absolute path, or
/// any path when the cwd cannot be read, is returned as it is.
[[nodiscard]] std::string absolute_from_cwd(std::string_view path);

/// pread(2) from `offset` until `size` bytes are in `buffer` or the file ends (EINTR retried):
/// the count read, short only at the end of the file; -1 with errno set on an error.
[[nodiscard]] ssize_t read_at(int fd, char* buffer, size_t size, uint64_t offset);

/// pwrite(2) of all of `bytes` at `offset` (EINTR retried): 0, or the errno of the failure.
[[nodiscard]] int write_at(int fd, std::string_view bytes, uint64_t offset);

/// Opens a directory (O_DIRECTORY|O_CLOEXEC) relative to `dir_fd` (AT_FDCWD for the cwd).
[[nodiscard]] Result<UniqueFd> open_directory(int dir_fd, const std::string& path);

/// Reads the whole file `path` (relative to `dir_fd`), following symlinks.
/// Errors: the errno of open/read, with the path in the message.
[[nodiscard]] Result<std::string> read_file(int dir_fd, const std::string& path);

/// Like read_file, and also returns the stat of the opened file (so the content and the
/// identity belong to the same inode even if the path is replaced concurrently).
[[nodiscard]] Result<std::string> read_file_with_stat(int dir_fd, const std::string& path,
                                                      struct stat& st);

/// The entries of an open directory, read with getdents64 straight from the descriptor (no DIR
/// stream: fdopendir costs two fcntl calls, and a module tree has a thousand directories). "."
/// and ".." come through as any entry. The descriptor stays the caller's.
class DirectoryReader {
public:
    struct Entry {
        std::string_view name; ///< valid until the next call
        unsigned char type;    ///< DT_REG, DT_DIR, DT_LNK, DT_UNKNOWN ...
    };
    explicit DirectoryReader(int dir_fd);

    /// The next entry; false at the end or on a read error.
    bool next(Entry& entry);
    /// Once next() returned false: the errno of the read that failed, 0 at the directory's end.
    [[nodiscard]] int error() const { return error_; }

private:
    int fd_;
    int error_ = 0;
    std::unique_ptr<char[]> buffer_;
    size_t position_ = 0;
    size_t end_ = 0;
};

/// A whole file mapped read-only (MAP_PRIVATE): no copy and no fresh memory to fault in, for
/// large files read once. Its pages are mapped at once (MAP_POPULATE): reading a 9 MiB parse
/// cache page by page took ~1.5 ms more in page faults on a VM. Only for files that are
/// replaced by rename, never truncated in place (a file truncated under the mapping makes
/// reading past its new end fault).
class MappedFile {
public:
    MappedFile() = default;
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    /// Maps `path` (relative to `dir_fd`). Errors: the errno of open/fstat/mmap, naming the
    /// path; EISDIR for a directory.
    [[nodiscard]] static Result<MappedFile> open(int dir_fd, const std::string& path);

    [[nodiscard]] std::string_view bytes() const { return {data_, size_}; }

private:
    const char* data_ = nullptr;
    size_t size_ = 0;
};

/// A file written piece by piece and published at the end, as publish_file() publishes a whole
/// one: the pieces go to a temp file beside it, commit() renames that over the name (no fsync),
/// and a file dropped before commit() is removed. For large files whose content is never held
/// whole in memory.
class StreamedFile {
public:
    StreamedFile() = default;
    StreamedFile(StreamedFile&&) noexcept = default;
    /// Abandons what this one was writing first.
    StreamedFile& operator=(StreamedFile&& other) noexcept;
    ~StreamedFile();

    /// Starts `name` in the directory `dir` (created with its parents, mode 0755, when
    /// missing). Errors: the errno of mkdir/open, naming the path.
    [[nodiscard]] static Result<StreamedFile> create(const std::string& dir,
                                                     const std::string& name);

    [[nodiscard]] bool is_open() const { return fd_.is_valid(); }
    /// Appends `bytes`. Errors: the errno of write (ENOSPC ...).
    [[nodiscard]] Result<void> append(std::string_view bytes);
    /// Overwrites `bytes` at `offset` (e.g. a header once the size is known).
    [[nodiscard]] Result<void> write_at(uint64_t offset, std::string_view bytes);
    /// Replaces the name with what was written. Errors: the errno of close/rename.
    [[nodiscard]] Result<void> commit();
    /// Removes the temp file, leaving the name as it was.
    void abandon();

private:
    UniqueFd dir_fd_;
    UniqueFd fd_;
    std::string name_;
    std::string temp_name_;
};

/// Removes the temp files publish_file(), publish_files() and StreamedFile left in `dir_fd`
/// when their process died before renaming or removing them (".NAME.kmodd-PID-N" where no
/// process PID runs). Returns how many it removed.
size_t remove_stale_temp_files(int dir_fd);

/// Replaces `name` in directory `dir_fd` atomically with `content`: writes a temp file
/// in the same directory, fsyncs it (when `durable`), renames it over `name`. On any failure
/// the temp file is removed and `name` is left as it was. The file mode is 0644.
[[nodiscard]] Result<void> publish_file(int dir_fd, const std::string& name,
                                        std::string_view content, bool durable = true);

/// A file to publish with publish_files(). The content is borrowed.
struct PendingFile {
    std::string name;
    std::string_view content;
};

/// Publishes several files in `dir_fd` as one step as far as failures go: all are written to
/// temp files (and fsynced when `durable`) first; only if every write succeeded are they
/// renamed over their names, in order, and the directory fsynced. On a write failure every
/// temp file is removed and no file is replaced.
[[nodiscard]] Result<void> publish_files(int dir_fd, const std::vector<PendingFile>& files,
                                         bool durable = true);

/// publish_files() for files made one after the other, so that their contents need not all be
/// held at once: add() writes each to its temp file at once (and, when `durable`, fsyncs it on a
/// thread of its own while the caller makes the next file: fsyncs in flight together share the
/// file system's journal commits), commit() waits for those fsyncs, renames the files over
/// their names in the order added and fsyncs the directory. Nothing is replaced before commit();
/// the temp files of a batch that is dropped uncommitted or whose add() failed are removed.
class PublishBatch {
public:
    PublishBatch(int dir_fd, bool durable) : dir_fd_(dir_fd), durable_(durable) {}
    PublishBatch(const PublishBatch&) = delete;
    PublishBatch& operator=(const PublishBatch&) = delete;
    ~PublishBatch();

    /// Writes `content` for `name`. Errors: the errno of creating or writing the temp file,
    /// naming it; every temp file of the batch is then removed and later calls fail too.
    [[nodiscard]] Result<void> add(const std::string& name, std::string_view content);

    /// A file opened for writing piece by piece: its descriptor, and the handle to give
    /// written() once it is complete.
    struct Opened {
        size_t handle;
        int fd;
    };
    /// Starts `name` for a caller that writes it itself (pwrite on `fd`). Errors: as add(),
    /// but the temp files stay until abandon() or the batch's end (writers may still use
    /// their descriptors).
    [[nodiscard]] Result<Opened> open(const std::string& name);
    /// The file opened as `handle` is complete: its fsync starts (when durable).
    void written(size_t handle);
    /// Errors: as publish_files() (a failed rename leaves the files renamed before it).
    [[nodiscard]] Result<void> commit();
    [[nodiscard]] size_t size() const { return pending_.size(); }

private:
    struct Pending {
        std::string name;
        std::string temp_name;
        UniqueFd fd;
        std::thread syncing;             ///< its fsync; not joinable where none could start
        std::unique_ptr<int> sync_error; ///< what that fsync gave: 0 or an errno
    };
    /// Waits for the fsyncs from `from` on and removes their temp files.
    void discard(size_t from);
    /// Gives up after a failed write: removes every temp file; later calls fail.
    void abandon();

    int dir_fd_;
    bool durable_;
    bool failed_ = false;
    std::vector<Pending> pending_;
};

/// Creates directory `path` and its missing parents with `mode` (as mkdir -p). An existing
/// directory is fine. Errors: the errno of the mkdir that failed, naming that directory.
[[nodiscard]] Result<void> make_directories(const std::string& path, mode_t mode);

/// fsync of a directory, so that renames inside it are durable.
[[nodiscard]] Result<void> sync_directory(int dir_fd);

} // namespace kmodd::base
