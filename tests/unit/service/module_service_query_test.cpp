// SPDX-License-Identifier: LGPL-2.1-or-later
// The daemon's reading requests: the load plan beside kmod's `modprobe -D`, modinfo, lsmod
// with origins, reads that do not wait for a load, and the index snapshot itself.
#include "module_service_fixture.hpp"

namespace kmodd::service {
namespace {

using namespace test_support;
using namespace std::chrono_literals;

TEST_F(ModuleServiceTest, ListDepsIsThePlanInLoadOrderWhateverIsLoaded)
{
    auto deps = service_->list_deps(*snapshot_, "mod-dash");
    ASSERT_TRUE(deps) << describe(deps);
    EXPECT_EQ(*deps, (Names{"mod1", "mod2", "mod_dash"}));
    ASSERT_TRUE(load("mod1"));
    deps = service_->list_deps(*snapshot_, "mod2");
    ASSERT_TRUE(deps) << describe(deps);
    EXPECT_EQ(*deps, (Names{"mod1", "mod2"}));
    deps = service_->list_deps(*snapshot_, "ext4");
    ASSERT_TRUE(deps) << describe(deps);
    EXPECT_EQ(*deps, Names{"ext4"});
}

TEST_F(ModuleServiceTest, ListDepsNamesWhatKmodsModprobeShowDependsPrints)
{
    if (::access(kKmodModprobe, X_OK) != 0)
        GTEST_SKIP() << kKmodModprobe << " is not installed";
    ASSERT_NO_FATAL_FAILURE(add_softdep_modules());
    // kmod reads /proc/cmdline too; the snapshot does the same so both see one configuration.
    auto snapshot = open_snapshot({"/dev/null"}, "/proc/cmdline");
    ASSERT_NE(snapshot, nullptr);
    for (const char* request : {"mod2", "mod1", "mod3", "mod-dash", "mod2-alias", "crc-helper",
                                "crypto-crc-helper", "symbol:mod1_fn", "ext4", "fs-ext4"}) {
        std::string output;
        int status = test::run_shell(std::string(kKmodModprobe) + " -C /dev/null -d '" +
                                         tree_.root().string() + "' -S " + tree_.version() +
                                         " -D " + request,
                                     &output);
        ASSERT_EQ(status, 0) << request << ": " << output;
        Names kmod = modprobe_show_depends_names(output);
        ASSERT_FALSE(kmod.empty()) << request << ": " << output;
        auto ours = service_->list_deps(*snapshot, request);
        ASSERT_TRUE(ours) << request << ": " << describe(ours);
        EXPECT_EQ(*ours, kmod) << request << "; kmod printed:\n" << output;
    }
}

TEST_F(ModuleServiceTest, ModuleInfoShowsTheFixturesModinfo)
{
    auto info = service_->module_info(*snapshot_, "mod1");
    ASSERT_TRUE(info) << describe(info);
    EXPECT_EQ(info->name, "mod1");
    EXPECT_EQ(info->path, (tree_.module_dir() / "kernel/a/mod1.ko").string());
    EXPECT_FALSE(info->builtin);
    EXPECT_EQ(info->license, "GPL");
    Names aliases = info->aliases;
    std::sort(aliases.begin(), aliases.end());
    EXPECT_EQ(aliases, (Names{"bad]bracket", "foo[ab-c]-x", "mod1-alias",
                              "pci:v00001234d*sv*sd*bc02sc00i*"}));
    // In section order, as kmod's modinfo prints them (gcc places mod1's separate arrays
    // in an order of its own, so the order is not the source's).
    if (::access(kKmodModinfo, X_OK) == 0) {
        std::string output;
        ASSERT_EQ(
            test::run_shell(std::string(kKmodModinfo) + " -F alias '" + info->path + "'", &output),
            0)
            << output;
        Names kmod;
        std::istringstream lines(output);
        for (std::string line; std::getline(lines, line);)
            kmod.push_back(line);
        EXPECT_EQ(info->aliases, kmod);
    }
    EXPECT_EQ(info->softdeps, Names{"pre: mod3 post: crc-helper"});
    ASSERT_EQ(info->parameters.size(), 1U);
    EXPECT_EQ(info->parameters[0].name, "debug");
    EXPECT_EQ(info->parameters[0].description, "int") << "mod1 writes parm=debug:int";
    EXPECT_EQ(info->parameters[0].type, "");
    EXPECT_TRUE(info->depends.empty());
    EXPECT_TRUE(info->version.empty());
    EXPECT_FALSE(info->intree);

    auto mod2 = service_->module_info(*snapshot_, "mod2-alias");
    ASSERT_TRUE(mod2) << describe(mod2);
    EXPECT_EQ(mod2->name, "mod2");
    EXPECT_EQ(mod2->depends, Names{"mod1"});
    EXPECT_EQ(mod2->aliases, Names{"mod2-alias"});

    auto dash = service_->module_info(*snapshot_, "mod-dash");
    ASSERT_TRUE(dash) << describe(dash);
    EXPECT_EQ(dash->name, "mod_dash");
    EXPECT_EQ(dash->path, (tree_.module_dir() / "kernel/a/mod-dash.ko").string());
    EXPECT_EQ(dash->aliases.size(), 3U);
}

TEST_F(ModuleServiceTest, ModuleInfoOfABuiltinModuleComesFromModulesBuiltinModinfo)
{
    auto info = service_->module_info(*snapshot_, "ext4");
    ASSERT_TRUE(info) << describe(info);
    EXPECT_EQ(info->name, "ext4");
    EXPECT_TRUE(info->builtin);
    EXPECT_TRUE(info->path.empty());
    EXPECT_EQ(info->description, "Fourth Extended Filesystem");
    EXPECT_EQ(info->authors, (Names{"Remy Card", "Theodore Ts'o"}));
    EXPECT_EQ(info->license, "GPL") << "not other's MIT";
    EXPECT_EQ(info->aliases, (Names{"fs-ext4", "ext3"}));
    ASSERT_EQ(info->parameters.size(), 1U);
    EXPECT_EQ(info->parameters[0].name, "debug");
    EXPECT_EQ(info->parameters[0].type, "int");
    EXPECT_EQ(info->parameters[0].description, "Debug level");
}

TEST_F(ModuleServiceTest, ModuleInfoOfAnUnreadableFileFailsNamingThePath)
{
    tree_.write("kernel/a/mod2.ko", "garbage");
    auto info = service_->module_info(*snapshot_, "mod2");
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().kind, Failure::Failed);
    EXPECT_NE(info.error().message.find("kernel/a/mod2.ko"), std::string::npos)
        << info.error().message;
}

TEST_F(ModuleServiceTest, AModuleKmoddDidNotLoadIsExternalAndStays)
{
    auto inserted = kernel_->insert_module((tree_.module_dir() / "kernel/a/mod1.ko").string(), "");
    ASSERT_TRUE(inserted) << inserted.error().message;
    EXPECT_EQ(origin_of("mod1"), loader::Origin::External);

    auto loaded = load("mod2");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, Names{"mod2"});
    EXPECT_EQ(origin_of("mod1"), loader::Origin::External);
    EXPECT_EQ(origin_of("mod2"), loader::Origin::Explicit);

    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, Names{"mod2"});
    EXPECT_EQ(loaded_names(), Names{"mod1"});
}

