// SPDX-License-Identifier: LGPL-2.1-or-later
// Decompressing .ko.xz, .ko.zst and .ko.gz images (liblzma, libzstd, zlib).
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

/// How an output buffer grows: std::string for the public decompress(), ImageBuffer for the
/// images load_module_file parses. False when the memory cannot be had.
bool grow_to(std::string& storage, size_t size)
{
    storage.resize(size);
    return true;
}

bool grow_to(ImageBuffer& storage, size_t size)
{
    return storage.resize(size);
}

/// A growing output buffer: doubles its size, never beyond `max_size`. At the limit it
/// hands out a one-byte spill area instead, so that a stream ending exactly at the limit
/// can still finish (decoders read trailers on a further call) while one more byte fails.
/// The bytes go to `storage` (whatever it held is dropped; its memory is reused).
template <typename Storage> class OutputBuffer {
public:
    OutputBuffer(Storage& storage, size_t initial_size, size_t max_size)
        : storage_(storage), max_size_(max_size)
    {
        (void)grow_to(storage_, 0); // shrinking always succeeds
        size_ = std::min(std::max(initial_size, size_t{1}), max_size_);
        if (!grow_to(storage_, size_))
            size_ = 0;
    }

    /// Where the decoder may write next; `data` is null when memory ran out.
    struct Window {
        char* data;
        size_t size;
        bool is_spill;
    };

    [[nodiscard]] Window window()
    {
        if (used_ == size_ && size_ < max_size_) {
            size_t next = size_ <= max_size_ / 2 ? std::max(size_ * 2, size_t{1}) : max_size_;
            if (!grow_to(storage_, next))
                return Window{nullptr, 0, false};
            size_ = next;
        }
        if (used_ == size_)
            return Window{&spill_, 1, true};
        return Window{storage_.data() + used_, size_ - used_, false};
    }

    /// Records `count` bytes written into `window`; false when they exceed the limit.
    [[nodiscard]] bool commit(const Window& window, size_t count)
    {
        if (window.is_spill)
            return count == 0;
        used_ += count;
        return true;
    }

    /// Cuts the storage to the bytes written.
    void finish() { (void)grow_to(storage_, used_); } // shrinking always succeeds

private:
    Storage& storage_;
    size_t size_ = 0; ///< bytes of storage_ in use as the window area
    size_t used_ = 0;
    size_t max_size_;
    char spill_ = 0;
};

base::Unexpected out_of_memory(std::string_view codec)
{
    return make_error(ENOMEM, std::string(codec) + ": out of memory");
}

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

template <typename Storage>
Result<void> decompress_xz(std::string_view bytes, size_t max_size, Storage& storage)
{
    lzma_stream stream = LZMA_STREAM_INIT;
    // LZMA_CONCATENATED: accept concatenated .xz streams, as kmod does.
    lzma_ret ret = lzma_stream_decoder(&stream, kXzMemoryLimit, LZMA_CONCATENATED);
    if (ret != LZMA_OK)
        return make_error(ENOMEM, "xz: cannot initialize the decoder");
    std::unique_ptr<lzma_stream, decltype(&lzma_end)> guard(&stream, &lzma_end);

    OutputBuffer<Storage> out(storage, initial_output_size(bytes), max_size);
    stream.next_in = reinterpret_cast<const uint8_t*>(bytes.data());
    stream.avail_in = bytes.size();
    for (;;) {
        auto window = out.window();
        if (window.data == nullptr)
            return out_of_memory("xz");
        stream.next_out = reinterpret_cast<uint8_t*>(window.data);
        stream.avail_out = window.size;
        ret = lzma_code(&stream, LZMA_FINISH);
        if (!out.commit(window, window.size - stream.avail_out))
            return too_large("xz", max_size);
        switch (ret) {
        case LZMA_OK:
            continue;
        case LZMA_STREAM_END:
            out.finish();
            return {};
        case LZMA_MEM_ERROR:
            return out_of_memory("xz");
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

template <typename Storage>
Result<void> decompress_zstd(std::string_view bytes, size_t max_size, Storage& storage)
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

    OutputBuffer<Storage> out(storage, initial, max_size);
    ZSTD_inBuffer input{bytes.data(), bytes.size(), 0};
    size_t pending = 1;
    for (;;) {
        auto window = out.window();
        if (window.data == nullptr)
            return out_of_memory("zstd");
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
    out.finish();
    return {};
}

template <typename Storage>
Result<void> decompress_gzip(std::string_view bytes, size_t max_size, Storage& storage)
{
    z_stream stream{};
    // 16 + MAX_WBITS: a gzip wrapper, not a raw zlib stream.
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
        return make_error(ENOMEM, "gzip: cannot initialize the decoder");
    std::unique_ptr<z_stream, decltype(&inflateEnd)> guard(&stream, &inflateEnd);

    OutputBuffer<Storage> out(storage, initial_output_size(bytes), max_size);
    const auto* next_in = reinterpret_cast<const Bytef*>(bytes.data());
    size_t remaining = bytes.size();
    for (;;) {
        auto window = out.window();
        if (window.data == nullptr)
            return out_of_memory("gzip");
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
            out.finish();
            return {};
        }
        if (ret == Z_OK)
            continue;
        if (ret == Z_BUF_ERROR && stream.avail_out == 0)
            continue;
        if (ret == Z_BUF_ERROR && remaining == 0)
            return make_error(EBADMSG, "gzip: unexpected end of input");
        if (ret == Z_MEM_ERROR)
            return out_of_memory("gzip");
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

namespace {

template <typename Storage>
Result<void> decompress_into(std::string_view bytes, size_t max_size, Storage& storage)
{
    switch (detect_compression(bytes)) {
    case Compression::Zstd:
        return decompress_zstd(bytes, max_size, storage);
    case Compression::Xz:
        return decompress_xz(bytes, max_size, storage);
    case Compression::Gzip:
        return decompress_gzip(bytes, max_size, storage);
    case Compression::None:
        break;
    }
    return make_error(EINVAL, "not a compressed file (no xz, zstd or gzip magic)");
}

} // namespace

Result<std::string> decompress_bounded(std::string_view bytes, size_t max_size)
{
    std::string image;
    if (auto done = decompress_into(bytes, max_size, image); !done)
        return base::Unexpected(std::move(done.error()));
    return image;
}

Result<std::string> decompress(std::string_view bytes)
{
    return decompress_bounded(bytes, kMaxDecompressedSize);
}

Result<void> decompress_image(std::string_view bytes, ImageBuffer& image)
{
    return decompress_into(bytes, kMaxDecompressedSize, image);
}

} // namespace kmodd::elf
