// SPDX-License-Identifier: LGPL-2.1-or-later
// Helpers for the kmodd_elf tests: fixture paths, a readable dump of a ModuleInfo, a tiny
// ELF writer for hand-made images and a patcher for compiled ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "elf/module_info.hpp"

namespace kmodd::elf::test {

/// The path of a fixture built into the test's build directory (e.g. "sample-le64.ko").
[[nodiscard]] std::string fixture_path(std::string_view name);

/// A Debian kernel tree prepared by the oracle tests (tests/oracle/fetch-kernels.sh).
struct DebianTree {
    std::string modules_dir; ///< .../lib/modules/<version>
    std::string oracle_dir;  ///< kmod's depmod outputs for it (modules.symbols, ...)
};

/// The tree `name` ("amd64", "amd64-xz", ...), when it is complete (its stamp exists).
[[nodiscard]] std::optional<DebianTree> debian_tree(std::string_view name);

/// The uncompressed amd64 tree's module directory ("" when not present).
[[nodiscard]] std::string debian_modules_dir();

/// The whole content of a file; throws std::runtime_error when it cannot be read.
[[nodiscard]] std::string read_bytes(const std::string& path);

/// Writes `content` to `path`, replacing it; throws on failure.
void write_bytes(const std::string& path, std::string_view content);

/// The standard output of a shell command; throws when it cannot be started.
[[nodiscard]] std::string run_command(const std::string& command);

/// One line per entry ("modinfo k=v", "export name 0x...", "import name 0x... weak"), so
/// that two results compare as strings and a mismatch shows as a readable diff.
[[nodiscard]] std::string describe(const ModuleInfo& info);

/// A temporary directory removed (with its content) on destruction.
class TempDir {
public:
    TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

/// Writes integers in an ELF file's byte order.
class Encoder {
public:
    Encoder(bool is_64, bool big_endian) : is_64_(is_64), big_endian_(big_endian) {}
    [[nodiscard]] bool is_64() const { return is_64_; }
    [[nodiscard]] bool big_endian() const { return big_endian_; }

    void put(std::string& out, uint64_t value, size_t size) const;
    /// An Elf32_Sym or Elf64_Sym.
    [[nodiscard]] std::string symbol(uint32_t name, unsigned char bind, unsigned char type,
                                     uint16_t shndx, uint64_t value) const;
    /// A 64-byte __versions record; `name` is cut to its field (no NUL when it fills it).
    [[nodiscard]] std::string version(uint64_t crc, std::string_view name) const;

private:
    bool is_64_;
    bool big_endian_;
};

/// A string table under construction: starts with the empty string at offset 0.
class StringTable {
public:
    uint32_t add(std::string_view text);
    [[nodiscard]] const std::string& bytes() const { return bytes_; }

private:
    std::string bytes_{std::string(1, '\0')};
};

/// Builds a relocatable ELF image with the given sections (section 0 is the null section,
/// the section name table comes last).
class ElfBuilder {
public:
    ElfBuilder(bool is_64, bool big_endian, uint16_t machine);
    [[nodiscard]] const Encoder& encoder() const { return encoder_; }

    /// Adds a section and returns its index. For SHT_NOBITS, `nobits_size` is its size.
    uint16_t add_section(std::string name, uint32_t type, std::string data,
                         uint64_t nobits_size = 0);
    [[nodiscard]] std::string build() const;

private:
    struct Section {
        std::string name;
        uint32_t type;
        std::string data;
        uint64_t nobits_size;
    };
    Encoder encoder_;
    uint16_t machine_;
    std::vector<Section> sections_;
};

/// Reads and patches the headers of an ELF image in place (any class and byte order).
class RawElf {
public:
    explicit RawElf(std::string& image);

    [[nodiscard]] uint64_t read(size_t pos, size_t size) const;
    void write(size_t pos, size_t size, uint64_t value);

    [[nodiscard]] uint64_t section_header_offset() const;
    [[nodiscard]] size_t section_count() const;
    [[nodiscard]] size_t section_header_size() const;
    /// Where the fields of the header of section `index` start in the image.
    [[nodiscard]] size_t section_header_pos(size_t index) const;
    [[nodiscard]] std::optional<size_t> find_section(std::string_view name) const;
    [[nodiscard]] uint64_t section_offset(size_t index) const;
    [[nodiscard]] uint64_t section_size(size_t index) const;
    void set_section_offset(size_t index, uint64_t value);
    void set_section_size(size_t index, uint64_t value);
    void set_section_type(size_t index, uint32_t value);

    /// The index in .symtab of the first symbol called `name`.
    [[nodiscard]] std::optional<size_t> find_symbol(std::string_view name) const;
    void set_symbol_name(size_t index, uint32_t name_offset);

    /// Field positions for the ELF header (e_shoff) and a symbol (st_name).
    [[nodiscard]] size_t shoff_pos() const { return is_64_ ? 0x28 : 0x20; }
    [[nodiscard]] size_t shentsize_pos() const { return is_64_ ? 0x3A : 0x2E; }

private:
    [[nodiscard]] size_t symbol_pos(size_t index) const;

    std::string& image_;
    bool is_64_;
    bool big_endian_;
};

} // namespace kmodd::elf::test
