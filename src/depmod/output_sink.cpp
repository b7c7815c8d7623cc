// SPDX-License-Identifier: LGPL-2.1-or-later
// OutputSink: two chunk buffers, the first held back to the end, and the content's digest.
#include "depmod/output_sink.hpp"

#include <algorithm>
#include <cassert>

#include "base/digest.hpp"

namespace kmodd::depmod {

namespace {

uint64_t chunk_digest(size_t offset, std::string_view chunk)
{
    return base::Digest64(offset).update(chunk).value();
}

} // namespace

uint64_t content_digest(std::string_view content)
{
    // An empty file has one empty chunk, as a sink gives it.
    uint64_t sum = 0;
    size_t offset = 0;
    do {
        sum += chunk_digest(offset, content.substr(offset, OutputSink::kChunk));
        offset += OutputSink::kChunk;
    } while (offset < content.size());
    return sum;
}

OutputSink::OutputSink()
    : first_(std::make_unique_for_overwrite<char[]>(kChunk)), next_(first_.get()),
      end_(first_.get() + kChunk)
{
}

size_t OutputSink::size() const
{
    if (finished_)
        return size_;
    if (chunk_ == nullptr)
        return static_cast<size_t>(next_ - first_.get());
    return given_ + static_cast<size_t>(next_ - chunk_.get());
}

void OutputSink::append_across(std::string_view bytes)
{
    while (!bytes.empty()) {
        if (next_ == end_) {
            if (chunk_ == nullptr) {
                chunk_ = std::make_unique_for_overwrite<char[]>(kChunk);
                given_ = kChunk;
            } else {
                give(given_, std::string_view(chunk_.get(), kChunk));
                given_ += kChunk;
            }
            next_ = chunk_.get();
            end_ = next_ + kChunk;
        }
        const size_t part = std::min(bytes.size(), static_cast<size_t>(end_ - next_));
        std::memcpy(next_, bytes.data(), part);
        next_ += part;
        bytes.remove_prefix(part);
    }
}

void OutputSink::patch(size_t offset, std::string_view bytes)
{
    assert(!finished_ && offset + bytes.size() <= std::min(size(), kChunk));
    std::memcpy(first_.get() + offset, bytes.data(), bytes.size());
}

void OutputSink::finish()
{
    assert(!finished_);
    size_ = size();
    finished_ = true;
    size_t first_size = kChunk;
    if (chunk_ == nullptr)
        first_size = static_cast<size_t>(next_ - first_.get());
    else if (next_ != chunk_.get())
        give(given_, std::string_view(chunk_.get(), static_cast<size_t>(next_ - chunk_.get())));
    give(0, std::string_view(first_.get(), first_size));
    chunk_.reset();
    first_.reset();
    next_ = end_ = nullptr;
    finished();
}

void OutputSink::give(size_t offset, std::string_view chunk)
{
    digest_ += chunk_digest(offset, chunk);
    consume(offset, chunk);
}

void StringSink::consume(size_t offset, std::string_view chunk)
{
    // The first chunk comes last, into the room left for it.
    if (content_.size() < offset)
        content_.resize(offset);
    if (offset == content_.size())
        content_.append(chunk);
    else
        std::memcpy(content_.data() + offset, chunk.data(), chunk.size());
}

} // namespace kmodd::depmod
