// SPDX-License-Identifier: LGPL-2.1-or-later
// The depmod engine against kmod's own depmod on synthetic trees: every output file must be
// byte-identical, and what kmod cannot do (incremental updates, bad input handling,
// all-or-nothing publishing) must hold too.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "depmod/depmod.hpp"
#include "depmod/index_reader.hpp"
#include "depmod/quick_check.hpp"
#include "depmod_runs.hpp"
#include "index/parse_cache.hpp"
#include "thread_limit.hpp"

namespace kmodd::depmod {
namespace {

using namespace testing_support;

TEST(DepmodOracle, OutputsAreByteIdenticalToKmodsOnASyntheticTree)
{
    TempTree tree;
    populate(tree);
    OurRun ours = expect_same_as_kmod(tree, options_for(tree)).ours;
    EXPECT_EQ(ours.files["modules.dep"].substr(0, 34), "kernel/a/mod2.ko: kernel/a/mod1.ko");
}

TEST(DepmodOracle, OutputsMadeOnTwoThreadsAreKmodsAndSayWhatOneThreadSays)
{
    TempTree tree;
    populate(tree);
    auto options = options_for(tree);
    options.parallel_outputs = true;
    expect_same_as_kmod(tree, options);

    // A module name outside 7-bit ASCII is refused by modules.dep.bin, modules.alias.bin and
    // modules.symbols.bin alike (kmod's index is undefined there), and mod1 has an alias with
    // an unmatched bracket: the files made on either thread have something to say, in the
    // order one thread says it.
    tree.add("kernel/c/mod\xc3\xa9.ko", fixture("mod1"));
    OurRun two = run_ours(options);
    options.parallel_outputs = false;
    OurRun one = run_ours(options);
    ASSERT_TRUE(one.ok && two.ok) << join(one.diagnostics) << join(two.diagnostics);
    EXPECT_EQ(two.files, one.files);
    const std::string said = join(two.diagnostics);
    EXPECT_EQ(said, join(one.diagnostics));
    for (const char* file : {"modules.dep.bin", "modules.alias.bin", "modules.symbols.bin"})
        EXPECT_NE(said.find(std::string(file) + ": '"), std::string::npos)
            << file << " said nothing:\n"
            << said;
    EXPECT_NE(said.find("Unmatched bracket in bad]bracket"), std::string::npos) << said;
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

TEST(DepmodBadInput, EachBadFileIsReportedByPath)
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
    // Files that cannot be parsed are listed without dependencies, as kmod lists them; what
    // cannot be followed is not.
    for (const char* line : {"extra/notelf.ko:\n", "extra/truncated.ko:\n", "extra/empty.ko:\n",
                             "extra/badxz.ko.xz:\n"})
        EXPECT_NE(ours.files["modules.dep"].find(line), std::string::npos) << line;
    EXPECT_EQ(ours.files["modules.dep"].find("dangling"), std::string::npos);
}

TEST(DepmodBadInput, WhereNoThreadCanBeStartedARunWritesKmodsOutputsAndItsParseCache)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to set a task limit up";
    TempTree tree;
    populate(tree);
    auto options = options_for(tree);
    const std::string cache_dir = tree.root().string() + "-cache";
    options.parse_cache = parse_cache_path(cache_dir, options);
    options.parallel_outputs = true;
    // The parse (on as many threads as cores), the cache's save (on a thread of its own) and
    // the outputs (on two) are done on the one thread there is.
    const int status = test::run_where_threads_are_refused([&] {
        index::Diagnostics said;
        auto engine = Depmod::create(options, said);
        if (!engine || !(*engine)->scan(said))
            return 1;
        return (*engine)->write(said) ? 0 : 2;
    });
    ASSERT_EQ(status, 0) << "1: the scan failed, 2: the write failed, " << test::kBodyThrew
                         << ": it threw";
    index::Diagnostics said;
    auto engine = Depmod::create(options, said);
    ASSERT_TRUE(engine);
    auto kmod = run_kmod(tree);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    expect_identical(read_outputs((*engine)->output_dir()), kmod.files);