TEST_F(ModuleServiceTest, OriginsComeBackFromTheStateStoreAndStaleRecordsAreIgnored)
{
    ASSERT_TRUE(load("mod-dash"));
    ASSERT_NO_FATAL_FAILURE(open_service());
    EXPECT_EQ(origin_of("mod_dash"), loader::Origin::Explicit);
    EXPECT_EQ(origin_of("mod2"), loader::Origin::Dependency);
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Dependency);

    // Removed behind kmodd's back: the records stay, the list shows what the kernel has.
    ASSERT_TRUE(kernel_->remove_module("mod_dash"));
    ASSERT_TRUE(kernel_->remove_module("mod2"));
    EXPECT_EQ(store_->records().size(), 3U);
    EXPECT_EQ(loaded_names(), Names{"mod1"});
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Dependency);
}

TEST_F(ModuleServiceTest, WithoutAStateStoreEveryModuleIsExternal)
{
    ModuleService service(*kernel_, nullptr);
    auto loaded = service.load(*snapshot_, "mod2", "");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, (Names{"mod1", "mod2"}));
    auto listed = service.list_loaded();
    ASSERT_TRUE(listed) << describe(listed);
    ASSERT_EQ(listed->size(), 2U);
    for (const LoadedEntry& entry : *listed)
        EXPECT_EQ(entry.origin, loader::Origin::External) << entry.name;
    auto removed = service.unload(*snapshot_, "mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, (Names{"mod2", "mod1"})) << "as modprobe -r: unused dependencies go";
}

