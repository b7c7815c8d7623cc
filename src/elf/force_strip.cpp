// SPDX-License-Identifier: LGPL-2.1-or-later
// insmod -f for init_module: __versions unallocated and the vermagic string zeroed, in place.
#include "elf/force_strip.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace kmodd::elf {

namespace {

constexpr uint64_t kShfAlloc = 0x2;

/// Where the fields this needs sit in the ELF header and in a section header, per class.
struct Layout {
    size_t shoff, shentsize, shnum, shstrndx; // in the ELF header
    size_t word;                              // 4 (ELF32) or 8 (ELF64): sh_flags, sh_offset...
    size_t sh_flags, sh_offset, sh_size;      // in a section header
    size_t header_size;                       // the smallest valid e_shentsize
};
constexpr Layout kElf32{0x20, 0x2E, 0x30, 0x32, 4, 8, 16, 20, 40};
constexpr Layout kElf64{0x28, 0x3A, 0x3C, 0x3E, 8, 8, 24, 32, 64};

class Image {
public:
    Image(std::string& bytes, const Layout& layout, bool big_endian)
        : bytes_(bytes), layout_(layout), big_endian_(big_endian)
    {
    }

    /// An unsigned field of `size` bytes at `at`; nullopt past the end.
    [[nodiscard]] std::optional<uint64_t> read(size_t at, size_t size) const
    {
        if (at > bytes_.size() || size > bytes_.size() - at)
            return std::nullopt;
        uint64_t value = 0;
        for (size_t i = 0; i < size; ++i) {
            const size_t index = big_endian_ ? at + i : at + size - 1 - i;
            value = (value << 8) | static_cast<unsigned char>(bytes_[index]);
        }
        return value;
    }

    void write(size_t at, size_t size, uint64_t value)
    {
        for (size_t i = 0; i < size; ++i) {
            const size_t index = big_endian_ ? at + size - 1 - i : at + i;
            bytes_[index] = static_cast<char>(value & 0xFF);
            value >>= 8;
        }
    }

    /// The section headers: where each starts. Errors when they lie outside the image.
    [[nodiscard]] base::Result<void> locate_sections()
    {
        auto shoff = read(layout_.shoff, layout_.word);
        auto entsize = read(layout_.shentsize, 2);
        auto count = read(layout_.shnum, 2);
        auto names = read(layout_.shstrndx, 2);
        if (!shoff || !entsize || !count || !names)
            return base::make_error(ENOEXEC, "the ELF header is truncated");
        if (*count == 0)
            return {};
        if (*entsize < layout_.header_size || *shoff > bytes_.size() ||
            *count * *entsize > bytes_.size() - *shoff)
            return base::make_error(ENOEXEC, "the section headers lie outside the file");
        shoff_ = static_cast<size_t>(*shoff);
        entsize_ = static_cast<size_t>(*entsize);
        count_ = static_cast<size_t>(*count);
        names_ = static_cast<size_t>(*names);
        return {};
    }

    /// The index of the section called `name`; nullopt when there is none.
    [[nodiscard]] std::optional<size_t> find(std::string_view name) const
    {
        auto names = contents(names_);
        if (!names)
            return std::nullopt;
        for (size_t i = 0; i < count_; ++i) {
            auto offset = read(header(i), 4);
            if (!offset || *offset >= names->size())
                continue;
            std::string_view rest = names->substr(static_cast<size_t>(*offset));
            if (rest.substr(0, rest.find('\0')) == name)
                return i;
        }
        return std::nullopt;
    }

    /// Section `index`'s bytes as (offset, size) in the image; nullopt when outside it.
    [[nodiscard]] std::optional<std::pair<size_t, size_t>> extent(size_t index) const
    {
        if (index >= count_)
            return std::nullopt;
        auto offset = read(header(index) + layout_.sh_offset, layout_.word);
        auto size = read(header(index) + layout_.sh_size, layout_.word);
        if (!offset || !size || *offset > bytes_.size() || *size > bytes_.size() - *offset)
            return std::nullopt;
        return std::pair{static_cast<size_t>(*offset), static_cast<size_t>(*size)};
    }

    void clear_alloc(size_t index)
    {
        const size_t at = header(index) + layout_.sh_flags;
        write(at, layout_.word, *read(at, layout_.word) & ~kShfAlloc);
    }

private:
    [[nodiscard]] size_t header(size_t index) const { return shoff_ + index * entsize_; }

    [[nodiscard]] std::optional<std::string_view> contents(size_t index) const
    {
        auto where = extent(index);
        if (!where)
            return std::nullopt;
        return std::string_view(bytes_).substr(where->first, where->second);
    }

    std::string& bytes_;
    const Layout& layout_;
    bool big_endian_;
    size_t shoff_ = 0, entsize_ = 0, count_ = 0, names_ = 0;
};

} // namespace

base::Result<std::string> strip_for_force(std::string image, bool vermagic, bool modversions)
{
    if (image.size() < 0x40 || image.compare(0, 4,
                                             "\x7f"
                                             "ELF") != 0)
        return base::make_error(ENOEXEC, "not an ELF file");
    const char elf_class = image[4];
    const char data = image[5];
    if ((elf_class != 1 && elf_class != 2) || (data != 1 && data != 2))
        return base::make_error(ENOEXEC, "not an ELF file of a known class and byte order");
    Image elf(image, elf_class == 1 ? kElf32 : kElf64, data == 2);
    if (auto located = elf.locate_sections(); !located)
        return base::Unexpected(located.error());

    if (modversions) {
        if (auto versions = elf.find("__versions"))
            elf.clear_alloc(*versions);
    }
    if (vermagic) {
        if (auto modinfo = elf.find(".modinfo")) {
            auto where = elf.extent(*modinfo);
            if (!where)
                return base::make_error(ENOEXEC, ".modinfo lies outside the file");
            // The strings of .modinfo, NUL-separated: zero the one that starts "vermagic=".
            std::string_view strings = std::string_view(image).substr(where->first, where->second);
            for (size_t at = 0; at < strings.size();) {
                size_t end = strings.find('\0', at);
                if (end == std::string_view::npos)
                    end = strings.size();
                if (strings.substr(at, end - at).starts_with("vermagic=")) {
                    std::memset(image.data() + where->first + at, 0, end - at);
                    break;
                }
                at = end + 1;
            }
        }
    }
    return image;
}

} // namespace kmodd::elf
