// SPDX-License-Identifier: LGPL-2.1-or-later
// A growable byte buffer for module images, mapped memory when large.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

namespace kmodd::elf {

/// A growable byte buffer for module images. Above kMapThreshold bytes it is mapped memory
/// of its own rather than heap memory, and goes back to the system when freed: a daemon keeps
/// freed heap memory for reuse (base::keep_freed_memory_for_reuse), so the 20 MiB image of
/// one large compressed module would otherwise stay resident in the heap of the thread that
/// parsed it. Smaller images come from the heap, where mapping and unmapping each one would
/// cost more than it saves. Move-only.
class ImageBuffer {
public:
    static constexpr size_t kMapThreshold = size_t{1} << 20;

    ImageBuffer() = default;
    ImageBuffer(ImageBuffer&& other) noexcept;
    ImageBuffer& operator=(ImageBuffer&& other) noexcept;
    ImageBuffer(const ImageBuffer&) = delete;
    ImageBuffer& operator=(const ImageBuffer&) = delete;
    ~ImageBuffer();

    /// Makes the buffer `size` bytes long, keeping the bytes it had up to that size (new
    /// bytes are unspecified). Never gives memory back when shrinking. False (and the buffer
    /// unchanged) when the memory cannot be had.
    [[nodiscard]] bool resize(size_t size);

    [[nodiscard]] char* data() { return data_; }
    [[nodiscard]] size_t size() const { return size_; }
    [[nodiscard]] std::string_view view() const { return {data_, size_}; }
    /// Whether the bytes live in mapped memory of their own (for tests).
    [[nodiscard]] bool is_mapped() const { return is_mapped_; }

private:
    void release() noexcept;

    std::unique_ptr<char[]> heap_; ///< the bytes while not mapped
    char* data_ = nullptr;
    size_t size_ = 0;
    size_t capacity_ = 0;
    bool is_mapped_ = false;
};

} // namespace kmodd::elf
