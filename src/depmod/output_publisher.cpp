// SPDX-License-Identifier: LGPL-2.1-or-later
// OutputPublisher: a sink per output file, comparing with the old file until they differ.
#include "depmod/output_publisher.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kmodd::depmod {

namespace {

/// Reads `size` bytes at `offset` into `buffer`; false on an error or a short file.
bool read_exactly(int fd, char* buffer, size_t size, size_t offset)
{
    return base::read_at(fd, buffer, size, offset) == static_cast<ssize_t>(size);
}

} // namespace

class OutputPublisher::Sink final : public OutputSink {
public:
    Sink(OutputPublisher& owner, const char* name) : owner_(owner), name_(name)
    {
        if (owner_.dir_fd_ < 0)
            return;
        old_.reset(::openat(owner_.dir_fd_, name, O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (old_.is_valid() && ::fstat(old_.get(), &st) == 0 && S_ISREG(st.st_mode))
            old_size_ = static_cast<size_t>(st.st_size);
        else
            old_.reset();
    }

    [[nodiscard]] const std::string& name() const { return name_; }

private:
    void consume(size_t offset, std::string_view chunk) override
    {
        if (owner_.dir_fd_ < 0 || owner_.failed_)
            return;
        if (!temp_) {
            if (old_holds(offset, chunk)) {
                matched_end_ = std::max(matched_end_, offset + chunk.size());
                if (offset == 0)
                    copy_from_ = 0;
                return;
            }
            if (!diverge())
                return;
        }
        if (const int error = base::write_at(temp_->fd, chunk, offset); error != 0)
            owner_.fail(base::errno_error(error, "cannot write '" + name_ + "'"));
    }

    void finished() override
    {
        // Every chunk the same, the old file longer: the new one is its beginning.
        if (owner_.dir_fd_ >= 0 && !owner_.failed_ && !temp_ && size() != old_size_)
            diverge();
        owner_.finished(*this, temp_);
    }

    [[nodiscard]] bool old_holds(size_t offset, std::string_view chunk)
    {
        if (!old_.is_valid() || offset + chunk.size() > old_size_)
            return false;
        return read_exactly(old_.get(), scratch(), chunk.size(), offset) &&
               std::memcmp(buffer_.get(), chunk.data(), chunk.size()) == 0;
    }

    /// A chunk's room for bytes of the old file, made when first needed.
    char* scratch()
    {
        if (buffer_ == nullptr)
            buffer_ = std::make_unique_for_overwrite<char[]>(kChunk);
        return buffer_.get();
    }

    /// From now on the file is written: its temp file gets the bytes found the same so far.
    bool diverge()
    {
        temp_ = owner_.start(name_);
        if (!temp_)
            return false;
        for (size_t at = copy_from_; at < matched_end_;) {
            loff_t in = static_cast<loff_t>(at), out = in;
            const ssize_t n =
                ::copy_file_range(old_.get(), &in, temp_->fd, &out, matched_end_ - at, 0);
            if (n > 0) {
                at += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            // Where the file system cannot copy (or the old file shrank under us): read, write.
            const size_t part = std::min(kChunk, matched_end_ - at);
            errno = 0;
            if (!read_exactly(old_.get(), scratch(), part, at)) {
                owner_.fail(
                    base::errno_error(errno != 0 ? errno : EIO, "cannot read '" + name_ + "'"));
                return false;
            }
            if (const int error = base::write_at(temp_->fd, {buffer_.get(), part}, at);
                error != 0) {
                owner_.fail(base::errno_error(error, "cannot write '" + name_ + "'"));
                return false;
            }
            at += part;
        }
        return true;
    }

    OutputPublisher& owner_;
    std::string name_;
    base::UniqueFd old_;
    size_t old_size_ = 0;
    size_t copy_from_ = kChunk; ///< the first chunk is copied only once it was found the same
    size_t matched_end_ = 0;    ///< end of the chunks found the same
    std::optional<base::PublishBatch::Opened> temp_;
    std::unique_ptr<char[]> buffer_;
};

std::unique_ptr<OutputSink> OutputPublisher::open(const char* name)
{
    return std::make_unique<Sink>(*this, name);
}

bool OutputPublisher::keep(const OutputState::File& recorded)
{
    if (dir_fd_ < 0 || !recorded.is_held_in(dir_fd_))
        return false;
    const std::lock_guard lock(mutex_);
    files_.push_back(recorded);
    ++kept_;
    return true;
}

std::optional<base::PublishBatch::Opened> OutputPublisher::start(const std::string& name)
{
    const std::lock_guard lock(mutex_);
    if (failed_)
        return std::nullopt;
    auto opened = batch_.open(name);
    if (!opened) {
        failure_ = opened.error();
        failed_ = true;
        return std::nullopt;
    }
    return *opened;
}

void OutputPublisher::fail(base::Unexpected error)
{
    const std::lock_guard lock(mutex_);
    if (failed_)
        return;
    // The temp files go with the batch: another thread may still write to one of them.
    failure_ = std::move(error.value());
    failed_ = true;
}

void OutputPublisher::finished(Sink& sink, const std::optional<base::PublishBatch::Opened>& temp)
{
    const std::lock_guard lock(mutex_);
    files_.push_back({sink.name(), sink.size(), sink.digest()});
    if (temp && !failed_) {
        batch_.written(temp->handle);
        changed_.push_back(sink.name());
    }
}

} // namespace kmodd::depmod
