// SPDX-License-Identifier: LGPL-2.1-or-later
// The growable buffer module images are decompressed into.
#include "elf/image_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace kmodd::elf {

ImageBuffer::ImageBuffer(ImageBuffer&& other) noexcept
    : heap_(std::move(other.heap_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)), capacity_(std::exchange(other.capacity_, 0)),
      is_mapped_(std::exchange(other.is_mapped_, false))
{
}

ImageBuffer& ImageBuffer::operator=(ImageBuffer&& other) noexcept
{
    if (this != &other) {
        release();
        heap_ = std::move(other.heap_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        capacity_ = std::exchange(other.capacity_, 0);
        is_mapped_ = std::exchange(other.is_mapped_, false);
    }
    return *this;
}

ImageBuffer::~ImageBuffer()
{
    release();
}

void ImageBuffer::release() noexcept
{
    if (is_mapped_)
        ::munmap(data_, capacity_);
    heap_.reset();
    data_ = nullptr;
    size_ = capacity_ = 0;
    is_mapped_ = false;
}

bool ImageBuffer::resize(size_t size)
{
    if (size <= capacity_) {
        size_ = size;
        return true;
    }
    if (size <= kMapThreshold) {
        auto bigger = std::unique_ptr<char[]>(new (std::nothrow) char[size]);
        if (!bigger)
            return false;
        if (size_ > 0)
            std::memcpy(bigger.get(), data_, size_);
        heap_ = std::move(bigger);
        data_ = heap_.get();
        size_ = capacity_ = size;
        return true;
    }
    const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    if (size > SIZE_MAX - page)
        return false;
    const size_t mapped_size = (size + page - 1) / page * page;
    void* mapped = MAP_FAILED;
    if (is_mapped_) {
        // The kernel moves the pages instead of copying the bytes.
        mapped = ::mremap(data_, capacity_, mapped_size, MREMAP_MAYMOVE);
    } else {
        mapped = ::mmap(nullptr, mapped_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
        if (mapped != MAP_FAILED && size_ > 0)
            std::memcpy(mapped, data_, size_);
    }
    if (mapped == MAP_FAILED)
        return false;
    heap_.reset();
    data_ = static_cast<char*>(mapped);
    size_ = size;
    capacity_ = mapped_size;
    is_mapped_ = true;
    return true;
}

} // namespace kmodd::elf
