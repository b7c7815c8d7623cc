// SPDX-License-Identifier: LGPL-2.1-or-later
#include "elf/decompress.hpp"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>

#include "elf/module_file.hpp"

namespace kmodd::elf {
namespace {

using base::make_error;
using base::Result;

// xz -9 needs 65 MiB to decompress; anything above this is not a kernel module.
constexpr uint64_t kXzMemoryLimit = uint64_t{256} << 20;
constexpr size_t kMinInitialOutput = size_t{64} << 10;

constexpr unsigned char kZstdMagic[] = {0x28, 0xB5, 0x2F, 0xFD};
constexpr unsigned char kXzMagic[] = {0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00};
constexpr unsigned char kGzipMagic[] = {0x1F, 0x8B};

template <size_t N> bool has_magic(std::string_view bytes, const unsigned char (&magic)[N])
{
    if (bytes.size() < N)
        return false;
    for (size_t i = 0; i < N; ++i) {
        if (static_cast<unsigned char>(bytes[i]) != magic[i])
            return false;
    }
    return true;
}

/// A growing output buffer: doubles its size, never beyond `max_size`. At the limit it
/// hands out a one-byte spill area instead, so that a stream ending exactly at the limit
/// can still finish (decoders read trailers on a further call) while one more byte fails.
class OutputBuffer {
public:
    OutputBuffer(size_t initial_size, size_t max_size) : max_size_(max_size)
    {
        buffer_.resize(std::min(std::max(initial_size, size_t{1}), max_size_));
    }

    /// Where the decoder may write next.
    struct Window {
        char* data;
        size_t size;
        bool is_spill;
    };

    [[nodiscard]] Window window()
    {
        if (used_ == buffer_.size() && buffer_.size() < max_size_) {
            size_t next = buffer_.size() <= max_size_ / 2 ? buffer_.size() * 2 : max_size_;
            buffer_.resize(next);
        }
        if (used_ == buffer_.size())
            return Window{&spill_, 1, true};
        return Window{buffer_.data() + used_, buffer_.size() - used_, false};
    }

    /// Records `count` bytes written into `window`; false when they exceed the limit.
    [[nodiscard]] bool commit(const Window& window, size_t count)
    {
        if (window.is_spill)
            return count == 0;
        used_ += count;
        return true;
    }

    [[nodiscard]] std::string take() &&
    {
        buffer_.resize(used_);
        return std::move(buffer_);
    }

private:
    std::string buffer_;
    size_t used_ = 0;
    size_t max_size_;
    char spill_ = 0;
};

size_t initial_output_size(std::string_view bytes)
{
    // Modules compress about 3:1; start a little above that to avoid most regrowths.
    if (bytes.size() > SIZE_MAX / 4)
        return SIZE_MAX;
    return std::max(bytes.size() * 4, kMinInitialOutput);
}

base::Unexpected too_large(std::string_view codec, size_t max_size)
{
    return make_error(ENOMEM, std::string(codec) + ": decompressed size exceeds the limit of " +
                                  std::to_string(max_size) + " bytes");
}

Result<std::string> decompress_xz(std::string_view bytes, size_t max_size)
{
    lzma_stream stream = LZMA_STREAM_INIT;
    // LZMA_CONCATENATED: accept concatenated .xz streams, as kmod does.
    lzma_ret ret = lzma_stream_decoder(&stream, kXzMemoryLimit, LZMA_CONCATENATED);
    if (ret != LZMA_OK)
        return make_error(ENOMEM, "xz: cannot initialize the decoder");
    std::unique_ptr<lzma_stream, decltype(&lzma_end)> guard(&stream, &lzma_end);

    OutputBuffer out(initial_output_size(bytes), max_size);
    stream.next_in = reinterpret_cast<const uint8_t*>(bytes.data());
    stream.avail_in = bytes.size();
    for (;;) {
        OutputBuffer::Window window = out.window();
        stream.next_out = reinterpret_cast<uint8_t*>(window.data);
        stream.avail_out = window.size;
        ret = lzma_code(&stream, LZMA_FINISH);
        if (!out.commit(window, window.size - stream.avail_out))
            return too_large("xz", max_size);
        switch (ret) {
        case LZMA_OK:
            continue;
        case LZMA_STREAM_END:
            return std::move(out).take();
        case LZMA_MEM_ERROR:
            return make_error(ENOMEM, "xz: out of memory");
        case LZMA_MEMLIMIT_ERROR:
            return make_error(ENOMEM, "xz: the stream needs more memory than allowed");
        case LZMA_FORMAT_ERROR:
            return make_error(EBADMSG, "xz: file format not recognized");
        case LZMA_OPTIONS_ERROR:
            return make_error(EBADMSG, "xz: unsupported compression options");
        case LZMA_BUF_ERROR:
            return make_error(EBADMSG, "xz: unexpected end of input");
        default:
            return make_error(EBADMSG, "xz: compressed data is corrupt");
        }
    }
}

Result<std::string> decompress_zstd(std::string_view bytes, size_t max_size)
{
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), &ZSTD_freeDCtx);
    if (!context)
        return make_error(ENOMEM, "zstd: cannot create the decoder");

