// SPDX-License-Identifier: LGPL-2.1-or-later
// ModuleDatabase against a real Debian module tree indexed by kmod's own depmod, and against
// kmod's modprobe -R. Skipped when the tree (fetched for the oracle tests) is absent.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "depmod/index_reader.hpp"
#include "index/names.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos)
            nl = text.size();
        out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

std::string shell_quote(const std::string& s)
{
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

bool has_wildcard(const std::string& s)
{
    return s.find_first_of("*?[") != std::string::npos;
}

/// A text that the pattern matches: '*' matches nothing, '?' a '0', a bracket its first
/// member. nullopt for patterns this cannot instantiate (negated or unmatched brackets).
std::optional<std::string> instantiate(const std::string& pattern)
{
    std::string out;
    for (size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '*')
            continue;
        if (c == '?') {
            out += '0';
        } else if (c == '[') {
            size_t close = pattern.find(']', i + 2);
            if (close == std::string::npos || pattern[i + 1] == '!' || pattern[i + 1] == '^')
                return std::nullopt;
            out += pattern[i + 1];
            i = close;
        } else if (c == '\\' || c == ']') {
            return std::nullopt;
        } else {
            out += c;
        }
    }
    return out;
}

struct AliasLine {
    std::string pattern;
    std::string module;
};

/// A copy of the cached tree indexed by kmod's depmod, kept in the build tree and shared by
/// the test processes (ctest runs each test alone): published by rename once complete.
struct IndexedTree {
    fs::path root_dir;
    std::string version;

    [[nodiscard]] const fs::path& root() const { return root_dir; }
    [[nodiscard]] fs::path module_dir() const { return root_dir / "lib/modules" / version; }
    [[nodiscard]] std::string read(const std::string& name) const
    {
        return test::slurp(module_dir() / name);
    }
};

