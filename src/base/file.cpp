// SPDX-License-Identifier: LGPL-2.1-or-later
// Files and directories: openat-style reads, and publishing by temp file, fsync and rename.
#include "base/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#include "base/strings.hpp"
#include "base/threads.hpp"

namespace kmodd::base {

Unexpected errno_error(int code, const std::string& what)
{
    return make_error(code, what + ": " + std::strerror(code));
}

Result<UniqueFd> open_directory(int dir_fd, const std::string& path)
{
    int fd = ::openat(dir_fd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno_error(errno, "'" + path + "'");
    return UniqueFd(fd);
}

Result<std::string> read_file_with_stat(int dir_fd, const std::string& path, struct stat& st)
{
    UniqueFd fd(::openat(dir_fd, path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_valid())
        return errno_error(errno, "'" + path + "'");
    if (::fstat(fd.get(), &st) < 0)
        return errno_error(errno, "'" + path + "'");
    if (S_ISDIR(st.st_mode))
        return errno_error(EISDIR, "'" + path + "'");
    std::string content;
    // st_size is a hint only: the file may grow or shrink while it is read.
    content.resize(static_cast<size_t>(st.st_size > 0 ? st.st_size : 0) + 1);
    size_t used = 0;
    for (;;) {
        if (used == content.size())
            content.resize(content.size() * 2 + 4096);
        ssize_t n = ::read(fd.get(), content.data() + used, content.size() - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_error(errno, "'" + path + "'");
        }
        if (n == 0)
            break;
        used += static_cast<size_t>(n);
    }
    content.resize(used);
    return content;
}

namespace {
constexpr size_t kDirectoryBuffer = size_t{32} * 1024;
} // namespace

DirectoryReader::DirectoryReader(int dir_fd)
    : fd_(dir_fd), buffer_(std::make_unique_for_overwrite<char[]>(kDirectoryBuffer))
{
}

bool DirectoryReader::next(Entry& entry)
{
    if (position_ >= end_) {
        ssize_t count;
        do {
            count = ::getdents64(fd_, buffer_.get(), kDirectoryBuffer);
        } while (count < 0 && errno == EINTR);
        if (count <= 0) {
            error_ = count < 0 ? errno : 0;
            return false;
        }
        position_ = 0;
        end_ = static_cast<size_t>(count);
    }
    // The kernel aligns each record; the fields are read where dirent64 puts them.
    const char* record = buffer_.get() + position_;
    unsigned short length = 0;
    std::memcpy(&length, record + offsetof(struct dirent64, d_reclen), sizeof length);
    entry.type = static_cast<unsigned char>(record[offsetof(struct dirent64, d_type)]);
    entry.name = std::string_view(record + offsetof(struct dirent64, d_name));
    position_ += length;
    return true;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
{
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept
{
    if (this != &other) {
        MappedFile old(std::move(*this));
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

MappedFile::~MappedFile()
{
    if (data_ != nullptr)
        ::munmap(const_cast<char*>(data_), size_);
}

Result<MappedFile> MappedFile::open(int dir_fd, const std::string& path)
{
    UniqueFd fd(::openat(dir_fd, path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.is_valid() || ::fstat(fd.get(), &st) < 0)
        return errno_error(errno, "'" + path + "'");
    if (S_ISDIR(st.st_mode))
        return errno_error(EISDIR, "'" + path + "'");
    MappedFile file;
    if (st.st_size <= 0)
        return file;
    // Read whole: its pages are mapped by the one call, not one page fault each.
    void* data = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
                        MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
    if (data == MAP_FAILED)
        return errno_error(errno, "'" + path + "'");
    file.data_ = static_cast<const char*>(data);
    file.size_ = static_cast<size_t>(st.st_size);
    return file;
}

Result<std::string> read_file(int dir_fd, const std::string& path)
{
    struct stat st {};
    return read_file_with_stat(dir_fd, path, st);
}

namespace {

Result<void> write_all(int fd, std::string_view content, const std::string& what)
{
    while (!content.empty()) {
        ssize_t n = ::write(fd, content.data(), content.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno_error(errno, what);
        }
        content.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

std::string temp_name_for(const std::string& name)
{
    static std::atomic<unsigned> counter{0};
    return "." + name + ".kmodd-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter.fetch_add(1));
}

/// The process that made temp file `name` (see temp_name_for()), 0 when `name` is none.
pid_t temp_file_owner(std::string_view name)
{
    const size_t mark = name.rfind(".kmodd-");
    if (!name.starts_with('.') || mark == std::string_view::npos || mark == 0)
        return 0;
    std::string_view rest = name.substr(mark + 7);
    const size_t dash = rest.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == rest.size())
        return 0;
    auto all_digits = [](std::string_view text) {
        return !text.empty() && text.size() <= 9 &&
               std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!all_digits(rest.substr(0, dash)) || !all_digits(rest.substr(dash + 1)))
        return 0;
    return static_cast<pid_t>(std::stol(std::string(rest.substr(0, dash))));
}

struct TempFile {
    std::string name;
    UniqueFd fd;
};

/// A new temp file for `name` in `dir_fd`, mode 0644, open for writing.
Result<TempFile> create_temp(int dir_fd, const std::string& name)
{
    TempFile tmp{temp_name_for(name), UniqueFd()};
    tmp.fd.reset(::openat(dir_fd, tmp.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!tmp.fd.is_valid())
        return errno_error(errno, "cannot create '" + tmp.name + "'");
    // The umask must not change the mode kmod's depmod gives its outputs.
    if (::fchmod(tmp.fd.get(), 0644) < 0) {
        const int error = errno;
        ::unlinkat(dir_fd, tmp.name.c_str(), 0);
        return errno_error(error, "cannot chmod '" + tmp.name + "'");
    }
    return tmp;
}

} // namespace

ssize_t read_at(int fd, char* buffer, size_t size, uint64_t offset)
{
    size_t done = 0;
    while (done < size) {
        const ssize_t n =
            ::pread(fd, buffer + done, size - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

int write_at(int fd, std::string_view bytes, uint64_t offset)
{
    while (!bytes.empty()) {
        const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        bytes.remove_prefix(static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return 0;
}

StreamedFile::~StreamedFile()
{
    abandon();
}

StreamedFile& StreamedFile::operator=(StreamedFile&& other) noexcept
{
    if (this != &other) {
        abandon();
        dir_fd_ = std::move(other.dir_fd_);
        fd_ = std::move(other.fd_);
        name_ = std::move(other.name_);
        temp_name_ = std::move(other.temp_name_);
    }
    return *this;
}

void StreamedFile::abandon()
{
    if (!fd_.is_valid())
        return;
    fd_.reset();
    ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
}

Result<StreamedFile> StreamedFile::create(const std::string& dir, const std::string& name)
{
    if (auto made = make_directories(dir, 0755); !made)
        return Unexpected(made.error());
    auto dir_fd = open_directory(AT_FDCWD, dir);
    if (!dir_fd)
        return Unexpected(dir_fd.error());
    StreamedFile file;
    file.dir_fd_ = std::move(*dir_fd);
    file.name_ = name;
    file.temp_name_ = temp_name_for(name);
    file.fd_.reset(::openat(file.dir_fd_.get(), file.temp_name_.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!file.fd_.is_valid())
        return errno_error(errno, "cannot create '" + dir + "/" + file.temp_name_ + "'");
    if (::fchmod(file.fd_.get(), 0644) < 0)
        return errno_error(errno, "cannot chmod '" + dir + "/" + file.temp_name_ + "'");
    return file;
}

Result<void> StreamedFile::append(std::string_view bytes)
{
    return write_all(fd_.get(), bytes, "cannot write '" + name_ + "'");
}

Result<void> StreamedFile::write_at(uint64_t offset, std::string_view bytes)
{
    if (const int error = base::write_at(fd_.get(), bytes, offset); error != 0)
        return errno_error(error, "cannot write '" + name_ + "'");
    return {};
}

Result<void> StreamedFile::commit()
{
    const int fd = fd_.release();
    if (::close(fd) < 0) {
        const int error = errno;
        ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
        return errno_error(error, "cannot write '" + name_ + "'");
    }
    if (::renameat(dir_fd_.get(), temp_name_.c_str(), dir_fd_.get(), name_.c_str()) < 0) {
        const int error = errno;
        ::unlinkat(dir_fd_.get(), temp_name_.c_str(), 0);
        return errno_error(error, "cannot rename to '" + name_ + "'");
    }
    return {};
}

Result<void> publish_file(int dir_fd, const std::string& name, std::string_view content,
                          bool durable)
{
    return publish_files(dir_fd, {PendingFile{name, content}}, durable);
}

Result<void> publish_files(int dir_fd, const std::vector<PendingFile>& files, bool durable)
{
    PublishBatch batch(dir_fd, durable);
    for (const PendingFile& file : files) {
        if (auto added = batch.add(file.name, file.content); !added)
            return added;
    }
    return batch.commit();
}

PublishBatch::~PublishBatch()
{
    discard(0);
}

void PublishBatch::discard(size_t from)
{
    for (size_t i = from; i < pending_.size(); ++i) {
        if (pending_[i].syncing.joinable())
            pending_[i].syncing.join(); // it uses the descriptor the file closes
        ::unlinkat(dir_fd_, pending_[i].temp_name.c_str(), 0);
    }
    pending_.resize(std::min(from, pending_.size()));
}

Result<void> PublishBatch::add(const std::string& name, std::string_view content)
{
    auto opened = open(name);
    if (!opened) {
        abandon();
        return Unexpected(opened.error());
    }
    if (auto done = write_all(opened->fd, content, "cannot write '" + name + "'"); !done) {
        abandon();
        return done;
    }
    written(opened->handle);
    return {};
}

Result<PublishBatch::Opened> PublishBatch::open(const std::string& name)
{
    if (failed_)
        return errno_error(EIO, "cannot write '" + name + "': an earlier file failed");
    auto tmp = create_temp(dir_fd_, name);
    if (!tmp) {
        failed_ = true;
        return Unexpected(tmp.error());
    }
    pending_.push_back({name, std::move(tmp->name), std::move(tmp->fd), {}, {}});
    return Opened{pending_.size() - 1, pending_.back().fd.get()};
}

void PublishBatch::written(size_t handle)
{
    if (!durable_ || handle >= pending_.size())
        return;
    // Flushed now, while the next file is made; commit() waits for it. Where no thread can
    // be started, its writeback starts now and commit() fsyncs it.
    Pending& file = pending_[handle];
    file.sync_error = std::make_unique<int>(0);
    file.syncing = try_start_thread([fd = file.fd.get(), error = file.sync_error.get()] {
        *error = ::fsync(fd) < 0 ? errno : 0;
    });
    if (!file.syncing.joinable())
        ::sync_file_range(file.fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
}

void PublishBatch::abandon()
{
    failed_ = true;
    discard(0);
}

Result<void> PublishBatch::commit()
{
    // The temp files from `from` on are removed; those before it were renamed already.
    auto fail = [&](size_t from, int err, const std::string& what) {
        failed_ = true;
        discard(from);
        pending_.clear();
        return errno_error(err, what);
    };
    if (failed_)
        return fail(0, EIO, "cannot publish: an earlier file failed");
    if (durable_) {
        for (Pending& file : pending_) {
            int err = 0;
            if (file.syncing.joinable()) {
                file.syncing.join();
                err = *file.sync_error;
            } else if (::fsync(file.fd.get()) < 0) {
                err = errno;
            }
            if (err != 0)
                return fail(0, err, "cannot fsync '" + file.name + "'");
        }
    }
    for (Pending& file : pending_) {
        if (::close(file.fd.release()) < 0) {
            const int err = errno;
            return fail(0, err, "cannot close '" + file.name + "'");
        }
    }
    for (size_t i = 0; i < pending_.size(); ++i) {
        if (::renameat(dir_fd_, pending_[i].temp_name.c_str(), dir_fd_, pending_[i].name.c_str()) <
            0) {
            const int err = errno;
            return fail(i, err, "cannot replace '" + pending_[i].name + "'");
        }
    }
    const bool renamed_any = !pending_.empty();
    pending_.clear();
    if (durable_ && renamed_any)
        return sync_directory(dir_fd_);
    return {};
}

Result<void> sync_directory(int dir_fd)
{
    if (::fsync(dir_fd) < 0)
        return errno_error(errno, "cannot fsync directory");
    return {};
}

std::string absolute_from_cwd(std::string_view path)
{
    if (path.starts_with('/'))
        return std::string(path);
    std::array<char, PATH_MAX> cwd{};
    if (::getcwd(cwd.data(), cwd.size()) == nullptr)
        return std::string(path);
    return std::string(cwd.data()) + "/" + std::string(path);
}

Result<void> make_directories(const std::string& path, mode_t mode)
{
    // Each prefix that ends before a '/', then the whole path.
    for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
        const std::string prefix = path.substr(0, end);
        if (!prefix.empty() && ::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST)
            return make_error(errno, "could not create directory " + quoted(prefix) + ": " +
                                         std::strerror(errno));
        if (end == std::string::npos)
            break;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error(ENOTDIR, quoted(path) + " is not a directory");
    return {};
}

size_t remove_stale_temp_files(int dir_fd)
{
    std::vector<std::string> stale;
    {
        DirectoryReader reader(dir_fd);
        DirectoryReader::Entry entry{};
        while (reader.next(entry)) {
            const pid_t owner = temp_file_owner(entry.name);
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            if (owner > 0 && owner != ::getpid() && ::kill(owner, 0) != 0 && errno == ESRCH)
                stale.emplace_back(entry.name);
        }
    }
    size_t removed = 0;
    for (const std::string& name : stale)
        removed += ::unlinkat(dir_fd, name.c_str(), 0) == 0 ? 1 : 0;
    return removed;
}

} // namespace kmodd::base