TEST_F(ModuleServiceTest, ReadingRequestsDoNotWaitForALoadInProgress)
{
    GatedKernel gated(*kernel_);
    ModuleService service(gated, store_.get());
    RequestResult<Names> loaded = Names{};
    std::thread loading([&] { loaded = service.load(*snapshot_, "mod2", ""); });
    // load() now holds its lock and waits inside the kernel's insert_module.
    gated.wait_until_inserting();

    auto listed = std::async(std::launch::async, [&] { return service.list_loaded(); });
    auto deps =
        std::async(std::launch::async, [&] { return service.list_deps(*snapshot_, "mod2"); });
    auto info =
        std::async(std::launch::async, [&] { return service.module_info(*snapshot_, "mod1"); });
    // A generous bound, so that a request blocked on the load fails the test instead of
    // hanging it; the requests themselves take microseconds.
    const bool listed_returned = listed.wait_for(30s) == std::future_status::ready;
    const bool deps_returned = deps.wait_for(30s) == std::future_status::ready;
    const bool info_returned = info.wait_for(30s) == std::future_status::ready;
    gated.release();
    loading.join();

    EXPECT_TRUE(listed_returned) << "list_loaded() waited for the load";
    EXPECT_TRUE(deps_returned) << "list_deps() waited for the load";
    EXPECT_TRUE(info_returned) << "module_info() waited for the load";
    auto listed_result = listed.get();
    ASSERT_TRUE(listed_result) << describe(listed_result);
    EXPECT_TRUE(listed_result->empty()) << "nothing was inserted yet";
    auto deps_result = deps.get();
    ASSERT_TRUE(deps_result) << describe(deps_result);
    EXPECT_EQ(*deps_result, (Names{"mod1", "mod2"}));
    EXPECT_TRUE(info.get());

    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, (Names{"mod1", "mod2"}));
    auto after = service.list_loaded();
    ASSERT_TRUE(after) << describe(after);
    ASSERT_NE(entry_named(*after, "mod2"), nullptr);
    EXPECT_EQ(entry_named(*after, "mod2")->origin, loader::Origin::Explicit);
}

TEST(IndexSnapshot, ADirectoryWithoutIndexIsENOENT)
{
    TempTree tree;
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    IndexSnapshot::Options options;
    options.module_dir = tree.module_dir().string();
    options.release = tree.version();
    options.config_paths = {"/dev/null"};
    auto snapshot = IndexSnapshot::open(options);
    ASSERT_FALSE(snapshot);
    EXPECT_EQ(snapshot.error().code, ENOENT) << snapshot.error().message;
}

TEST(IndexSnapshot, KeepsReleaseGenerationAndConfigurationProblems)
{
    TempTree tree;
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    ASSERT_EQ(test::run_shell("/usr/sbin/depmod -C /dev/null -b '" + tree.root().string() + "' " +
                              tree.version()),
              0);
    tree.write("/conf/bad.conf", "frobnicate mod1\noptions mod1 debug=1\n");
    IndexSnapshot::Options options;
    options.module_dir = tree.module_dir().string();
    options.release = tree.version();
    options.config_paths = {(tree.root() / "conf").string()};
    options.cmdline_path = (tree.root() / "cmdline").string();
    options.generation = 7;
    tree.write("/cmdline", "quiet mod1.extra=2 modprobe.blacklist=mod3\n");
    auto snapshot = IndexSnapshot::open(options);
    ASSERT_TRUE(snapshot) << snapshot.error().message;
    const IndexSnapshot& s = **snapshot;
    EXPECT_EQ(s.release(), tree.version());
    EXPECT_EQ(s.generation(), 7U);
    EXPECT_TRUE(s.database().dependency_line("mod1").has_value());
    EXPECT_EQ(s.config().options_for("mod1"), "debug=1 extra=2");
    EXPECT_TRUE(s.config().is_blacklisted("mod3"));
    ASSERT_FALSE(s.diagnostics().empty());
    EXPECT_NE(s.diagnostics().front().message.find("frobnicate"), std::string::npos)
        << s.diagnostics().front().message;
}

} // namespace
} // namespace kmodd::service