    size_t initial = initial_output_size(bytes);
    // A frame may announce its size (zstd's CLI writes it): a first guess only, and capped,
    // so that a tiny file claiming a huge size cannot make us allocate it up front.
    unsigned long long content_size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
    if (content_size != ZSTD_CONTENTSIZE_UNKNOWN && content_size != ZSTD_CONTENTSIZE_ERROR &&
        content_size < max_size && content_size / 64 <= bytes.size())
        initial = static_cast<size_t>(content_size) + 1;

    OutputBuffer out(initial, max_size);
    ZSTD_inBuffer input{bytes.data(), bytes.size(), 0};
    size_t pending = 1;
    for (;;) {
        OutputBuffer::Window window = out.window();
        ZSTD_outBuffer output{window.data, window.size, 0};
        size_t input_before = input.pos;
        pending = ZSTD_decompressStream(context.get(), &output, &input);
        if (ZSTD_isError(pending) != 0)
            return make_error(EBADMSG, std::string("zstd: ") + ZSTD_getErrorName(pending));
        if (!out.commit(window, output.pos))
            return too_large("zstd", max_size);
        bool output_full = output.pos == output.size;
        if (input.pos == input.size && (pending == 0 || !output_full))
            break;
        if (!output_full && output.pos == 0 && input.pos == input_before)
            return make_error(EBADMSG, "zstd: decoder made no progress");
    }
    // Nonzero: the last frame is incomplete (the input ended inside it).
    if (pending != 0)
        return make_error(EBADMSG, "zstd: unexpected end of input");
    return std::move(out).take();
}

Result<std::string> decompress_gzip(std::string_view bytes, size_t max_size)
{
    z_stream stream{};
    // 16 + MAX_WBITS: a gzip wrapper, not a raw zlib stream.
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
        return make_error(ENOMEM, "gzip: cannot initialize the decoder");
    std::unique_ptr<z_stream, decltype(&inflateEnd)> guard(&stream, &inflateEnd);

    OutputBuffer out(initial_output_size(bytes), max_size);
    const auto* next_in = reinterpret_cast<const Bytef*>(bytes.data());
    size_t remaining = bytes.size();
    for (;;) {
        OutputBuffer::Window window = out.window();
        // zlib counts in uInt: feed at most UINT_MAX bytes per call.
        auto avail_in = static_cast<uInt>(std::min<size_t>(remaining, UINT_MAX));
        auto avail_out = static_cast<uInt>(std::min<size_t>(window.size, UINT_MAX));
        stream.next_in = const_cast<Bytef*>(next_in); // zlib never writes through next_in
        stream.avail_in = avail_in;
        stream.next_out = reinterpret_cast<Bytef*>(window.data);
        stream.avail_out = avail_out;
        int ret = inflate(&stream, Z_NO_FLUSH);
        size_t consumed = avail_in - stream.avail_in;
        next_in += consumed;
        remaining -= consumed;
        if (!out.commit(window, avail_out - stream.avail_out))
            return too_large("gzip", max_size);
        if (ret == Z_STREAM_END) {
            // Like gzread (kmod's reader): further gzip members are decoded, anything
            // else after a member is ignored.
            if (remaining >= 2 && next_in[0] == kGzipMagic[0] && next_in[1] == kGzipMagic[1]) {
                if (inflateReset(&stream) != Z_OK)
                    return make_error(EBADMSG, "gzip: cannot restart the decoder");
                continue;
            }
            return std::move(out).take();
        }
        if (ret == Z_OK)
            continue;
        if (ret == Z_BUF_ERROR && stream.avail_out == 0)
            continue;
        if (ret == Z_BUF_ERROR && remaining == 0)
            return make_error(EBADMSG, "gzip: unexpected end of input");
        if (ret == Z_MEM_ERROR)
            return make_error(ENOMEM, "gzip: out of memory");
        const char* why = stream.msg != nullptr ? stream.msg : "compressed data is corrupt";
        return make_error(EBADMSG, std::string("gzip: ") + why);
    }
}

} // namespace

Compression detect_compression(std::string_view bytes)
{
    if (has_magic(bytes, kZstdMagic))
        return Compression::Zstd;
    if (has_magic(bytes, kXzMagic))
        return Compression::Xz;
    if (has_magic(bytes, kGzipMagic))
        return Compression::Gzip;
    return Compression::None;
}

Result<std::string> decompress_bounded(std::string_view bytes, size_t max_size)
{
    switch (detect_compression(bytes)) {
    case Compression::Zstd:
        return decompress_zstd(bytes, max_size);
    case Compression::Xz:
        return decompress_xz(bytes, max_size);
    case Compression::Gzip:
        return decompress_gzip(bytes, max_size);
    case Compression::None:
        break;
    }
    return make_error(EINVAL, "not a compressed file (no xz, zstd or gzip magic)");
}

Result<std::string> decompress(std::string_view bytes)
{
    return decompress_bounded(bytes, kMaxDecompressedSize);
}

} // namespace kmodd::elf
