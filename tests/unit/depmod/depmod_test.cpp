// SPDX-License-Identifier: LGPL-2.1-or-later
// The depmod engine against kmod's own depmod on synthetic trees: every output file must be
// byte-identical, and what kmod cannot do (incremental updates, bad input handling,
// all-or-nothing publishing) must hold too.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "depmod/depmod.hpp"
#include "depmod/index_reader.hpp"
#include "kmod_oracle.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod {
namespace {

using test::expect_identical;
using test::read_outputs;
using test::TempTree;
using test::fs::path;

const path kFixtures = KMODD_FIXTURE_MODULES;

path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

std::string join(const index::Diagnostics& diagnostics)
{
    std::string out;
    for (const auto& d : diagnostics)
        out += d.message + "\n";
    return out;
}

std::vector<std::string_view> split(std::string_view text)
{
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    return lines;
}

/// kmod's depmod with `options` on a copy of the tree.
test::KmodRun run_kmod(const TempTree& tree, const std::string& options = "-C /dev/null")
{
    return test::run_kmod_depmod(tree.root(), tree.version(), options);
}

struct OurRun {
    bool ok = false;
    index::Diagnostics diagnostics;
    std::map<std::string, std::string> files;
};

DepmodOptions options_for(const TempTree& tree, std::vector<std::string> config = {"/dev/null"})
{
    DepmodOptions options;
    options.base_dir = tree.root().string();
    options.kernel_version = tree.version();
    options.format = KmodFormat{test::oracle_kmod_version()};
    options.config_paths = std::move(config);
    options.output_dir = tree.root().string() + "-ours";
    options.durable = false;
    return options;
}

OurRun run_ours(const DepmodOptions& options)
{
    OurRun run;
    auto engine = Depmod::create(options, run.diagnostics);
    if (!engine)
        return run;
    if (!(*engine)->scan(run.diagnostics))
        return run;
    run.ok = (*engine)->write(run.diagnostics).has_value();
    run.files = test::read_outputs((*engine)->output_dir());
    test::run_shell("rm -rf '" + options.output_dir + "'");
    return run;
}

/// kmod's depmod (with `kmod_options`) and ours (with `options`) on `tree`: both must succeed
/// and write the same bytes to every file. Both runs are returned for further checks.
struct BothRuns {
    test::KmodRun kmod;
    OurRun ours;
};

BothRuns expect_same_as_kmod(const TempTree& tree, const DepmodOptions& options,
                             const std::string& kmod_options = "-C /dev/null")
{
    BothRuns runs{run_kmod(tree, kmod_options), run_ours(options)};
    EXPECT_EQ(runs.kmod.status, 0) << runs.kmod.output;
    EXPECT_TRUE(runs.ours.ok) << join(runs.ours.diagnostics);
    expect_identical(runs.ours.files, runs.kmod.files);
    return runs;
}

/// The "needs unknown symbol" lines of `text`, from the module dir on (kmod runs on a copy
/// of the tree).
std::string unknown_symbol_lines(const std::string& text, const TempTree& tree)
{
    std::string out;
    for (std::string_view line : split(text)) {
        size_t at = line.find("/lib/modules/" + tree.version() + "/");
        if (line.find("needs unknown symbol") != std::string_view::npos &&
            at != std::string_view::npos)
            out += std::string(line.substr(at)) + "\n";
    }
    return out;
}

/// The seed's tree and more: nested dirs, a dashed name, CRC exports, __versions, device
/// nodes, a weak import, modules.order naming a few modules.
void populate(const TempTree& tree)
{
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    tree.add("kernel/a/mod2.ko", fixture("mod2"));
    tree.add("kernel/b/mod3.ko", fixture("mod3"));
    tree.add("kernel/a/mod-dash.ko", fixture("mod_dash"));
    tree.add("kernel/crc_helper.ko", fixture("crc_helper"));
    tree.add("kernel/versioned.ko", fixture("versioned"));
    tree.add("kernel/drivers/blockdev.ko", fixture("blockdev"));
    tree.add("kernel/drivers/devname_only.ko", fixture("devname_only"));
    tree.write("modules.order", "kernel/a/mod2.ko\nkernel/a/mod-dash.ko\nkernel/none.ko\n"
                                "kernel/versioned.ko\n");
}

TEST(DepmodOracle, OutputsAreByteIdenticalToKmodsOnASyntheticTree)
{
    TempTree tree;
    populate(tree);
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_EQ(ours.files["modules.dep"].substr(0, 34), "kernel/a/mod2.ko: kernel/a/mod1.ko");
}

TEST(DepmodOracle, WithoutModulesOrderTheHashOrderMatchesKmods)
{
    TempTree tree;
    populate(tree);
    test::fs::remove(tree.module_dir() / "modules.order");
    for (const char* name : {"a1", "b2", "c3", "zz", "mod_x", "long_module_name_for_hash"})
        tree.add(std::string("kernel/more/") + name + ".ko", fixture("devname_only"));
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_NE(join(ours.diagnostics).find("could not open modules.order"), std::string::npos);
}

TEST(DepmodOracle, BuiltinIndexesMatchKmods)
{
    TempTree tree;
    populate(tree);
    tree.write("modules.builtin", "kernel/fs/ext4.ko\nkernel/crypto/crc32c-generic.ko\n"
                                  "9invalid.ko\nkernel/lib/zlib_inflate.ko\n");
    std::string modinfo;
    for (const char* record :
         {"ext4.alias=fs-ext4", "ext4.license=GPL", "ext4.alias=fs-ext3",
          "crc32c_generic.alias=crypto-crc32c", "crc32c_generic.alias=crc32c-generic",
          "zlib_inflate.description=x", "noequals", "bad.alias=[unclosed",
          "x.alias=", "pci.alias=pci:v*d*sv*sd*bc0Csc03i30*"}) {
        modinfo += record;
        modinfo += '\0';
    }
    tree.write("modules.builtin.modinfo", modinfo);
    expect_same_as_kmod(tree, options_for(tree));
}

TEST(DepmodOracle, MissingBuiltinFilesGiveEmptyIndexesLikeKmod)
{
    TempTree tree;
    populate(tree);
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_TRUE(ours.files["modules.builtin.bin"].empty());
}

TEST(DepmodOracle, CompressedModulesAreReadAndKeepTheirSuffix)
{
    TempTree tree;
    populate(tree);
    std::string dir = tree.module_dir().string();
    ASSERT_EQ(test::run_shell("xz --check=crc32 '" + dir + "/kernel/a/mod1.ko' && zstd -q --rm '" +
                              dir + "/kernel/a/mod2.ko' && xz '" + dir + "/kernel/versioned.ko'"),
              0);
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_NE(ours.files["modules.dep"].find("kernel/a/mod2.ko.zst: kernel/a/mod1.ko.xz"),
              std::string::npos);
}

TEST(DepmodOracle, UpdatesDirectoryWinsOverKernelByDefault)
{
    TempTree tree;
    populate(tree);
    tree.add("updates/mod1.ko", fixture("mod1"));
    tree.add("updates/sub/mod3.ko", fixture("mod3"));
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_NE(ours.files["modules.dep"].find("kernel/a/mod2.ko: updates/mod1.ko"),
              std::string::npos);
}

TEST(DepmodOracle, DepmodDirectivesSearchOverrideExcludeAndExternalAreHonoured)
{
    TempTree tree;
    populate(tree);
    tree.add("extra/mod1.ko", fixture("mod1"));
    tree.add("updates/mod1.ko", fixture("mod1"));
    tree.add("extra/mod2.ko", fixture("mod2"));
    tree.add("vendor/mod3.ko", fixture("mod3"));
    tree.add("kernel/skipme/blockdev.ko", fixture("blockdev"));
    tree.add("/opt/ext/crc_helper.ko", fixture("crc_helper"));
    std::string conf = tree.root().string() + "/depmod.conf";
    std::string ext = tree.root().string() + "/opt/ext";
    test::fs::create_directories(ext);
    test::fs::copy_file(fixture("crc_helper"), ext + "/crc_helper.ko",
                        test::fs::copy_options::overwrite_existing);
    tree.write("/depmod.conf", "# comment\nsearch extra updates built-in external\n"
                               "override mod3 * vendor\noverride mod2 ^9\\.9 extra\n"
                               "exclude skipme\nexternal * " +
                                   ext +
                                   "\n"
                                   "external 0\\.1 /nonexistent\nbogus line\n");
    OurRun ours = expect_same_as_kmod(tree, options_for(tree, {conf}), "-C " + conf).ours;
    EXPECT_NE(ours.files["modules.dep"].find("extra/mod1.ko:"), std::string::npos);
    EXPECT_NE(ours.files["modules.dep"].find("vendor/mod3.ko: extra/mod1.ko"), std::string::npos);
    EXPECT_NE(join(ours.diagnostics).find("ignoring bad line starting with 'bogus'"),
              std::string::npos);
}

TEST(DepmodOracle, TheLaterModuleOwnsASymbolExportedTwice)
{
    TempTree tree;
    populate(tree);
    tree.add("kernel/z/dup_export.ko", fixture("dup_export"));
    tree.write("modules.order", "kernel/z/dup_export.ko\nkernel/a/mod2.ko\nkernel/a/mod-dash.ko\n");
    expect_same_as_kmod(tree, options_for(tree));
}

TEST(DepmodOracle, SymlinkedModulesAreFollowedAndListedUnderTheLinkPath)
{
    TempTree tree;
    populate(tree);
    std::string build = tree.root().string() + "/home/dev/build";
    test::fs::create_directories(build);
    std::string other = tree.root().string() + "/home/dev/other";
    test::fs::create_directories(other);
    test::fs::copy_file(fixture("dup_export"), build + "/mydrv.ko");
    test::fs::copy_file(fixture("mod3"), other + "/other.ko");
    tree.link("extra/mydrv.ko", build + "/mydrv.ko");
    tree.link("extra/linked-dir", other);
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_NE(ours.files["modules.dep"].find("extra/mydrv.ko:"), std::string::npos);
    EXPECT_NE(ours.files["modules.dep"].find("extra/linked-dir/other.ko: kernel/a/mod1.ko"),
              std::string::npos);
}

TEST(DepmodOracle, SymversCrcMismatchesAndUnknownSymbolsAreReportedLikeKmod)
{
    TempTree tree;
    populate(tree);
    tree.write("/Module.symvers", "0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\n"
                                  "0x00000002\tother\tdrivers/x\tEXPORT_SYMBOL\n"
                                  "0xZZ\tbad\tvmlinux\tEXPORT_SYMBOL\n");
    tree.add("kernel/unknown/mod3.ko", fixture("mod3"));
    std::string symvers = tree.root().string() + "/Module.symvers";
    auto options = options_for(tree);
    options.module_symvers = symvers;
    options.print_unknown = true;
    auto [kmod, ours] = expect_same_as_kmod(tree, options, "-C /dev/null -e -E " + symvers);
    std::string said = join(ours.diagnostics);
    EXPECT_NE(said.find("versioned.ko disagrees about version of symbol printk"), std::string::npos)
        << said;
    EXPECT_NE(kmod.output.find("versioned.ko disagrees about version of symbol printk"),
              std::string::npos)
        << kmod.output;
    EXPECT_EQ(said.find("maybe_there"), std::string::npos) << "weak symbols are never unknown";
}

TEST(DepmodOracle, SystemMapUnknownSymbolsAreReportedLikeKmod)
{
    TempTree tree;
    populate(tree);
    tree.write("/System.map", "ffffffff81000000 T _stext\n"
                              "ffffffff82000000 r __ksymtab_kmalloc\n"
                              "malformed\n");
    std::string map = tree.root().string() + "/System.map";
    auto options = options_for(tree);
    options.system_map = map;
    options.print_unknown = true;
    auto [kmod, ours] = expect_same_as_kmod(tree, options, "-C /dev/null -e -F " + map);
    // Every "needs unknown symbol" line kmod printed, we said too, in the same order.
    std::string said = join(ours.diagnostics);
    EXPECT_EQ(unknown_symbol_lines(said, tree), unknown_symbol_lines(kmod.output, tree))
        << said << "\n---\n"
        << kmod.output;
    EXPECT_NE(said.find("versioned.ko needs unknown symbol printk"), std::string::npos) << said;
    EXPECT_NE(said.find("System.map:3: invalid line: malformed"), std::string::npos) << said;
}

TEST(DepmodOracle, UnknownSymbolsAreNamedAsTheModuleSpellsThemWhenAPrefixIsCut)
{
    // With -P p, "printk" is looked up as "rintk" but reported as the module spells it.
    TempTree tree;
    populate(tree);
    tree.write("/System.map", "ffffffff81000000 T _stext\n");
    std::string map = tree.root().string() + "/System.map";
    auto options = options_for(tree);
    options.system_map = map;
    options.print_unknown = true;
    options.symbol_prefix = 'p';
    auto [kmod, ours] = expect_same_as_kmod(tree, options, "-C /dev/null -e -P p -F " + map);
    std::string said = join(ours.diagnostics);
    EXPECT_EQ(unknown_symbol_lines(said, tree), unknown_symbol_lines(kmod.output, tree))
        << said << "\n---\n"
        << kmod.output;
    EXPECT_NE(said.find("versioned.ko needs unknown symbol printk"), std::string::npos) << said;
}

TEST(DepmodCycles, ACycleIsReportedWholeAndNothingIsWritten)
{
    TempTree tree;
    populate(tree);
    tree.add("kernel/cycle/cycle_a.ko", fixture("cycle_a"));
    tree.add("kernel/cycle/cycle_b.ko", fixture("cycle_b"));
    tree.add("kernel/cycle/cycle_c.ko", fixture("cycle_c"));
    auto options = options_for(tree);
    options.output_dir.clear();
    tree.write("modules.dep", "previous\n");
    OurRun ours = run_ours(options);
    EXPECT_FALSE(ours.ok);
    std::string said = join(ours.diagnostics);
    EXPECT_NE(said.find("Cycle detected: cycle_a -> cycle_b -> cycle_c -> cycle_a"),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("Found 3 modules in dependency cycles!"), std::string::npos) << said;
    EXPECT_EQ(tree.read("modules.dep"), "previous\n");
    EXPECT_FALSE(test::fs::exists(tree.module_dir() / "modules.alias"));
    auto kmod = run_kmod(tree);
    EXPECT_NE(kmod.status, 0);
}

/// The lines of `text` that report cycles, without kmod's "depmod: ERROR: " prefix.
std::vector<std::string> cycle_lines(const std::string& text)
{
    std::vector<std::string> lines;
    for (std::string_view line : split(text)) {
        size_t at = line.find("Cycle detected: ");
        if (at == std::string_view::npos)
            at = line.find("Found ");
        if (at != std::string_view::npos && line.find("cycles!") != std::string_view::npos)
            lines.emplace_back(line.substr(at));
        else if (at != std::string_view::npos && line.substr(at).starts_with("Cycle"))
            lines.emplace_back(line.substr(at));
    }
    return lines;
}

/// Compiles a module to <module dir>/`rel` that exports `exported` and calls every symbol of
/// `imported`, as the fixtures are built (gcc -c, no kernel headers). False if gcc fails.
bool compile_module(const TempTree& tree, const std::string& rel, const std::string& exported,
                    const std::vector<std::string>& imported)
{
    std::string code = "__attribute__((section(\"__ksymtab_strings\"), used, aligned(1))) "
                       "static const char ks[] = \"" +
                       exported + "\";\n";
    std::string body;
    for (const std::string& symbol : imported) {
        code += "extern void " + symbol + "(void);\n";
        body += symbol + "(); ";
    }
    code += "void " + exported + "(void) { " + body + "}\n";
    const path ko = tree.module_dir() / rel;
    const path c_file = ko.string() + ".c";
    test::fs::create_directories(ko.parent_path());
    std::ofstream(c_file) << code;
    bool ok = test::run_shell("cc -c -O1 -fno-asynchronous-unwind-tables -o '" + ko.string() +
                              "' '" + c_file.string() + "'") == 0;
    test::fs::remove(c_file);
    return ok;
}

TEST(DepmodCycles, CyclesSharingModulesAreReportedAsKmodReportsThem)
{
    // kmod's own test case (testsuite/test-depmod detect-loop): d <-> e, a -> b -> c -> a (with
    // f and g below a and b), and h, i, j, k holding two cycles, i -> j -> k -> h -> i and
    // i -> j -> h -> i. kmod reports every path back to the module its search started from.
    TempTree tree;
    const std::map<char, std::string> imports = {{'a', "BFG"}, {'b', "CFG"}, {'c', "A"}, {'d', "E"},
                                                 {'e', "D"},   {'f', ""},    {'g', ""},  {'h', "I"},
                                                 {'i', "J"},   {'j', "HK"},  {'k', "H"}};
    for (const auto& [name, needs] : imports) {
        std::vector<std::string> imported;
        for (char need : needs)
            imported.push_back(std::string("print") + need);
        const std::string upper(1, static_cast<char>(name - 'a' + 'A'));
        ASSERT_TRUE(compile_module(tree, std::string("kernel/loop/mod-loop-") + name + ".ko",
                                   "print" + upper, imported));
    }

    auto kmod = run_kmod(tree);
    EXPECT_NE(kmod.status, 0);
    auto options = options_for(tree);
    OurRun ours = run_ours(options);
    EXPECT_FALSE(ours.ok);
    const std::string said = join(ours.diagnostics);
    const std::vector<std::string> expected = cycle_lines(kmod.output);
    ASSERT_EQ(expected.size(), 5U) << "kmod reports four cycles and a count:\n" << kmod.output;
    EXPECT_EQ(cycle_lines(said), expected) << said << "\n---\n" << kmod.output;
    EXPECT_EQ(said.find("modules.builtin"), std::string::npos)
        << "kmod stops before it reads the builtin files:\n"
        << said;
}

TEST(DepmodCycles, AModuleBetweenTwoCyclesEndsTheSearch)
{
    // a <-> b use r, and r uses c <-> d: walking from r circles c and d without ever coming
    // back to r. kmod's search would not end; ours then follows only what leads back to each
    // root and is not on the path yet, and reports every cycle (e -> f -> e is left out as kmod
    // leaves it: e and f are on the path reported from s).
    TempTree tree;
    // e <-> f beside the cycle through s (s -> e -> f -> s): from s, e and f circle.
    const std::map<std::string, std::string> imports = {{"r", "c"}, {"a", "br"}, {"b", "a"},
                                                        {"c", "d"}, {"d", "c"},  {"s", "e"},
                                                        {"e", "f"}, {"f", "es"}};
    std::string order;
    for (const char* name : {"r", "c", "d", "a", "b", "s", "e", "f"}) {
        std::vector<std::string> imported;
        for (char need : imports.at(name))
            imported.push_back(std::string("fn_") + need);
        ASSERT_TRUE(compile_module(tree, "kernel/" + std::string(name) + ".ko",
                                   "fn_" + std::string(name), imported));
        order += "kernel/" + std::string(name) + ".ko\n";
    }
    tree.write("modules.order", order);
    OurRun ours = run_ours(options_for(tree));
    EXPECT_FALSE(ours.ok);
    const std::string said = join(ours.diagnostics);
    EXPECT_NE(said.find("Cycle detected: c -> d -> c"), std::string::npos) << said;
    EXPECT_NE(said.find("Cycle detected: a -> b -> a"), std::string::npos) << said;
    EXPECT_NE(said.find("Cycle detected: s -> e -> f -> s"), std::string::npos) << said;
    EXPECT_NE(said.find("Found 7 modules in dependency cycles!"), std::string::npos) << said;
}

TEST(DepmodBadInput, EachBadFileIsReportedByPathAndTheRestIsIndexed)
{
    TempTree tree;
    populate(tree);
    std::string dir = tree.module_dir().string();
    tree.link("extra/dangling.ko", "/nonexistent/dangling.ko");
    tree.link("extra/self.ko", "self.ko");               // ln -s self.ko from the wrong cwd
    tree.link("extra/relative.ko", "build/relative.ko"); // relative target that is not there
    tree.link("extra/loop", "..");                       // a directory containing itself
    tree.write("extra/notelf.ko", "this is not an ELF file\n");
    std::string mod1 = test::slurp(fixture("mod1"));
    tree.write("extra/truncated.ko", mod1.substr(0, mod1.size() / 3));
    tree.write("extra/empty.ko", "");
    tree.write("extra/badxz.ko.xz", std::string("\xFD"
                                                "7zXZ\0garbage",
                                                12));

    auto ours = run_ours(options_for(tree));
    ASSERT_TRUE(ours.ok) << join(ours.diagnostics);
    std::string said = join(ours.diagnostics);
    for (const char* name : {"dangling.ko", "self.ko", "relative.ko", "notelf.ko", "truncated.ko",
                             "empty.ko", "badxz.ko.xz", "extra/loop"}) {
        EXPECT_NE(said.find(name), std::string::npos) << name << " not reported:\n" << said;
    }
    EXPECT_NE(said.find("dangling symlink to '/nonexistent/dangling.ko'"), std::string::npos)
        << said;
    EXPECT_NE(said.find("relative target"), std::string::npos) << said;
    EXPECT_EQ(ours.files["modules.dep"].find("extra/"), std::string::npos)
        << "a bad file made it into modules.dep";

    // The good modules are indexed exactly as in a tree without the bad files.
    TempTree clean;
    populate(clean);
    auto kmod = run_kmod(clean);
    expect_identical(ours.files, kmod.files);
}

TEST(DepmodInMemory, TheEnginesOutputsAnswerLookupsLikeTheFilesOnDisk)
{
    TempTree tree;
    populate(tree);
    auto options = options_for(tree);
    options.output_dir.clear();
    index::Diagnostics diagnostics;
    auto engine = Depmod::create(options, diagnostics);
    ASSERT_TRUE(engine);
    ASSERT_TRUE((*engine)->scan(diagnostics));
    auto outputs = (*engine)->generate(diagnostics);
    ASSERT_TRUE(outputs);
    ASSERT_TRUE((*engine)->write(diagnostics));

    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& file : *outputs)
        files.emplace_back(file.name, file.content);
    auto in_memory = ModuleDatabase::from_files(tree.module_dir().string(), files);
    auto on_disk = ModuleDatabase::open(tree.module_dir().string());
    ASSERT_TRUE(in_memory) << in_memory.error().message;
    ASSERT_TRUE(on_disk) << on_disk.error().message;
    for (const char* name : {"mod1", "mod2", "mod_dash", "versioned", "nope"})
        EXPECT_EQ(in_memory->dependency_line(name), on_disk->dependency_line(name)) << name;
    EXPECT_EQ(in_memory->dependency_line("mod2"), "kernel/a/mod2.ko: kernel/a/mod1.ko");
    for (const char* alias : {"mod1-alias", "pci:v00001234d00005678sv1sd2bc02sc00i00", "foo_x"})
        EXPECT_EQ(in_memory->modules_for_alias(alias), on_disk->modules_for_alias(alias)) << alias;
    EXPECT_EQ(in_memory->modules_for_alias("pci:v00001234d00005678sv1sd2bc02sc00i00"),
              std::vector<std::string>{"mod1"});
    EXPECT_EQ(in_memory->module_for_symbol("crc_helper_fn"),
              std::optional<std::string>("crc_helper"));
    EXPECT_EQ(on_disk->module_for_symbol("crc_helper_fn"),
              std::optional<std::string>("crc_helper"));
}