    // The cache was saved whole: an entry for each module.
    auto cache = index::ParseCache::load(options.parse_cache);
    ASSERT_TRUE(cache) << cache.error().message;
    EXPECT_EQ(cache->size(), 8U);
    test::run_shell("rm -rf '" + options.output_dir + "' '" + cache_dir + "'");
}

TEST(DepmodBadInput, FilesThatCannotBeParsedAreListedAsKmodListsThem)
{
    TempTree tree;
    populate(tree);
    tree.write("extra/notelf.ko", "this is not an ELF file\n");
    std::string mod1 = test::slurp(fixture("mod1"));
    tree.write("extra/truncated.ko", mod1.substr(0, mod1.size() / 3));
    tree.write("kernel/a/empty.ko", "");
    tree.write("extra/badxz.ko.xz", std::string("\xFD"
                                                "7zXZ\0garbage",
                                                12));
    // Ahead of the good mod2 by kmod's search order: the bad one wins the name.
    tree.write("updates/mod2.ko", "not ELF either\n");
    auto ours = run_ours(options_for(tree));
    ASSERT_TRUE(ours.ok) << join(ours.diagnostics);
    EXPECT_NE(join(ours.diagnostics)
                  .find("'" + tree.module_dir().string() +
                        "/extra/notelf.ko': not an ELF file; listed without "
                        "dependencies"),
              std::string::npos)
        << join(ours.diagnostics);
    auto kmod = run_kmod(tree);
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

TEST_F(DepmodIncremental, AnOutputThatCannotBeWrittenLeavesEveryFileAsItWasAndNoTempFile)
{
    // Each output is written to its temp file as soon as it is made: one that fails after
    // others were written must still replace none of them.
    const auto before = read_outputs(tree_.module_dir());
    const auto entries = [&] {
        return std::distance(test::fs::directory_iterator(tree_.module_dir()),
                             test::fs::directory_iterator());
    };
    tree_.add("extra/dup_export.ko", fixture("dup_export"));
    const auto entries_before = entries();
    ASSERT_TRUE(
        engine_->update_path((tree_.module_dir() / "extra/dup_export.ko").string(), diagnostics_));
    // The files that change, as kmod writes them: all but the biggest fit under the file size
    // limit, so some are written to their temp files before the biggest fails (EFBIG).
    auto kmod = run_kmod(tree_);
    ASSERT_EQ(kmod.status, 0) << kmod.output;
    std::vector<size_t> changed_sizes;
    for (const auto& [name, content] : kmod.files)
        if (before.at(name) != content)
            changed_sizes.push_back(content.size());
    std::sort(changed_sizes.begin(), changed_sizes.end());
    ASSERT_GE(changed_sizes.size(), 3U);
    ASSERT_LT(changed_sizes[changed_sizes.size() - 2], changed_sizes.back());
    const size_t limit = changed_sizes[changed_sizes.size() - 2] + 1;
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    ::sigaction(SIGXFSZ, &ignore, &previous);
    rlimit old_limit{};
    ::getrlimit(RLIMIT_FSIZE, &old_limit);
    rlimit small = old_limit;
    small.rlim_cur = limit;
    ::setrlimit(RLIMIT_FSIZE, &small);
    auto written = engine_->write(diagnostics_);
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    ::sigaction(SIGXFSZ, &previous, nullptr);

    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, EFBIG) << written.error().message;
    EXPECT_EQ(read_outputs(tree_.module_dir()), before);
    EXPECT_EQ(entries(), entries_before) << "a temp file was left behind";
    // The next write, with room again, publishes them all.
    ASSERT_TRUE(engine_->write(diagnostics_));
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
    // The engine keeps no copy of what it wrote: an output of the same size is compared with
    // the file itself, so an edit behind its back is undone.
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

TEST_F(DepmodIncremental, ANewRunKeepsTheOutputsItWouldWriteAgainButDatesModulesDep)
{
    // Another engine (another `depmod` run) over the same tree finds every output current.
    struct stat before {};
    ASSERT_EQ(::stat((tree_.module_dir() / "modules.alias").c_str(), &before), 0);
    const timespec long_ago[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (tree_.module_dir() / "modules.dep").c_str(), long_ago, 0), 0);
    auto options = options_for(tree_);
    options.output_dir.clear();
    auto again = Depmod::create(options, diagnostics_);
    ASSERT_TRUE(again);
    ASSERT_TRUE((*again)->scan(diagnostics_));
    auto stats = (*again)->write(diagnostics_);
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->files_written, 0U);
    struct stat after {};
    ASSERT_EQ(::stat((tree_.module_dir() / "modules.alias").c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino) << "modules.alias did not change but was replaced";
    // depmod -A compares modules.dep's time with the modules': it must say current.
    EXPECT_TRUE(is_index_up_to_date(tree_.module_dir().string()));
    expect_same_as_full_kmod_run();
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
