// SPDX-License-Identifier: LGPL-2.1-or-later
// Checks against the Debian kernel tree the oracle tests use (skipped when it is absent):
// binutils' nm and the modules.* files kmod's depmod wrote for that tree.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "elf/module_file.hpp"
#include "test_support.hpp"

namespace kmodd::elf {
namespace {

using test::run_command;

class DebianModules : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::optional<test::DebianTree> tree = test::debian_tree("amd64");
        if (!tree)
            GTEST_SKIP() << "Debian's amd64 tree is not in " << KMODD_ELF_TEST_CACHE
                         << " (the oracle tests build it)";
        dir_ = tree->modules_dir;
        oracle_dir_ = tree->oracle_dir;
    }

    /// The module's file in the tree: `relative` (a .ko path) as it is, or with .xz when the
    /// tree ships compressed modules (Debian 13's).
    std::string file_of(const std::string& relative) const
    {
        const std::string plain = dir_ + "/" + relative;
        return std::filesystem::exists(plain) ? plain : plain + ".xz";
    }

    /// A plain ELF copy of the module for nm, which reads no .ko.xz.
    std::string plain_file_of(const std::string& relative)
    {
        const std::string file = file_of(relative);
        if (!file.ends_with(".xz"))
            return file;
        const std::string copy =
            scratch_.path() + "/" + std::filesystem::path(relative).filename().string();
        if (!std::filesystem::exists(copy)) {
            EXPECT_EQ(run_command("xz -dc '" + file + "' >'" + copy + "' && echo done"), "done\n");
        }
        return copy;
    }

    ModuleInfo load(const std::string& relative)
    {
        struct stat st {};
        auto info = load_module_file(AT_FDCWD, file_of(relative), st);
        EXPECT_TRUE(info.has_value()) << relative << ": " << info.error().message;
        return info ? *info : ModuleInfo{};
    }

    /// `nm -p` (symbol table order) lines of a module: {type, name, value}.
    struct NmLine {
        std::string type;
        std::string name;
        std::string value;
    };
    std::vector<NmLine> nm(const std::string& relative, const std::string& options)
    {
        std::istringstream out(run_command(std::string(KMODD_NM) + " -p " + options + " '" +
                                           plain_file_of(relative) + "'"));
        std::vector<NmLine> lines;
        std::string line;
        while (std::getline(out, line)) {
            std::istringstream fields(line);
            std::vector<std::string> parts;
            for (std::string part; fields >> part;)
                parts.push_back(part);
            if (parts.size() == 3)
                lines.push_back(NmLine{parts[1], parts[2], parts[0]});
            else if (parts.size() == 2)
                lines.push_back(NmLine{parts[0], parts[1], ""});
        }
        return lines;
    }

    std::string dir_;
    std::string oracle_dir_;
    test::TempDir scratch_;
};

TEST_F(DebianModules, BtrfsHasImportsAndItsFilesystemAlias)
{
    ModuleInfo info = load("kernel/fs/btrfs/btrfs.ko");
    EXPECT_GT(info.imports.size(), 100U);
    std::vector<std::string_view> aliases = info.values("alias");
    EXPECT_NE(std::find(aliases.begin(), aliases.end(), "fs-btrfs"), aliases.end());
    EXPECT_EQ(info.values("license"), (std::vector<std::string_view>{"GPL"}));
    // btrfs exports nothing in 6.1; mac80211 does.
    EXPECT_TRUE(info.exports.empty());
    EXPECT_GT(load("kernel/net/mac80211/mac80211.ko").exports.size(), 100U);
}

TEST_F(DebianModules, ExportsAreTheCrcSymbolsNmListsInSymbolTableOrder)
{
    for (const char* module : {"kernel/net/mac80211/mac80211.ko", "kernel/lib/libcrc32c.ko"}) {
        ModuleInfo info = load(module);
        std::vector<std::string> expected;
        for (const NmLine& line : nm(module, "")) {
            if (line.name.starts_with("__crc_"))
                expected.push_back(line.name.substr(6));
        }
        std::vector<std::string> actual;
        for (const ExportedSymbol& symbol : info.exports) {
            actual.push_back(symbol.name);
            EXPECT_NE(symbol.crc, UINT64_MAX) << symbol.name;
        }
        EXPECT_FALSE(expected.empty()) << module;
        EXPECT_EQ(actual, expected) << module;
    }
}

TEST_F(DebianModules, ImportsAreTheUndefinedSymbolsNmListsThenTheUnmatchedVersions)
{
    const std::string module = "kernel/fs/btrfs/btrfs.ko";
    ModuleInfo info = load(module);
    std::vector<NmLine> undefined = nm(module, "-u");
    ASSERT_FALSE(undefined.empty());
    ASSERT_GT(info.imports.size(), undefined.size());
    for (size_t i = 0; i < undefined.size(); ++i) {
        EXPECT_EQ(info.imports[i].name, undefined[i].name) << i;
        EXPECT_EQ(info.imports[i].is_weak, undefined[i].type == "w" || undefined[i].type == "v")
            << undefined[i].name;
        EXPECT_NE(info.imports[i].crc, 0U) << undefined[i].name; // Debian builds MODVERSIONS
    }
    std::vector<std::string> rest;
    for (size_t i = undefined.size(); i < info.imports.size(); ++i)
        rest.push_back(info.imports[i].name);
    EXPECT_EQ(rest, (std::vector<std::string>{"module_layout"}));
}