namespace kmodd::service {
namespace {

using namespace test_support;

TEST(FindPattern, GlobsMatchTheWholeTextSubstringsAnyPartAndCaseNeverMatters)
{
    EXPECT_TRUE(matches_pattern("mod?", "MOD1"));
    EXPECT_FALSE(matches_pattern("mod?", "mod12")) << "a glob matches the whole text";
    EXPECT_TRUE(matches_pattern("OD1", "mod1")) << "text: any part";
    EXPECT_TRUE(matches_pattern("loop-control", "devname:loop_control", true));
    EXPECT_FALSE(matches_pattern("loop-control", "devname:loop_control", false))
        << "descriptions keep their dashes";
    EXPECT_TRUE(matches_pattern("*[0-9]", "snd-hda-codec-hdmi2", true));
    EXPECT_TRUE(check_pattern("").has_value());
    EXPECT_TRUE(check_pattern("a\tb").has_value());
    EXPECT_TRUE(check_pattern(std::string(4096, 'a')).has_value());
    EXPECT_FALSE(check_pattern("wifi").has_value());
}

TEST_F(ModuleServiceTest, FindNamesEachModuleOnceWithTheFirstFieldThatMatched)
{
    const std::map<std::string, std::string, std::less<>> descriptions{
        {"mod2", "Second module, after mod1"}, {"ext4", "Fourth Extended Filesystem"}};
    auto found = ModuleService::find(*snapshot_, "mod1", descriptions);
    ASSERT_TRUE(found) << describe(found);
    ASSERT_EQ(found->size(), 2U) << "mod1 by name, mod2 by its description";
    EXPECT_EQ((*found)[0].name, "mod1");
    EXPECT_EQ((*found)[0].field, "name");
    EXPECT_EQ((*found)[1].name, "mod2");
    EXPECT_EQ((*found)[1].field, "description");
    EXPECT_EQ((*found)[1].description, "Second module, after mod1");

    found = ModuleService::find(*snapshot_, "EXTENDED", descriptions);
    ASSERT_TRUE(found);
    ASSERT_EQ(found->size(), 1U) << "built-in modules are searched too";
    EXPECT_EQ((*found)[0].name, "ext4");
    found = ModuleService::find(*snapshot_, "mod-dash-alias", descriptions);
    ASSERT_TRUE(found);
    ASSERT_EQ(found->size(), 1U);
    EXPECT_EQ((*found)[0].field, "alias");
    EXPECT_EQ(ModuleService::find(*snapshot_, "", descriptions).error().kind, Failure::InvalidName);
}

TEST_F(ModuleServiceTest, DescriptionsAreReadOnceAndAgainOnlyForAChangedFile)
{
    DescriptionCache cache;
    auto first = cache.descriptions(snapshot_);
    EXPECT_EQ(first.at("ext4"), "Fourth Extended Filesystem") << "from modules.builtin.modinfo";
    EXPECT_FALSE(first.contains("mod1")) << "mod1 has no description";
    // mod2's file is replaced by blockdev, which has one: a new snapshot sees it.
    const fs::path mod2 = tree_.module_dir() / "kernel/a/mod2.ko";
    fs::copy_file(fixture("blockdev"), mod2, fs::copy_options::overwrite_existing);
    EXPECT_FALSE(cache.descriptions(snapshot_).contains("mod2")) << "same snapshot, same answer";
    auto fresh = open_snapshot({"/dev/null"});
    ASSERT_NE(fresh, nullptr);
    EXPECT_EQ(cache.descriptions(fresh).at("mod2"), "Loop block device stand-in");
}

TEST_F(ModuleServiceTest, AFileTheParseCacheHoldsAsItIsNowIsNotReadForItsDescription)
{
    // mod2's file gets a description (blockdev's content).
    const fs::path mod2 = tree_.module_dir() / "kernel/a/mod2.ko";
    fs::copy_file(fixture("blockdev"), mod2, fs::copy_options::overwrite_existing);
    auto snapshot = open_snapshot({"/dev/null"});
    ASSERT_NE(snapshot, nullptr);
    // The files are new: a cache written at once would not vouch for them (the racy rule).
    ::sleep(3);
    const std::string cache_path = (tree_.root() / "cache/modules.cache").string();
    depmod::DepmodOptions options;
    options.base_dir = tree_.root().string();
    options.kernel_version = tree_.version();
    options.config_paths = {"/dev/null"};
    options.parse_cache = cache_path;
    index::Diagnostics diagnostics;
    auto engine = depmod::Depmod::create(options, diagnostics);
    ASSERT_TRUE(engine);
    ASSERT_TRUE((*engine)->scan(diagnostics));
    (*engine)->finish_cache_save(diagnostics); // saved while the outputs would be made

    DescriptionCache reading;
    const auto expected = reading.descriptions(snapshot);
    EXPECT_GE(reading.files_read(), 3U) << "without the parse cache, every module file";
    EXPECT_EQ(expected.at("mod2"), "Loop block device stand-in");
    DescriptionCache cached(cache_path);
    EXPECT_EQ(cached.descriptions(snapshot), expected);
    EXPECT_EQ(cached.files_read(), 0U) << "every description from the parse cache";

    // A file changed since the cache was written is read; the others still are not.
    fs::copy_file(fixture("mod2"), mod2, fs::copy_options::overwrite_existing);
    auto fresh = open_snapshot({"/dev/null"});
    ASSERT_NE(fresh, nullptr);
    DescriptionCache restarted(cache_path);
    EXPECT_FALSE(restarted.descriptions(fresh).contains("mod2"));
    EXPECT_EQ(restarted.files_read(), 1U);
}

TEST_F(ModuleServiceTest, ExplainAndHoldersOfModulesTheServiceLoaded)
{
    service_->note_start();
    ASSERT_TRUE(service_->load(*snapshot_, "mod-dash", ""));
    auto why = service_->explain(*snapshot_, "mod1");
    ASSERT_TRUE(why) << describe(why);
    EXPECT_TRUE(why->loaded);
    EXPECT_EQ(why->origin, loader::Origin::Dependency);
    ASSERT_EQ(why->needed_by.size(), 1U);
    EXPECT_EQ(why->needed_by[0].name, "mod_dash");
    EXPECT_FALSE(why->needed_by[0].is_softdep);
    EXPECT_EQ(why->holders, Names{"mod2"});

    auto holders = service_->holders(*snapshot_, "mod2");
    ASSERT_TRUE(holders) << describe(holders);
    EXPECT_EQ(holders->holders, Names{"mod_dash"});
    EXPECT_EQ(holders->users, Names{"mod_dash"});
    EXPECT_TRUE(holders->unload.empty());
    EXPECT_NE(holders->unload_error.find("in use by: mod_dash"), std::string::npos);
    auto plan = service_->plan_unload(*snapshot_, "mod-dash");
    ASSERT_TRUE(plan) << describe(plan);
    EXPECT_EQ(*plan, (Names{"mod_dash", "mod2", "mod1"}));

    auto builtin = service_->explain(*snapshot_, "ext4");
    ASSERT_TRUE(builtin) << describe(builtin);
    EXPECT_TRUE(builtin->builtin);
    EXPECT_FALSE(builtin->loaded);
    EXPECT_EQ(service_->explain(*snapshot_, "nothing_here").error().kind, Failure::NotFound);
}

} // namespace
} // namespace kmodd::service
