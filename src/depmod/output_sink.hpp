// SPDX-License-Identifier: LGPL-2.1-or-later
// Where the bytes of an output file go while it is made: 64 KiB at a time, never held whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace kmodd::depmod {

/// The digest of an output file's content that the output state keeps: the sum of its
/// 64 KiB chunks' digests, each seeded with its offset, so that a file given chunk by chunk,
/// in any order, has the same digest as the whole.
[[nodiscard]] uint64_t content_digest(std::string_view content);

/// An output file's bytes as they are made, in order, in chunks of kChunk bytes: a file of
/// megabytes (modules.alias.bin of a distribution's tree: 1.3 MB) is never held whole, so
/// that a build's memory peak stays low. The first chunk is held back to the end so that its
/// bytes can still be changed (patch(): an index's header names the root node, which the
/// children-first layout writes last); the others are given to consume() as they fill, then
/// the first. Not for sharing between threads.
class OutputSink {
public:
    static constexpr size_t kChunk = size_t{64} * 1024;

    OutputSink();
    OutputSink(const OutputSink&) = delete;
    OutputSink& operator=(const OutputSink&) = delete;
    virtual ~OutputSink() = default;

    void append(std::string_view bytes)
    {
        if (bytes.size() <= static_cast<size_t>(end_ - next_)) {
            if (!bytes.empty()) // an empty view may have no data pointer
                std::memcpy(next_, bytes.data(), bytes.size());
            next_ += bytes.size();
        } else {
            append_across(bytes);
        }
    }
    void push_back(char c) { append(std::string_view(&c, 1)); }
    /// A big-endian 32-bit word, as kmod's indexes store them.
    void put_u32(uint32_t v)
    {
        const Word word = big_endian(v);
        append(std::string_view(word.bytes, 4));
    }
    /// Bytes given so far.
    [[nodiscard]] size_t size() const;
    /// Overwrites bytes already given within the first chunk.
    void patch(size_t offset, std::string_view bytes);
    /// Overwrites a word put_u32() gave within the first chunk.
    void patch_u32(size_t offset, uint32_t v)
    {
        const Word word = big_endian(v);
        patch(offset, std::string_view(word.bytes, 4));
    }
    /// Gives what is left (the last chunk, then the first): the file is complete. Then calls
    /// finished().
    void finish();
    /// The file's content_digest(), once finished.
    [[nodiscard]] uint64_t digest() const { return digest_; }

protected:
    /// Takes the chunk at `offset`: every chunk but the first comes as it fills, in order,
    /// the first comes last. The view is valid during the call only.
    virtual void consume(size_t offset, std::string_view chunk) = 0;
    /// Called once the whole file was consumed.
    virtual void finished() {}

private:
    struct Word {
        char bytes[4];
    };
    static Word big_endian(uint32_t v)
    {
        return {{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                 static_cast<char>(v)}};
    }
    void append_across(std::string_view bytes);
    void give(size_t offset, std::string_view chunk);

    std::unique_ptr<char[]> first_; ///< the first chunk, until finish()
    std::unique_ptr<char[]> chunk_; ///< the chunk being filled after it
    char* next_;                    ///< where the next byte goes
    char* end_;                     ///< end of the buffer `next_` is in
    size_t given_ = 0;              ///< bytes consumed before chunk_'s start
    size_t size_ = 0;               ///< the whole size, once finished
    uint64_t digest_ = 0;
    bool finished_ = false;
};

/// A sink that keeps the whole content, for callers that need it (the daemon's comparison
/// with the disk, dry runs, tests).
class StringSink : public OutputSink {
public:
    /// `expected_size`: room made at once, when the size is about known.
    explicit StringSink(size_t expected_size = 0) { content_.reserve(expected_size); }

    /// The content, once finished.
    [[nodiscard]] std::string take() { return std::move(content_); }

protected:
    void consume(size_t offset, std::string_view chunk) override;

private:
    std::string content_;
};

} // namespace kmodd::depmod