class RealTree : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        fs::path base = fs::path(KMODD_TEST_CACHE) / "trees/amd64/lib/modules";
        std::error_code ec;
        if (!fs::is_directory(base, ec)) {
            skip_reason_ = "no module tree at " + base.string();
            return;
        }
        for (const auto& entry : fs::directory_iterator(base, ec)) {
            if (entry.is_directory())
                version_ = entry.path().filename().string();
        }
        if (version_.empty() || !fs::exists("/usr/sbin/depmod") ||
            !fs::exists("/usr/sbin/modprobe")) {
            skip_reason_ = "no module tree or no kmod tools";
            return;
        }
        const fs::path from = base / version_;
        struct stat st {};
        if (::stat((from / "modules.order").c_str(), &st) != 0) {
            skip_reason_ = "no modules.order in " + from.string();
            return;
        }
        const fs::path cache = fs::path(KMODD_FIXTURE_MODULES).parent_path() / "index_reader_trees";
        const fs::path indexed = cache / (version_ + "-" + std::to_string(st.st_mtim.tv_sec) + "-" +
                                          std::to_string(st.st_size));
        if (!fs::exists(indexed, ec)) {
            fs::create_directories(cache, ec);
            std::string temp = (cache / "tmp-XXXXXX").string();
            if (::mkdtemp(temp.data()) == nullptr) {
                skip_reason_ = "cannot create a directory in " + cache.string();
                return;
            }
            const fs::path to = fs::path(temp) / "lib/modules" / version_;
            fs::create_directories(to.parent_path(), ec);
            std::string output;
            int status = test::run_shell(
                "cp -al " + shell_quote(from.string()) + " " + shell_quote(to.string()) +
                    " || cp -a " + shell_quote(from.string()) + " " + shell_quote(to.string()),
                &output);
            if (status == 0)
                status = test::run_shell("/usr/sbin/depmod -C /dev/null -b " + shell_quote(temp) +
                                             " " + shell_quote(version_),
                                         &output);
            if (status != 0) {
                fs::remove_all(temp, ec);
                skip_reason_ = "could not index a copy of the tree: " + output;
                return;
            }
            // Another test process may have won the race: then use its copy.
            fs::rename(temp, indexed, ec);
            if (ec)
                fs::remove_all(temp, ec);
        }
        tree_ = std::make_unique<IndexedTree>(IndexedTree{indexed, version_});
        for (const std::string& line : lines_of(tree_->read("modules.alias"))) {
            if (!line.starts_with("alias "))
                continue;
            size_t space = line.find(' ', 6);
            aliases_.push_back({line.substr(6, space - 6), line.substr(space + 1)});
        }
    }

    static void TearDownTestSuite()
    {
        tree_.reset();
        aliases_.clear();
    }

    void SetUp() override
    {
        if (!tree_)
            GTEST_SKIP() << skip_reason_;
    }

    static ModuleDatabase open_database(const fs::path& dir)
    {
        auto db = ModuleDatabase::open(dir.string());
        EXPECT_TRUE(db.has_value()) << db.error().message;
        return std::move(*db);
    }

    /// Aliases to resolve: 200 instantiated patterns spread over modules.alias, then a few
    /// modaliases of real hardware and names that are not modaliases.
    static std::vector<std::string> sample_aliases()
    {
        std::vector<std::string> out;
        const size_t step = std::max<size_t>(1, aliases_.size() / 200);
        for (size_t i = 0; i < aliases_.size() && out.size() < 200; i += step) {
            if (auto text = instantiate(aliases_[i].pattern))
                out.push_back(*text);
        }
        for (const char* extra :
             {"pci:v00008086d00001E31sv00001028sd00000001bc0Csc03i30",
              "usb:v046Dp0001d0100dc00dsc00dp00ic03isc01ip01in00",
              "usb:v1D6Bp0003d0601dc09dsc00dp03ic09isc00ip00in00",
              "pci:v000010ECd00008168sv00001028sd00000001bc02sc00i00",
              "acpi:PNP0303:", "platform:rtc_cmos", "acpi:ACPI0013:",
              "cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0001,0002", "fs-ext4", "fs-vfat",
              "char-major-10-237", "net-pf-10", "crypto-aes", "ext4", "snd-hda-intel",
              "nonexistent-thing", "dmi:bvnLENOVO:bvrX:svnLENOVO:pn20XX:pvrThinkPad:"})
            out.emplace_back(extra);
        return out;
    }

    static std::unique_ptr<IndexedTree> tree_;
    static std::string version_;
    static std::string skip_reason_;
    static std::vector<AliasLine> aliases_;
};

std::unique_ptr<IndexedTree> RealTree::tree_;
std::string RealTree::version_;
std::string RealTree::skip_reason_;
std::vector<AliasLine> RealTree::aliases_;

/// kmod_module_new_from_lookup() without configuration: module name, symbol, aliases,
/// built-in name, built-in aliases; the first that finds something wins.
std::vector<std::string> resolve_like_modprobe(const ModuleDatabase& db, const std::string& given)
{
    auto name = index::normalize_alias(given);
    if (!name)
        return {};
    if (name->find(':') == std::string::npos && db.dependency_line(*name))
        return {*name};
    if (name->starts_with("symbol:")) {
        if (auto owner = db.module_for_symbol(name->substr(7)))
            return {*owner};
    }
    if (auto modules = db.modules_for_alias(*name); !modules.empty())
        return modules;
    if (db.is_builtin(*name))
        return {*name};
    return db.builtin_modules_for_alias(*name);
}

TEST_F(RealTree, EveryLiteralAliasOfModulesAliasFindsItsModule)
{
    ModuleDatabase db = open_database(tree_->module_dir());
    size_t checked = 0;
    for (const AliasLine& alias : aliases_) {
        if (has_wildcard(alias.pattern))
            continue;
        auto modules = db.modules_for_alias(alias.pattern);
        EXPECT_NE(std::find(modules.begin(), modules.end(), alias.module), modules.end())
            << "alias '" << alias.pattern << "' of '" << alias.module << "'";
        ++checked;
    }
    EXPECT_GT(checked, 1000U);
}