class DepmodIncremental : public ::testing::Test {
protected:
    void SetUp() override
    {
        populate(tree_);
        auto options = options_for(tree_);
        options.output_dir.clear();
        auto engine = Depmod::create(options, diagnostics_);
        ASSERT_TRUE(engine);
        engine_ = std::move(*engine);
        ASSERT_TRUE(engine_->scan(diagnostics_));
        ASSERT_TRUE(engine_->write(diagnostics_));
    }

    /// Our incremental outputs must equal kmod's full run on the tree as it is now.
    void expect_same_as_full_kmod_run()
    {
        auto kmod = run_kmod(tree_);
        ASSERT_EQ(kmod.status, 0) << kmod.output;
        expect_identical(read_outputs(tree_.module_dir()), kmod.files);
    }

    TempTree tree_;
    index::Diagnostics diagnostics_;
    std::unique_ptr<Depmod> engine_;
};

TEST_F(DepmodIncremental, ANewModuleIsIndexedByParsingOnlyThatFile)
{
    tree_.add("extra/dup_export.ko", fixture("dup_export"));
    EXPECT_TRUE(
        engine_->update_path((tree_.module_dir() / "extra/dup_export.ko").string(), diagnostics_));
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_parsed, 1U);
    expect_same_as_full_kmod_run();
}