std::string module_name(const std::filesystem::path& path)
{
    std::string name = path.filename().string();
    name = name.substr(0, name.find(".ko"));
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

TEST_F(DebianModules, EveryModuleParsesAndAgreesWithKmodsSymbolAndAliasIndexes)
{
    std::map<std::string, std::set<std::string>> exports;
    std::map<std::string, std::set<std::string>> aliases;
    // Every CRC a module exports, and every (name, CRC) some module imports with a version.
    std::map<std::string, uint64_t> export_crcs;
    std::vector<std::pair<std::string, uint64_t>> versioned_imports;
    size_t modules = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ + "/kernel")) {
        if (!entry.is_regular_file() || entry.path().string().find(".ko") == std::string::npos)
            continue;
        ++modules;
        struct stat st {};
        auto info = load_module_file(AT_FDCWD, entry.path().string(), st);
        ASSERT_TRUE(info.has_value()) << entry.path() << ": " << info.error().message;
        std::string name = module_name(entry.path());
        for (const ExportedSymbol& symbol : info->exports) {
            exports[name].insert(symbol.name);
            export_crcs.emplace(symbol.name, symbol.crc);
        }
        for (const ImportedSymbol& symbol : info->imports) {
            if (symbol.crc != 0)
                versioned_imports.emplace_back(symbol.name, symbol.crc);
        }
        for (std::string_view alias : info->values("alias"))
            aliases[name].insert(std::string(alias));
    }
    EXPECT_GT(modules, 1000U);

    // What one module exports, the modules using it recorded with the same CRC in their
    // __versions at build time: both CRC paths (__kcrctab and __versions) agree.
    size_t compared = 0;
    for (const auto& [name, crc] : versioned_imports) {
        auto exported = export_crcs.find(name);
        if (exported == export_crcs.end())
            continue; // exported by vmlinux
        EXPECT_EQ(crc, exported->second) << name;
        ++compared;
    }
    EXPECT_GT(compared, 10000U);

    auto check = [&](const std::string& file, const std::string& prefix,
                     std::map<std::string, std::set<std::string>>& parsed) {
        std::string path = oracle_dir_ + "/" + file;
        if (::access(path.c_str(), R_OK) != 0)
            return; // the oracle has not run yet
        std::istringstream in(test::read_bytes(path));
        size_t lines = 0;
        for (std::string line; std::getline(in, line);) {
            if (!line.starts_with("alias "))
                continue;
            size_t space = line.rfind(' ');
            std::string key = line.substr(6, space - 6);
            std::string owner = line.substr(space + 1);
            ASSERT_TRUE(key.starts_with(prefix)) << line;
            EXPECT_TRUE(parsed[owner].contains(key.substr(prefix.size()))) << file << ": " << line;
            ++lines;
        }
        EXPECT_GT(lines, 1000U) << file;
    };
    check("modules.symbols", "symbol:", exports);
    check("modules.alias", "", aliases);
}

TEST_F(DebianModules, ImportCrcsAreTheVersionsModprobeDumps)
{
    if (std::string(KMODD_MODPROBE).empty())
        GTEST_SKIP() << "modprobe is not installed";
    for (const char* module : {"kernel/fs/btrfs/btrfs.ko", "kernel/lib/libcrc32c.ko"}) {
        ModuleInfo info = load(module);
        std::map<std::string, uint64_t> crcs;
        for (const ImportedSymbol& symbol : info.imports)
            crcs.emplace(symbol.name, symbol.crc);
        std::istringstream out(run_command(std::string(KMODD_MODPROBE) + " --dump-modversions '" +
                                           file_of(module) + "'"));
        size_t records = 0;
        for (std::string line; std::getline(out, line); ++records) {
            size_t tab = line.find('\t');
            ASSERT_NE(tab, std::string::npos) << line;
            std::string name = line.substr(tab + 1);
            ASSERT_TRUE(crcs.contains(name)) << name;
            EXPECT_EQ(crcs[name], std::stoull(line.substr(0, tab), nullptr, 16)) << name;
        }
        EXPECT_GT(records, 0U) << module;
        EXPECT_EQ(records, crcs.size()) << module;
    }
}

std::vector<std::string> module_paths(const std::string& dir)
{
    std::vector<std::string> paths;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir + "/kernel")) {
        if (entry.is_regular_file() && entry.path().string().find(".ko") != std::string::npos)
            paths.push_back(std::filesystem::relative(entry.path(), dir).string());
    }
    std::sort(paths.begin(), paths.end());
    return paths;
}

TEST_F(DebianModules, CompressedTreesParseLikeTheUncompressedOne)
{
    int trees = 0;
    for (const char* name : {"amd64-xz", "amd64-zst"}) {
        std::optional<test::DebianTree> tree = test::debian_tree(name);
        if (!tree)
            continue;
        ++trees;
        std::vector<std::string> paths = module_paths(tree->modules_dir);
        EXPECT_EQ(paths.size(), module_paths(dir_).size()) << name;
        // Every 16th module keeps this quick; the oracle tests cover the whole trees.
        for (size_t i = 0; i < paths.size(); i += 16) {
            const std::string& compressed = paths[i];
            std::string plain = compressed.substr(0, compressed.rfind(".ko") + 3);
            struct stat st {};
            auto from_compressed =
                load_module_file(AT_FDCWD, tree->modules_dir + "/" + compressed, st);
            ASSERT_TRUE(from_compressed.has_value())
                << compressed << ": " << from_compressed.error().message;
            EXPECT_EQ(test::describe(*from_compressed), test::describe(load(plain))) << compressed;
        }
    }
    if (trees == 0)
        GTEST_SKIP() << "no compressed Debian tree yet";
}

} // namespace
} // namespace kmodd::elf
