// SPDX-License-Identifier: LGPL-2.1-or-later
#include "test_support.hpp"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace kmodd::elf::test {

std::string fixture_path(std::string_view name)
{
    return std::string(KMODD_ELF_FIXTURE_DIR) + "/" + std::string(name);
}

std::optional<DebianTree> debian_tree(std::string_view name)
{
    namespace fs = std::filesystem;
    const fs::path trees = fs::path(KMODD_ELF_TEST_CACHE) / "trees";
    const std::string tree(name);
    std::error_code error;
    if (!fs::exists(trees / (tree + ".stamp"), error))
        return std::nullopt;
    for (const auto& entry : fs::directory_iterator(trees / tree / "lib" / "modules", error)) {
        if (entry.is_directory() && fs::exists(entry.path() / "kernel", error))
            return DebianTree{entry.path().string(),
                              (trees / (tree + ".oracle") / "expected").string()};
    }
    return std::nullopt;
}

std::string debian_modules_dir()
{
    std::optional<DebianTree> tree = debian_tree("amd64");
    return tree ? tree->modules_dir : std::string();
}

std::string read_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error("cannot read '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, std::string_view content)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out)
        throw std::runtime_error("cannot write '" + path + "'");
}

std::string run_command(const std::string& command)
{
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr)
        throw std::runtime_error("cannot run '" + command + "'");
    std::string output;
    char buffer[4096];
    size_t count = 0;
    while ((count = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
        output.append(buffer, count);
    ::pclose(pipe);
    return output;
}

std::string describe(const ModuleInfo& info)
{
    std::ostringstream out;
    for (const ModinfoEntry& entry : info.modinfo)
        out << "modinfo " << entry.key << '=' << entry.value << '\n';
    for (const ExportedSymbol& symbol : info.exports)
        out << "export " << symbol.name << " 0x" << std::hex << symbol.crc << std::dec << '\n';
    for (const ImportedSymbol& symbol : info.imports) {
        out << "import " << symbol.name << " 0x" << std::hex << symbol.crc << std::dec
            << (symbol.is_weak ? " weak" : "") << '\n';
    }
    return out.str();
}

TempDir::TempDir()
{
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/kmodd-elf-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error("cannot create a temporary directory");
    path_ = pattern;
}

TempDir::~TempDir()
{
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

void Encoder::put(std::string& out, uint64_t value, size_t size) const
{
    for (size_t i = 0; i < size; ++i) {
        size_t shift = 8 * (big_endian_ ? size - 1 - i : i);
        out.push_back(static_cast<char>((value >> shift) & 0xff));
    }
}

std::string Encoder::symbol(uint32_t name, unsigned char bind, unsigned char type, uint16_t shndx,
                            uint64_t value) const
{
    std::string out;
    auto info = static_cast<unsigned char>((bind << 4) | (type & 0xf));
    put(out, name, 4);
    if (is_64_) {
        put(out, info, 1);
        put(out, 0, 1);
        put(out, shndx, 2);
        put(out, value, 8);
        put(out, 0, 8);
    } else {
        put(out, value, 4);
        put(out, 0, 4);
        put(out, info, 1);
        put(out, 0, 1);
        put(out, shndx, 2);
    }
    return out;
}

std::string Encoder::version(uint64_t crc, std::string_view name) const
{
    std::string out;
    size_t crc_size = is_64_ ? 8 : 4;
    put(out, crc, crc_size);
    std::string field(name.substr(0, 64 - crc_size));
    field.resize(64 - crc_size, '\0');
    return out + field;
}

uint32_t StringTable::add(std::string_view text)
{
    auto offset = static_cast<uint32_t>(bytes_.size());
    bytes_.append(text);
    bytes_.push_back('\0');
    return offset;
}

ElfBuilder::ElfBuilder(bool is_64, bool big_endian, uint16_t machine)
    : encoder_(is_64, big_endian), machine_(machine)
{
}

uint16_t ElfBuilder::add_section(std::string name, uint32_t type, std::string data,
                                 uint64_t nobits_size)
{
    sections_.push_back(Section{std::move(name), type, std::move(data), nobits_size});
    return static_cast<uint16_t>(sections_.size()); // index 0 is the null section
}

std::string ElfBuilder::build() const
{
    const bool is_64 = encoder_.is_64();
    const size_t ehdr_size = is_64 ? 64 : 52;
    const size_t shdr_size = is_64 ? 64 : 40;
    const size_t word = is_64 ? 8 : 4;

    StringTable names;
    std::vector<uint32_t> name_offsets;
    for (const Section& section : sections_)
        name_offsets.push_back(names.add(section.name));
    uint32_t shstrtab_name = names.add(".shstrtab");

    std::string body(ehdr_size, '\0');
    std::vector<uint64_t> offsets;
    auto align = [&body] {
        while (body.size() % 8 != 0)
            body.push_back('\0');
    };
    for (const Section& section : sections_) {
        align();
        offsets.push_back(body.size());
        if (section.type != SHT_NOBITS)
            body += section.data;
    }
    align();
    uint64_t shstrtab_offset = body.size();
    body += names.bytes();
    align();
    uint64_t shoff = body.size();

    auto header = [&](uint32_t name, uint32_t type, uint64_t offset, uint64_t size,
                      uint64_t entsize) {
        encoder_.put(body, name, 4);
        encoder_.put(body, type, 4);
        encoder_.put(body, 0, word);       // sh_flags
        encoder_.put(body, 0, word);       // sh_addr
        encoder_.put(body, offset, word);  // sh_offset
        encoder_.put(body, size, word);    // sh_size
        encoder_.put(body, 0, 4);          // sh_link
        encoder_.put(body, 0, 4);          // sh_info
        encoder_.put(body, 1, word);       // sh_addralign
        encoder_.put(body, entsize, word); // sh_entsize
    };
    header(0, SHT_NULL, 0, 0, 0);
    for (size_t i = 0; i < sections_.size(); ++i) {
        const Section& section = sections_[i];
        uint64_t size = section.type == SHT_NOBITS ? section.nobits_size : section.data.size();
        uint64_t entsize = section.type == SHT_SYMTAB ? (is_64 ? 24 : 16) : 0;
        header(name_offsets[i], section.type, offsets[i], size, entsize);
    }
    header(shstrtab_name, SHT_STRTAB, shstrtab_offset, names.bytes().size(), 0);

    std::string ehdr;
    ehdr += std::string("\x7f"
                        "ELF",
                        4);
    ehdr.push_back(static_cast<char>(is_64 ? ELFCLASS64 : ELFCLASS32));
    ehdr.push_back(static_cast<char>(encoder_.big_endian() ? ELFDATA2MSB : ELFDATA2LSB));
    ehdr.push_back(static_cast<char>(EV_CURRENT));
    ehdr.resize(EI_NIDENT, '\0');
    encoder_.put(ehdr, ET_REL, 2);
    encoder_.put(ehdr, machine_, 2);
    encoder_.put(ehdr, EV_CURRENT, 4);
    encoder_.put(ehdr, 0, word);                 // e_entry
    encoder_.put(ehdr, 0, word);                 // e_phoff
    encoder_.put(ehdr, shoff, word);             // e_shoff
    encoder_.put(ehdr, 0, 4);                    // e_flags
    encoder_.put(ehdr, ehdr_size, 2);            // e_ehsize
    encoder_.put(ehdr, 0, 2);                    // e_phentsize
    encoder_.put(ehdr, 0, 2);                    // e_phnum
    encoder_.put(ehdr, shdr_size, 2);            // e_shentsize
    encoder_.put(ehdr, sections_.size() + 2, 2); // e_shnum
    encoder_.put(ehdr, sections_.size() + 1, 2); // e_shstrndx
    body.replace(0, ehdr.size(), ehdr);
    return body;
}

RawElf::RawElf(std::string& image)
    : image_(image), is_64_(image.size() > EI_CLASS && image[EI_CLASS] == ELFCLASS64),
      big_endian_(image.size() > EI_DATA && image[EI_DATA] == ELFDATA2MSB)
{
}

uint64_t RawElf::read(size_t pos, size_t size) const
{
    if (pos + size > image_.size())
        throw std::out_of_range("RawElf::read past the end");
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) {
        auto byte = static_cast<unsigned char>(image_[pos + (big_endian_ ? i : size - 1 - i)]);
        value = (value << 8) | byte;
    }
    return value;
}

void RawElf::write(size_t pos, size_t size, uint64_t value)
{
    if (pos + size > image_.size())
        throw std::out_of_range("RawElf::write past the end");
    for (size_t i = 0; i < size; ++i) {
        size_t shift = 8 * (big_endian_ ? size - 1 - i : i);
        image_[pos + i] = static_cast<char>((value >> shift) & 0xff);
    }
}

uint64_t RawElf::section_header_offset() const
{
    return read(shoff_pos(), is_64_ ? 8 : 4);
}

size_t RawElf::section_count() const
{
    return read(is_64_ ? 0x3C : 0x30, 2);
}

size_t RawElf::section_header_size() const
{
    return read(shentsize_pos(), 2);
}

size_t RawElf::section_header_pos(size_t index) const
{
    return section_header_offset() + index * section_header_size();
}

uint64_t RawElf::section_offset(size_t index) const
{
    return read(section_header_pos(index) + (is_64_ ? 24 : 16), is_64_ ? 8 : 4);
}

uint64_t RawElf::section_size(size_t index) const
{
    return read(section_header_pos(index) + (is_64_ ? 32 : 20), is_64_ ? 8 : 4);
}

void RawElf::set_section_offset(size_t index, uint64_t value)
{
    write(section_header_pos(index) + (is_64_ ? 24 : 16), is_64_ ? 8 : 4, value);
}

void RawElf::set_section_size(size_t index, uint64_t value)
{
    write(section_header_pos(index) + (is_64_ ? 32 : 20), is_64_ ? 8 : 4, value);
}

void RawElf::set_section_type(size_t index, uint32_t value)
{
    write(section_header_pos(index) + 4, 4, value);
}

std::optional<size_t> RawElf::find_section(std::string_view name) const
{
    size_t names = read(is_64_ ? 0x3E : 0x32, 2);
    uint64_t names_offset = section_offset(names);
    for (size_t i = 1; i < section_count(); ++i) {
        uint64_t name_offset = read(section_header_pos(i), 4);
        std::string_view candidate(image_.c_str() + names_offset + name_offset);
        if (candidate == name)
            return i;
    }
    return std::nullopt;
}

size_t RawElf::symbol_pos(size_t index) const
{
    std::optional<size_t> symtab = find_section(".symtab");
    if (!symtab)
        throw std::runtime_error("no .symtab");
    return section_offset(*symtab) + index * (is_64_ ? 24 : 16);
}

std::optional<size_t> RawElf::find_symbol(std::string_view name) const
{
    std::optional<size_t> symtab = find_section(".symtab");
    std::optional<size_t> strtab = find_section(".strtab");
    if (!symtab || !strtab)
        return std::nullopt;
    size_t count = section_size(*symtab) / (is_64_ ? 24 : 16);
    for (size_t i = 1; i < count; ++i) {
        uint64_t name_offset = read(symbol_pos(i), 4);
        std::string_view candidate(image_.c_str() + section_offset(*strtab) + name_offset);
        if (candidate == name)
            return i;
    }
    return std::nullopt;
}

void RawElf::set_symbol_name(size_t index, uint32_t name_offset)
{
    write(symbol_pos(index), 4, name_offset);
}

} // namespace kmodd::elf::test