TEST_F(DepmodIncremental, AVanishedModuleIsDropped)
{
    test::fs::remove(tree_.module_dir() / "kernel/a/mod2.ko");
    engine_->update_path((tree_.module_dir() / "kernel/a/mod2.ko").string(), diagnostics_);
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_parsed, 0U);
    EXPECT_EQ(tree_.read("modules.dep").find("mod2.ko"), std::string::npos);
    expect_same_as_full_kmod_run();
}

TEST_F(DepmodIncremental, ARebuiltSymlinkTargetIsParsedAgain)
{
    std::string build = tree_.root().string() + "/home/dev";
    test::fs::create_directories(build);
    test::fs::copy_file(fixture("devname_only"), build + "/mydrv.ko");
    tree_.link("extra/mydrv.ko", build + "/mydrv.ko");
    engine_->update_path((tree_.module_dir() / "extra/mydrv.ko").string(), diagnostics_);
    ASSERT_TRUE(engine_->write(diagnostics_));
    EXPECT_EQ(tree_.read("modules.dep").find("extra/mydrv.ko: kernel/a/mod1.ko"),
              std::string::npos);

    // The developer rebuilds: the link stays, the file behind it now needs mod1.
    test::fs::remove(build + "/mydrv.ko");
    test::fs::copy_file(fixture("mod3"), build + "/mydrv.ko");
    engine_->update_path((tree_.module_dir() / "extra/mydrv.ko").string(), diagnostics_);
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_parsed, 1U);
    EXPECT_NE(tree_.read("modules.dep").find("extra/mydrv.ko: kernel/a/mod1.ko"),
              std::string::npos);
    expect_same_as_full_kmod_run();
}