TEST_F(RealTree, EveryInstantiatedAliasPatternFindsItsModule)
{
    ModuleDatabase db = open_database(tree_->module_dir());
    size_t checked = 0;
    for (const AliasLine& alias : aliases_) {
        auto text = instantiate(alias.pattern);
        if (!text)
            continue;
        auto modules = db.modules_for_alias(*text);
        EXPECT_NE(std::find(modules.begin(), modules.end(), alias.module), modules.end())
            << "'" << *text << "' from '" << alias.pattern << "' of '" << alias.module << "'";
        ++checked;
    }
    EXPECT_GT(checked, 20000U);
}

TEST_F(RealTree, ResolvesAliasesToTheModulesKmodsModprobePrintsInItsOrder)
{
    ModuleDatabase db = open_database(tree_->module_dir());
    const std::vector<std::string> aliases = sample_aliases();
    test::TempTree scratch;
    fs::path list = scratch.root() / "aliases.txt";
    {
        std::ofstream out(list);
        for (const std::string& alias : aliases)
            out << alias << '\n';
    }
    std::string output;
    int status = test::run_shell(
        "while IFS= read -r a; do echo \"== $a\"; /usr/sbin/modprobe -C /dev/null -d " +
            shell_quote(tree_->root().string()) + " -S " + shell_quote(version_) +
            " -R -- \"$a\" 2>/dev/null; done < " + shell_quote(list.string()) + "; exit 0",
        &output);
    ASSERT_EQ(status, 0) << output;
    std::map<std::string, std::vector<std::string>> kmod;
    std::string current;
    for (const std::string& line : lines_of(output)) {
        if (line.starts_with("== "))
            kmod[current = line.substr(3)];
        else
            kmod[current].push_back(line);
    }
    size_t with_several = 0;
    for (const std::string& alias : aliases) {
        ASSERT_TRUE(kmod.count(alias)) << alias;
        EXPECT_EQ(resolve_like_modprobe(db, alias), kmod[alias]) << "alias '" << alias << "'";
        with_several += kmod[alias].size() > 1 ? 1 : 0;
    }
    std::cout << "[          ] " << aliases.size() << " aliases compared with modprobe -R, "
              << with_several << " resolve to several modules\n";
    EXPECT_GT(with_several, 0U);
}

TEST_F(RealTree, EveryModuleHasItsModulesDepLineAsDependencyLine)
{
    ModuleDatabase db = open_database(tree_->module_dir());
    size_t checked = 0;
    for (const std::string& line : lines_of(tree_->read("modules.dep"))) {
        std::string name = index::modname_from_path(line.substr(0, line.find(':')));
        EXPECT_EQ(db.dependency_line(name), line);
        ++checked;
    }
    EXPECT_GT(checked, 1000U);
}

TEST_F(RealTree, DumpOfModulesAliasBinVisitsOnePairPerUsableAliasLine)
{
    size_t usable = 0;
    for (const AliasLine& alias : aliases_)
        usable += index::normalize_alias(alias.pattern) ? 1 : 0;
    auto reader = IndexReader::open((tree_->module_dir() / "modules.alias.bin").string());
    ASSERT_TRUE(reader.has_value()) << reader.error().message;
    size_t visited = 0;
    std::string previous;
    bool ordered = true;
    reader->dump([&](std::string_view key, const IndexReader::Value&) {
        ++visited;
        ordered = ordered && previous <= key;
        previous = key;
    });
    EXPECT_EQ(visited, usable);
    EXPECT_GT(visited, 20000U);
    EXPECT_TRUE(ordered);
}

