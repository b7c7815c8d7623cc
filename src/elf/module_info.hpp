// SPDX-License-Identifier: LGPL-2.1-or-later
// What a module file says about itself: .modinfo, exported and needed symbols, CRCs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kmodd::elf {

/// One `key=value` string of `.modinfo`, in section order. A string without '=' has the
/// whole string as key and an empty value (as libkmod does).
struct ModinfoEntry {
    std::string key;
    std::string value;
};

/// A symbol the module exports, with its CRC (0 when the module has no CRCs).
struct ExportedSymbol {
    std::string name;
    uint64_t crc = 0;
};

/// A symbol the module needs from another module or from vmlinux.
struct ImportedSymbol {
    std::string name;
    uint64_t crc = 0;     ///< from __versions, 0 when absent
    bool is_weak = false; ///< STB_WEAK undefined symbol: never reported as unknown
};

/// What depmod, modprobe and modinfo need to know about one module file.
struct ModuleInfo {
    std::vector<ModinfoEntry> modinfo;
    std::vector<ExportedSymbol> exports;
    std::vector<ImportedSymbol> imports;

    /// The values of every `.modinfo` entry with `key`, in section order.
    [[nodiscard]] std::vector<std::string_view> values(std::string_view key) const;
};

/// A ModuleInfo's content with its strings borrowed (from a ModuleInfo, or from the bytes of a
/// parse cache): what an index is built from without copying every string first.
struct ModuleInfoView {
    struct Modinfo {
        std::string_view key;
        std::string_view value;
    };
    struct Export {
        std::string_view name;
        uint64_t crc = 0;
    };
    struct Import {
        std::string_view name;
        uint64_t crc = 0;
        bool is_weak = false;
    };
    std::vector<Modinfo> modinfo;
    std::vector<Export> exports;
    std::vector<Import> imports;

    /// Views of `info`'s strings (valid while it lives and is not changed) instead of what
    /// this held; the vectors keep their capacity.
    void assign(const ModuleInfo& info);
    /// Holds nothing, as for a file that could not be parsed; the vectors keep their capacity.
    void clear();
};

} // namespace kmodd::elf
