// SPDX-License-Identifier: LGPL-2.1-or-later
// The ELF reader. Its results match libkmod 30 (libkmod-elf.c) entry for entry, because
// depmod's output files are compared byte for byte with kmod's; where kmod would read past
// a buffer on a malformed file, this reader stops at the end of the section instead.
#include "elf/parse_module.hpp"

#include <elf.h>
#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

namespace kmodd::elf {
namespace {

using base::make_error;
using base::Result;
using base::Unexpected;

constexpr std::string_view kCrcPrefix = "__crc_";
constexpr uint64_t kNoCrc = UINT64_MAX;
// struct modversion_info: the crc (unsigned long) and the name fill 64 bytes.
constexpr uint64_t kVersionRecordSize = 64;
// STT_REGISTER: sparc "global register" symbols are undefined without being imports.
constexpr unsigned char kSttRegister = 13;

Unexpected malformed(std::string message)
{
    return make_error(ENOEXEC, std::move(message));
}

std::string libelf_error()
{
    const char* message = elf_errmsg(-1);
    return std::string("libelf: ") + (message != nullptr ? message : "unknown error");
}

bool libelf_is_ready()
{
    // A function-local static is initialized once even when two threads parse at once.
    static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
    return ready;
}

struct ElfEnd {
    void operator()(Elf* elf) const noexcept { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfEnd>;

/// The string starting at `offset` of a string table, cut at its NUL or at the table end.
/// nullopt when `offset` is outside the table.
std::optional<std::string_view> string_at(std::string_view table, uint64_t offset)
{
    if (offset >= table.size())
        return std::nullopt;
    std::string_view rest = table.substr(static_cast<size_t>(offset));
    return rest.substr(0, rest.find('\0'));
}

/// Calls `visit` for each string of a NUL-separated section the way kmod splits .modinfo
/// and __ksymtab_strings: leading NULs skipped, runs of NULs separate like one, the last
/// string may lack its NUL. kmod also yields nothing when a single byte is left after the
/// leading NULs; that is kept so that the results match.
template <typename Visit> void for_each_string(std::string_view section, Visit&& visit)
{
    size_t start = 0;
    while (start + 1 < section.size() && section[start] == '\0')
        ++start;
    if (section.size() - start <= 1)
        return;
    section.remove_prefix(start);
    while (!section.empty()) {
        size_t end = section.find('\0');
        std::string_view piece = section.substr(0, end);
        if (!piece.empty())
            visit(piece);
        if (end == std::string_view::npos)
            break;
        section.remove_prefix(end + 1);
    }
}

/// The fields of a section header the reader uses.
struct SectionHeader {
    uint64_t name = 0;
    uint64_t type = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
};

/// The first section with a wanted name, if any.
struct FoundSection {
    bool found = false;
    SectionHeader header;
};

/// Where the bytes come from: an image in memory, or an open file read on demand.
struct Source {
    std::string_view image; ///< the whole image (memory) or empty (file)
    int fd = -1;            ///< the file, or -1 for an image in memory
    uint64_t size = 0;      ///< the size of the image or file
    std::string_view head;  ///< its first bytes: at least the ELF header when it has one
};

class ModuleParser {
public:
    explicit ModuleParser(const Source& source) : source_(source) {}

    Result<ModuleInfo> parse()
    {
        if (auto opened = open(); !opened)
            return Unexpected(std::move(opened.error()));
        index_sections();
        ModuleInfo info;
        if (auto modinfo = read_modinfo(info.modinfo); !modinfo)
            return Unexpected(std::move(modinfo.error()));
        if (auto symbols = load_symbols(); !symbols)
            return Unexpected(std::move(symbols.error()));
        if (auto exports = read_exports(info.exports); !exports)
            return Unexpected(std::move(exports.error()));
        if (auto imports = read_imports(info.imports); !imports)
            return Unexpected(std::move(imports.error()));
        return info;
    }

    /// The records of __versions in section order, a leading '.' of a name dropped (as kmod
    /// does for ppc64's function descriptors).
    Result<std::vector<ImportedSymbol>> modversions()
    {
        if (auto opened = open(); !opened)
            return Unexpected(std::move(opened.error()));
        index_sections();
        if (!versions_.found)
            return make_error(ENOENT, "no __versions section");
        if (data_size(versions_) % kVersionRecordSize != 0)
            return make_error(EINVAL, "__versions: its size is no multiple of " +
                                          std::to_string(kVersionRecordSize));
        auto bytes = section_bytes(versions_, "__versions");
        if (!bytes)
            return Unexpected(std::move(bytes.error()));
        std::vector<ImportedSymbol> records;
        for (size_t i = 0; i < bytes->size() / kVersionRecordSize; ++i) {
            VersionRecord record = version_record(*bytes, i);
            if (record.name.starts_with('.'))
                record.name.remove_prefix(1);
            records.push_back(ImportedSymbol{std::string(record.name), record.crc, false});
        }
        return records;
    }

    /// The exported symbols as parse() finds them; ENOENT when the module has neither
    /// __crc_ symbols nor a __ksymtab_strings section (as kmod, which then has no list).
    Result<std::vector<ExportedSymbol>> exported_symbols()
    {
        if (auto opened = open(); !opened)
            return Unexpected(std::move(opened.error()));
        index_sections();
        if (!load_symbols())
            symbols_ = nullptr; // no usable symbol table: __ksymtab_strings alone
        std::vector<ExportedSymbol> exports;
        if (auto read = read_exports(exports); !read)
            return Unexpected(std::move(read.error()));
        if (exports.empty() && !ksymtab_strings_.found)
            return make_error(ENOENT, "no __crc_ symbols and no __ksymtab_strings section");
        return exports;
    }

private:
    /// An unsigned integer of `size` bytes at `p`, in the file's byte order.
    [[nodiscard]] uint64_t read_uint(const char* p, size_t size) const
    {
        uint64_t value = 0;
        for (size_t i = 0; i < size; ++i)
            value = (value << 8) | static_cast<unsigned char>(p[is_big_endian_ ? i : size - 1 - i]);
        return value;
    }

    /// Whether [offset, offset + size) lies inside the image (without overflow).
    [[nodiscard]] bool in_image(uint64_t offset, uint64_t size) const
    {
        return offset <= source_.size && size <= source_.size - offset;
    }

    /// `size` bytes at `offset`, which the caller has checked with in_image. From a file,
    /// libelf reads them (pread) into a buffer it keeps until elf_end.
    [[nodiscard]] Result<std::string_view> read(uint64_t offset, uint64_t size,
                                                std::string_view what) const
    {
        if (size == 0)
            return std::string_view();
        if (source_.fd < 0)
            return source_.image.substr(static_cast<size_t>(offset), static_cast<size_t>(size));
        Elf_Data* data = elf_getdata_rawchunk(elf_.get(), static_cast<int64_t>(offset),
                                              static_cast<size_t>(size), ELF_T_BYTE);
        if (data == nullptr || data->d_size != size)
            return make_error(EIO, std::string(what) + ": cannot read: " + libelf_error());
        return std::string_view(static_cast<const char*>(data->d_buf), data->d_size);
    }

    /// How many bytes of data a section has: none when missing or SHT_NOBITS.
    [[nodiscard]] static uint64_t data_size(const FoundSection& section)
    {
        return section.found && section.header.type != SHT_NOBITS ? section.header.size : 0;
    }

    [[nodiscard]] Result<std::string_view> section_bytes(const FoundSection& section,
                                                         std::string_view what) const
    {
        return read(section.header.offset, data_size(section), what);
    }

    Result<void> open()
    {
        // The same checks, in the same order, as kmod's elf_identify and kmod_elf_new.
        std::string_view head = source_.head;
        if (source_.size <= EI_NIDENT || head.size() <= EI_NIDENT ||
            std::memcmp(head.data(), ELFMAG, SELFMAG) != 0)
            return malformed("not an ELF file");
        auto elf_class = static_cast<unsigned char>(head[EI_CLASS]);
        auto elf_data = static_cast<unsigned char>(head[EI_DATA]);
        if (elf_class != ELFCLASS32 && elf_class != ELFCLASS64)
            return malformed("unsupported ELF class " + std::to_string(elf_class));
        is_64_ = elf_class == ELFCLASS64;
        if (source_.size <= (is_64_ ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr)))
            return malformed("truncated ELF header");
        if (elf_data != ELFDATA2LSB && elf_data != ELFDATA2MSB)
            return malformed("unsupported ELF data encoding " + std::to_string(elf_data));
        is_big_endian_ = elf_data == ELFDATA2MSB;

        if (!libelf_is_ready())
            return make_error(ENOSYS, "libelf does not support the current ELF version");
        if (source_.fd >= 0) {
            elf_.reset(elf_begin(source_.fd, ELF_C_READ, nullptr));
        } else {
            // elf_memory wants a writable image only so that a caller could modify the ELF
            // through libelf; reading never writes to it (data in the other byte order or
            // misaligned is converted into libelf's own copies).
            elf_.reset(elf_memory(const_cast<char*>(source_.image.data()), source_.image.size()));
        }
        if (!elf_ || elf_kind(elf_.get()) != ELF_K_ELF)
            return malformed(libelf_error());
        GElf_Ehdr ehdr;
        if (gelf_getehdr(elf_.get(), &ehdr) == nullptr)
            return malformed(libelf_error());

        // kmod takes e_shnum and e_shstrndx as they are (no extended numbering).
        section_count_ = ehdr.e_shnum;
        machine_ = ehdr.e_machine;
        size_t header_size = is_64_ ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
        if (ehdr.e_shentsize != header_size)
            return malformed("unexpected section header size " + std::to_string(ehdr.e_shentsize));
        if (!in_image(ehdr.e_shoff, uint64_t{section_count_} * header_size))
            return malformed("section header table out of range");
        size_t libelf_count = 0;
        if (elf_getshdrnum(elf_.get(), &libelf_count) != 0 || libelf_count < section_count_)
            return malformed("section header table out of range");

        FoundSection names;
        names.found = section_header(ehdr.e_shstrndx, names.header);
        if (!names.found)
            return malformed("section name table out of range");
        auto bytes = section_bytes(names, "section name table");
        if (!bytes)
            return Unexpected(std::move(bytes.error()));
        section_names_ = *bytes;
        if (section_names_.empty() || section_names_.back() != '\0')
            return malformed("section name table is not NUL-terminated");
        return {};
    }

    /// The header of section `index`, when it is a real section whose file range lies
    /// inside the image (kmod's elf_get_section_info).
    [[nodiscard]] bool section_header(size_t index, SectionHeader& out) const
    {
        if (index == SHN_UNDEF || index >= section_count_)
            return false;
        GElf_Shdr shdr;
        if (gelf_getshdr(elf_getscn(elf_.get(), index), &shdr) == nullptr)
            return false;
        if (!in_image(shdr.sh_offset, shdr.sh_size))
            return false;
        out = SectionHeader{shdr.sh_name, shdr.sh_type, shdr.sh_offset, shdr.sh_size};
        return true;
    }

    void index_sections()
    {
        // kmod looks each name up with a linear scan and takes the first section that has
        // it; one pass recording the first match of every wanted name gives the same.
        struct Wanted {
            std::string_view name;
            FoundSection* section;
        };
        const Wanted wanted[] = {
            {".modinfo", &modinfo_},
            {".symtab", &symtab_},
            {".strtab", &strtab_},
            {"__versions", &versions_},
            {"__ksymtab_strings", &ksymtab_strings_},
        };
        size_t missing = std::size(wanted);
        for (size_t index = 1; index < section_count_ && missing > 0; ++index) {
            SectionHeader header;
            if (!section_header(index, header))
                continue;
            std::optional<std::string_view> name = string_at(section_names_, header.name);
            if (!name)
                continue;
            for (const Wanted& entry : wanted) {
                if (!entry.section->found && *name == entry.name) {
                    *entry.section = FoundSection{true, header};
                    --missing;
                    break;
                }
            }
        }
    }

    Result<void> read_modinfo(std::vector<ModinfoEntry>& modinfo) const
    {
        auto bytes = section_bytes(modinfo_, ".modinfo");
        if (!bytes)
            return Unexpected(std::move(bytes.error()));
        modinfo.reserve(16);
        for_each_string(*bytes, [&](std::string_view entry) {
            size_t equals = entry.find('=');
            if (equals == std::string_view::npos)
                modinfo.push_back(ModinfoEntry{std::string(entry), {}});
            else
                modinfo.push_back(ModinfoEntry{std::string(entry.substr(0, equals)),
                                               std::string(entry.substr(equals + 1))});
        });
        return {};
    }

    [[nodiscard]] size_t symbol_size() const
    {
        return is_64_ ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
    }

    /// Reads .strtab and converts .symtab with libelf (byte order, alignment), when both
    /// exist and the table has a whole number of entries.
    Result<void> load_symbols()
    {
        if (!symtab_.found || !strtab_.found)
            return {};
        auto strings = section_bytes(strtab_, ".strtab");
        if (!strings)
            return Unexpected(std::move(strings.error()));
        strings_ = *strings;
        uint64_t size = data_size(symtab_);
        if (size % symbol_size() != 0 || size == 0)
            return {};
        symbol_count_ = static_cast<size_t>(size / symbol_size());
        if (symbol_count_ > INT_MAX) // gelf_getsym takes an int index
            return malformed(".symtab: too many symbols");
        symbols_ = elf_getdata_rawchunk(elf_.get(), static_cast<int64_t>(symtab_.header.offset),
                                        static_cast<size_t>(size), ELF_T_SYM);
        if (symbols_ == nullptr)
            return make_error(EIO, ".symtab: cannot read: " + libelf_error());
        return {};
    }

    [[nodiscard]] bool symbol(size_t index, GElf_Sym& sym) const
    {
        return gelf_getsym(symbols_, static_cast<int>(index), &sym) != nullptr;
    }

    /// The CRC of a `__crc_` symbol: its value when absolute, else the u32 it points at
    /// (all ones when that is outside the section, as kmod does).
    Result<uint64_t> resolve_crc(uint64_t value, uint16_t section_index)
    {
        if (section_index == SHN_ABS || section_index == SHN_UNDEF)
            return value;
        SectionHeader header;
        if (!section_header(section_index, header) || header.type == SHT_NOBITS)
            return kNoCrc;
        // Unsigned on purpose, as in kmod: for a section smaller than 4 bytes this wraps and
        // passes, and the u32 is read past the section end (still inside the image).
        if (value > header.size - sizeof(uint32_t))
            return kNoCrc;
        uint64_t offset = header.offset + value;
        if (offset < header.offset || !in_image(offset, sizeof(uint32_t)))
            return kNoCrc;
        if (header.size < sizeof(uint32_t)) {
            auto bytes = read(offset, sizeof(uint32_t), "CRC");
            if (!bytes)
                return Unexpected(std::move(bytes.error()));
            return read_uint(bytes->data(), sizeof(uint32_t));
        }
        // CRCs sit in one or two sections (__kcrctab, __kcrctab_gpl): read each once.
        auto cached = std::find_if(crc_sections_.begin(), crc_sections_.end(),
                                   [&](const auto& entry) { return entry.first == section_index; });
        if (cached == crc_sections_.end()) {
            auto bytes = read(header.offset, header.size, "CRC section");
            if (!bytes)
                return Unexpected(std::move(bytes.error()));
            crc_sections_.emplace_back(section_index, *bytes);
            cached = crc_sections_.end() - 1;
        }
        return read_uint(cached->second.data() + value, sizeof(uint32_t));
    }

    Result<void> read_exports(std::vector<ExportedSymbol>& exports)
    {
        if (symbols_ != nullptr) {
            bool usable = true;
            for (size_t i = 1; i < symbol_count_; ++i) {
                GElf_Sym sym;
                if (!symbol(i, sym)) {
                    usable = false;
                    break;
                }
                // Any bad name makes kmod drop the whole table, not only this symbol.
                std::optional<std::string_view> name = string_at(strings_, sym.st_name);
                if (!name) {
                    usable = false;
                    break;
                }
                if (!name->starts_with(kCrcPrefix))
                    continue;
                auto crc = resolve_crc(sym.st_value, sym.st_shndx);
                if (!crc)
                    return Unexpected(std::move(crc.error()));
                exports.push_back(
                    ExportedSymbol{std::string(name->substr(kCrcPrefix.size())), *crc});
            }
            if (usable && !exports.empty())
                return {};
            exports.clear();
        }
        // No CRCs (CONFIG_MODVERSIONS off) or no usable symbol table: the names only.
        auto bytes = section_bytes(ksymtab_strings_, "__ksymtab_strings");
        if (!bytes)
            return Unexpected(std::move(bytes.error()));
        for_each_string(*bytes, [&](std::string_view name) {
            exports.push_back(ExportedSymbol{std::string(name), 0});
        });
        return {};
    }

    /// One __versions record: the CRC and the name, cut at its NUL or the field end.
    struct VersionRecord {
        std::string_view name;
        uint64_t crc = 0;
    };

    [[nodiscard]] VersionRecord version_record(std::string_view records, size_t index) const
    {
        size_t crc_size = is_64_ ? sizeof(uint64_t) : sizeof(uint32_t);
        std::string_view record = records.substr(index * kVersionRecordSize, kVersionRecordSize);
        std::string_view field = record.substr(crc_size);
        return VersionRecord{field.substr(0, field.find('\0')), read_uint(record.data(), crc_size)};
    }

    Result<void> read_imports(std::vector<ImportedSymbol>& imports) const
    {
        if (!symtab_.found)
            return malformed("no .symtab section");
        if (!strtab_.found)
            return malformed("no .strtab section");
        uint64_t symtab_size = data_size(symtab_);
        if (symtab_size % symbol_size() != 0)
            return malformed(".symtab: size " + std::to_string(symtab_size) +
                             " is not a multiple of " + std::to_string(symbol_size()));

        std::string_view records;
        if (data_size(versions_) % kVersionRecordSize == 0) {
            auto bytes = section_bytes(versions_, "__versions");
            if (!bytes)
                return Unexpected(std::move(bytes.error()));
            records = *bytes;
        }
        size_t record_count = records.size() / kVersionRecordSize;
        // Sorted by (name, record index), so that the first record of a name is found, as
        // kmod's linear search finds it.
        std::vector<std::pair<std::string_view, size_t>> by_name;
        by_name.reserve(record_count);
        for (size_t i = 0; i < record_count; ++i)
            by_name.emplace_back(version_record(records, i).name, i);
        std::sort(by_name.begin(), by_name.end());
        std::vector<bool> matched(record_count, false);
        imports.reserve(std::max<size_t>(record_count, 16));

        bool has_register_symbols = machine_ == EM_SPARC || machine_ == EM_SPARCV9;
        for (size_t i = 1; i < symbol_count_; ++i) {
            GElf_Sym sym;
            if (!symbol(i, sym))
                return malformed(".symtab: cannot read entry " + std::to_string(i));
            if (sym.st_shndx != SHN_UNDEF)
                continue;
            if (has_register_symbols && GELF_ST_TYPE(sym.st_info) == kSttRegister)
                continue;
            std::optional<std::string_view> name = string_at(strings_, sym.st_name);
            if (!name)
                return malformed(".symtab: entry " + std::to_string(i) +
                                 " name offset out of range");
            if (name->empty())
                continue;
            uint64_t crc = 0;
            auto found = std::lower_bound(by_name.begin(), by_name.end(),
                                          std::pair<std::string_view, size_t>(*name, 0));
            if (found != by_name.end() && found->first == *name) {
                crc = version_record(records, found->second).crc;
                matched[found->second] = true;
            }
            imports.push_back(
                ImportedSymbol{std::string(*name), crc, GELF_ST_BIND(sym.st_info) == STB_WEAK});
        }
        // Records no symbol refers to (module_layout) are imports too.
        for (size_t i = 0; i < record_count; ++i) {
            if (matched[i])
                continue;
            VersionRecord record = version_record(records, i);
            imports.push_back(ImportedSymbol{std::string(record.name), record.crc, false});
        }
        return {};
    }

    Source source_;
    ElfHandle elf_;
    bool is_64_ = false;
    bool is_big_endian_ = false;
    size_t section_count_ = 0;
    unsigned machine_ = EM_NONE;
    std::string_view section_names_;
    FoundSection modinfo_;
    FoundSection symtab_;
    FoundSection strtab_;
    FoundSection versions_;
    FoundSection ksymtab_strings_;
    std::string_view strings_;
    Elf_Data* symbols_ = nullptr;
    size_t symbol_count_ = 0;
    std::vector<std::pair<size_t, std::string_view>> crc_sections_;
};

} // namespace

Result<ModuleInfo> parse_module(std::string_view image)
{
    return ModuleParser(Source{image, -1, image.size(), image}).parse();
}

Result<std::vector<ImportedSymbol>> read_modversions(std::string_view image)
{
    return ModuleParser(Source{image, -1, image.size(), image}).modversions();
}

Result<std::vector<ExportedSymbol>> read_exported_symbols(std::string_view image)
{
    return ModuleParser(Source{image, -1, image.size(), image}).exported_symbols();
}

Result<ModuleInfo> parse_module_file(int fd, uint64_t size, std::string_view head)
{
    return ModuleParser(Source{{}, fd, size, head}).parse();
}

} // namespace kmodd::elf