TEST_F(RealTree, DumpsListAliasesAndSymbolsLikeModprobeShowConfig)
{
    std::string output;
    int status = test::run_shell("/usr/sbin/modprobe -C /dev/null -d " +
                                     shell_quote(tree_->root().string()) + " -S " +
                                     shell_quote(version_) + " -c 2>/dev/null",
                                 &output);
    ASSERT_EQ(status, 0) << output;
    std::vector<std::string> kmod;
    for (const std::string& line : lines_of(output)) {
        if (line.starts_with("alias "))
            kmod.push_back(line);
    }
    std::vector<std::string> ours;
    for (const char* name : {"modules.alias.bin", "modules.symbols.bin"}) {
        auto reader = IndexReader::open((tree_->module_dir() / name).string());
        ASSERT_TRUE(reader.has_value()) << reader.error().message;
        reader->dump([&ours](std::string_view key, const IndexReader::Value& v) {
            ours.push_back("alias " + std::string(key) + " " + std::string(v.text));
        });
    }
    ASSERT_EQ(ours.size(), kmod.size());
    EXPECT_TRUE(ours == kmod);
}

TEST_F(RealTree, TheTextFilesAloneAnswerLikeTheBinaries)
{
    ModuleDatabase bin = open_database(tree_->module_dir());
    test::TempTree text_tree(version_);
    for (const char* name : {"modules.dep", "modules.alias", "modules.symbols", "modules.builtin"})
        text_tree.write(name, tree_->read(name));
    ModuleDatabase text = open_database(text_tree.module_dir());

    for (const std::string& line : lines_of(tree_->read("modules.dep"))) {
        std::string name = index::modname_from_path(line.substr(0, line.find(':')));
        EXPECT_EQ(text.dependency_line(name), bin.dependency_line(name)) << name;
    }
    std::vector<std::string> aliases = sample_aliases();
    for (const AliasLine& alias : aliases_) {
        if (!has_wildcard(alias.pattern))
            aliases.push_back(alias.pattern);
    }
    for (const std::string& alias : aliases)
        EXPECT_EQ(text.modules_for_alias(alias), bin.modules_for_alias(alias)) << alias;
    for (const std::string& line : lines_of(tree_->read("modules.symbols"))) {
        if (!line.starts_with("alias symbol:"))
            continue;
        std::string symbol = line.substr(13, line.find(' ', 13) - 13);
        EXPECT_EQ(text.module_for_symbol(symbol), bin.module_for_symbol(symbol)) << symbol;
        EXPECT_TRUE(bin.module_for_symbol(symbol).has_value()) << symbol;
    }
    size_t builtin = 0;
    for (const std::string& line : lines_of(tree_->read("modules.builtin"))) {
        std::string name = index::modname_from_path(line);
        EXPECT_TRUE(bin.is_builtin(name)) << name;
        EXPECT_TRUE(text.is_builtin(name)) << name;
        ++builtin;
    }
    EXPECT_GT(builtin, 10U);
}

TEST_F(RealTree, LookupsAreCheap)
{
    ModuleDatabase db = open_database(tree_->module_dir());
    std::vector<std::string> names;
    for (const std::string& line : lines_of(tree_->read("modules.dep")))
        names.push_back(index::modname_from_path(line.substr(0, line.find(':'))));
    std::vector<std::string> modaliases;
    for (size_t i = 0; i < aliases_.size() && modaliases.size() < names.size(); ++i) {
        if (auto text = instantiate(aliases_[(i * 7919) % aliases_.size()].pattern))
            modaliases.push_back(*text);
    }
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    size_t found = 0;
    for (const std::string& name : names)
        found += db.dependency_line(name) ? 1 : 0;
    auto t1 = Clock::now();
    for (const std::string& alias : modaliases)
        found += db.modules_for_alias(alias).size();
    auto t2 = Clock::now();
    auto us = [](auto d) {
        return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    };
    std::cout << "[          ] " << names.size() << " dependency lines in " << us(t1 - t0)
              << " us, " << modaliases.size() << " alias searches in " << us(t2 - t1) << " us\n";
    EXPECT_GE(found, names.size() + modaliases.size());
    // Generous bounds (sanitizer builds are slower): kmod does the whole load plan of every
    // module in ~40 ms.
    EXPECT_LT(us(t1 - t0), 200000);
    EXPECT_LT(us(t2 - t1), 2000000);
}

} // namespace
} // namespace kmodd::depmod