TEST_F(DepmodIncremental, ANewDirectoryOfModulesIsWalked)
{
    tree_.add("extra/new/one.ko", fixture("dup_export"));
    tree_.add("extra/new/deeper/two.ko", fixture("mod_dash"));
    engine_->update_path((tree_.module_dir() / "extra").string(), diagnostics_);
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_parsed, 2U);
    expect_same_as_full_kmod_run();
}

TEST_F(DepmodIncremental, UnchangedOutputsAreNotRewritten)
{
    struct stat before {};
    ASSERT_EQ(::stat((tree_.module_dir() / "modules.softdep").c_str(), &before), 0);
    tree_.add("extra/dup_export.ko", fixture("dup_export"));
    engine_->update_path((tree_.module_dir() / "extra/dup_export.ko").string(), diagnostics_);
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_LT(stats->files_written, 10U);
    struct stat after {};
    ASSERT_EQ(::stat((tree_.module_dir() / "modules.softdep").c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "modules.softdep did not change but was replaced";
}

TEST_F(DepmodIncremental, AnOutputChangedOnDiskIsWrittenAgainEvenWhenTheIndexIsNot)
{
    // The engine keeps only the sizes of what it wrote: an output of the same size is
    // compared with the file itself, so an edit behind its back is undone.
    std::string dep = tree_.read("modules.dep");
    ASSERT_FALSE(dep.empty());
    std::string edited = dep;
    edited[0] = edited[0] == 'x' ? 'y' : 'x';
    tree_.write("modules.dep", edited);
    auto stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_written, 1U);
    EXPECT_EQ(tree_.read("modules.dep"), dep);

    stats = engine_->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_written, 0U) << "nothing changed, nothing is replaced";
}

TEST_F(DepmodIncremental, ModulesOrderChangesReorderTheOutputs)
{
    tree_.write("modules.order", "kernel/versioned.ko\nkernel/b/mod3.ko\n");
    engine_->update_path((tree_.module_dir() / "modules.order").string(), diagnostics_);
    ASSERT_TRUE(engine_->write(diagnostics_));
    expect_same_as_full_kmod_run();
}

} // namespace
} // namespace kmodd::depmod
