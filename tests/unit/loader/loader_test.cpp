// SPDX-License-Identifier: LGPL-2.1-or-later
// Loading and unloading on the sandbox kernel: the seed's story (mod2 needs mod1), refcounts,
// who-loaded-what across restarts, softdeps, options, install commands and bad requests.
#include <gtest/gtest.h>

#include <fstream>

#include "depmod/depmod.hpp"
#include "depmod/index_reader.hpp"
#include "loader/loader.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/resolver.hpp"
#include "loader/sandbox_support.hpp"
#include "loader/state_store.hpp"
#include "temp_tree.hpp"

namespace kmodd::loader {
namespace {

using test::TempTree;
namespace fs = std::filesystem;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;

/// A module tree indexed by our depmod, a configuration, and a sandbox kernel with its state
/// in the tree's root: everything a load needs, re-openable to simulate a restart.
class SandboxFixture : public ::testing::Test {
protected:
    void SetUp() override
    {
        tree_.add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
        tree_.add("kernel/a/mod2.ko", kFixtures / "mod2.ko");
        tree_.add("kernel/b/mod3.ko", kFixtures / "mod3.ko");
        tree_.add("kernel/c/crc_helper.ko", kFixtures / "crc_helper.ko");
        tree_.write("modules.order", "kernel/a/mod1.ko\nkernel/a/mod2.ko\nkernel/b/mod3.ko\n");
        reindex();
    }

    void reindex()
    {
        depmod::DepmodOptions options;
        options.base_dir = tree_.root().string();
        options.kernel_version = tree_.version();
        options.config_paths = {"/dev/null"};
        options.durable = false;
        index::Diagnostics diagnostics;
        auto engine = depmod::Depmod::create(options, diagnostics);
        ASSERT_TRUE(engine);
        ASSERT_TRUE((*engine)->scan(diagnostics));
        ASSERT_TRUE((*engine)->write(diagnostics));
    }

    /// (Re)opens database, configuration, kernel and state, as a new process would.
    /// `module_softdeps`: also read modules.softdep, as modprobe does (the fixture mod1
    /// declares softdeps, which the seed's story leaves out).
    void open(const std::string& config_text = "", bool module_softdeps = false)
    {
        loader_.reset();
        resolver_.reset();
        kernel_.reset();
        state_.reset();
        auto database = depmod::ModuleDatabase::open(tree_.module_dir().string());
        ASSERT_TRUE(database) << database.error().message;
        database_ = std::make_unique<depmod::ModuleDatabase>(std::move(*database));
        index::Diagnostics diagnostics;
        config_ = ModprobeConfig();
        config_.parse(config_text, "test.conf", diagnostics);
        if (module_softdeps)
            config_.parse(tree_.read("modules.softdep"), "modules.softdep", diagnostics);
        resolver_ = std::make_unique<Resolver>(*database_, config_);
        auto kernel = sys::make_sandbox_kernel(sandbox_dir(), make_module_inspector(),
                                               make_module_symbol_predicate(*database_));
        ASSERT_TRUE(kernel) << kernel.error().message;
        kernel_ = std::move(*kernel);
        auto state = StateStore::open(sandbox_dir());
        ASSERT_TRUE(state) << state.error().message;
        state_ = std::make_unique<StateStore>(std::move(*state));
        loader_ = std::make_unique<Loader>(*resolver_, *kernel_, state_.get(), recorder());
    }

    [[nodiscard]] std::string sandbox_dir() const { return (tree_.root() / "sandbox").string(); }

    CommandRunner recorder()
    {
        return [this](const std::string& command, const std::string& module,
                      const std::string& options) -> base::Result<void> {
            commands_.push_back(module + ": " + command + " [" + options + "]");
            return {};
        };
    }

    std::vector<std::string> loaded() const
    {
        std::vector<std::string> names;
        auto modules = kernel_->loaded_modules();
        EXPECT_TRUE(modules);
        for (const auto& m : *modules)
            names.push_back(m.name);
        std::sort(names.begin(), names.end());
        return names;
    }

    base::Result<LoadReport> load(const std::string& name, const std::string& params = "")
    {
        return loader_->load(LoadRequest{name, params, false, false, false, false});
    }
    base::Result<UnloadReport> unload(const std::string& name)
    {
        return loader_->unload(UnloadRequest{name, false, false, false});
    }

    TempTree tree_;
    std::unique_ptr<depmod::ModuleDatabase> database_;
    ModprobeConfig config_;
    std::unique_ptr<Resolver> resolver_;
    std::unique_ptr<sys::Kernel> kernel_;
    std::unique_ptr<StateStore> state_;
    std::unique_ptr<Loader> loader_;
    std::vector<std::string> commands_;
};

using Strings = std::vector<std::string>;

TEST_F(SandboxFixture, LoadingMod2LoadsMod1First)
{
    open();
    auto report = load("mod2");
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->inserted, (Strings{"mod1", "mod2"}));
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2"}));
    auto mod1 = kernel_->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 1);
    EXPECT_EQ(mod1->holders, Strings{"mod2"});
    ASSERT_NE(state_->origin("mod2"), nullptr);
    EXPECT_EQ(*state_->origin("mod2"), Origin::Explicit);
    EXPECT_EQ(*state_->origin("mod1"), Origin::Dependency);
}

TEST_F(SandboxFixture, UnloadingMod2RemovesBoth)
{
    open();
    ASSERT_TRUE(load("mod2"));
    auto report = unload("mod2");
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->removed, (Strings{"mod2", "mod1"}));
    EXPECT_TRUE(loaded().empty());
    EXPECT_TRUE(state_->records().empty());
}

TEST_F(SandboxFixture, ADependencyAnotherModuleStillUsesStays)
{
    open();
    ASSERT_TRUE(load("mod2"));
    auto third = load("mod3");
    ASSERT_TRUE(third) << third.error().message;
    EXPECT_EQ(third->inserted, Strings{"mod3"}) << "mod1 was already loaded";
    auto report = unload("mod2");
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->removed, Strings{"mod2"});
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod3"}));
    auto last = unload("mod3");
    ASSERT_TRUE(last);
    EXPECT_EQ(last->removed, (Strings{"mod3", "mod1"})) << "mod1 goes with its last user";
}

TEST_F(SandboxFixture, AModuleAUserAskedForStaysWhenItsUserGoes)
{
    open();
    ASSERT_TRUE(load("mod1"));
    ASSERT_TRUE(load("mod2"));
    auto report = unload("mod2");
    ASSERT_TRUE(report);
    EXPECT_EQ(report->removed, Strings{"mod2"});
    EXPECT_EQ(loaded(), Strings{"mod1"});
}

TEST_F(SandboxFixture, AskingForALoadedDependencyMakesItExplicit)
{
    open();
    ASSERT_TRUE(load("mod2"));
    ASSERT_TRUE(load("mod1"));
    EXPECT_EQ(*state_->origin("mod1"), Origin::Explicit);
    ASSERT_TRUE(unload("mod2"));
    EXPECT_EQ(loaded(), Strings{"mod1"});
}

TEST_F(SandboxFixture, AnAutoloadIsRecordedAsSuchSurvivesARestartAndClaimsNothingLoadedAlready)
{
    open();
    LoadRequest request{"mod2", "", false, false, false, false};
    request.origin = Origin::Autoload;
    auto report = loader_->load(request);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->inserted, (Strings{"mod1", "mod2"}));
    EXPECT_EQ(*state_->origin("mod2"), Origin::Autoload);
    EXPECT_EQ(*state_->origin("mod1"), Origin::Dependency);

    // mod3 loaded by someone else: a device asking for it does not make it ours.
    ASSERT_TRUE(kernel_->insert_module((tree_.module_dir() / "kernel/b/mod3.ko").string(), ""));
    LoadRequest device{"mod3", "", false, false, false, false};
    device.origin = Origin::Autoload;
    ASSERT_TRUE(loader_->load(device));
    EXPECT_EQ(state_->origin("mod3"), nullptr);

    open(); // the record is read back from the state file
    EXPECT_EQ(*state_->origin("mod2"), Origin::Autoload);
    // A user's request makes it explicit; an autoload never downgrades that.
    ASSERT_TRUE(load("mod2"));
    EXPECT_EQ(*state_->origin("mod2"), Origin::Explicit);
    ASSERT_TRUE(loader_->load(request));
    EXPECT_EQ(*state_->origin("mod2"), Origin::Explicit);
}

TEST_F(SandboxFixture, AModuleInUseIsNotUnloadedAndTheHolderIsNamed)
{
    open();
    ASSERT_TRUE(load("mod2"));
    auto report = unload("mod1");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().code, EBUSY);
    EXPECT_NE(report.error().message.find("mod2"), std::string::npos) << report.error().message;
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2"}));
}

TEST_F(SandboxFixture, RecordsSurviveARestart)
{
    open();
    ASSERT_TRUE(load("mod1"));
    ASSERT_TRUE(load("mod2"));
    ASSERT_TRUE(load("mod3"));
    open(); // a new process: kernel state and records come from the sandbox directory
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2", "mod3"}));
    EXPECT_EQ(*state_->origin("mod1"), Origin::Explicit);
    ASSERT_TRUE(unload("mod2"));
    ASSERT_TRUE(unload("mod3"));
    EXPECT_EQ(loaded(), Strings{"mod1"});
}

TEST_F(SandboxFixture, AWrongOrderIsRefusedAndNothingIsLeftHalfLoaded)
{
    // A hand-edited modules.dep that forgets mod2's dependency.
    std::string dep = tree_.read("modules.dep");
    size_t at = dep.find("kernel/a/mod2.ko: kernel/a/mod1.ko");
    ASSERT_NE(at, std::string::npos) << dep;
    dep.replace(at, 34, "kernel/a/mod2.ko:");
    tree_.write("modules.dep", dep);
    test::fs::remove(tree_.module_dir() / "modules.dep.bin");
    open();
    auto report = load("mod2");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().code, ENOENT);
    EXPECT_NE(report.error().message.find("mod1_fn"), std::string::npos) << report.error().message;
    EXPECT_TRUE(loaded().empty());
}

TEST_F(SandboxFixture, AFailedDependencyIsRolledBackAndNamed)
{
    // mod-dash needs mod2 which needs mod1; make mod2 unloadable by corrupting it after
    // indexing, so mod1 is inserted and must be removed again.
    tree_.add("kernel/a/mod-dash.ko", kFixtures / "mod_dash.ko");
    reindex();
    tree_.write("kernel/a/mod2.ko", "corrupted after depmod ran");
    open();
    auto report = load("mod-dash");
    ASSERT_FALSE(report);
    EXPECT_NE(report.error().message.find("removed again: mod1"), std::string::npos)
        << report.error().message;
    EXPECT_TRUE(loaded().empty());
}

TEST_F(SandboxFixture, OneFailingMatchOfAnAliasTakesBackOnlyItsOwnModules)
{
    // "both" matches crc_helper and mod2; mod2 is corrupted after indexing, so its plan
    // inserts mod1 and then fails. kmod and udev probe each match on its own: crc_helper
    // stays, whichever comes first; mod1 goes.
    tree_.write("kernel/a/mod2.ko", "corrupted after depmod ran");
    for (const char* config :
         {"alias both crc_helper\nalias both mod2\n", "alias both mod2\nalias both crc_helper\n"}) {
        open(config);
        auto report = load("both");
        ASSERT_FALSE(report) << config;
        const std::string& message = report.error().message;
        EXPECT_NE(message.find("mod2.ko"), std::string::npos) << message;
        EXPECT_NE(message.find("(removed again: mod1)"), std::string::npos) << message;
        EXPECT_NE(message.find("(loaded all the same: crc_helper)"), std::string::npos) << message;
        EXPECT_EQ(loaded(), Strings{"crc_helper"}) << config;
        EXPECT_NE(state_->record_of("crc_helper"), nullptr) << config;
        EXPECT_EQ(state_->record_of("mod1"), nullptr) << config;
        ASSERT_TRUE(unload("crc_helper"));
    }
}

TEST_F(SandboxFixture, EveryFailingMatchOfAnAliasIsNamed)
{
    tree_.add("kernel/a/mod-dash.ko", kFixtures / "mod_dash.ko");
    reindex();
    tree_.write("kernel/a/mod2.ko", "corrupted after depmod ran");
    tree_.write("kernel/b/mod3.ko", "corrupted after depmod ran");
    open("alias both mod3\nalias both mod-dash\n");
    auto report = load("both");
    ASSERT_FALSE(report);
    const std::string& message = report.error().message;
    EXPECT_NE(message.find("mod3.ko"), std::string::npos) << message;
    EXPECT_NE(message.find("; "), std::string::npos) << message;
    EXPECT_NE(message.find("mod2.ko"), std::string::npos) << message;
    EXPECT_EQ(message.find("loaded all the same"), std::string::npos) << message;
    EXPECT_TRUE(loaded().empty());
}

TEST_F(SandboxFixture, AFailingMatchOfAnAliasLeavesTheOtherMatchesDependenciesLoaded)
{
    // mod3 (first match) loads mod1 and itself; mod2 then fails with mod1 already live: the
    // failure takes back nothing, and what mod3's load recorded stays true.
    tree_.write("kernel/a/mod2.ko", "corrupted after depmod ran");
    open("alias both mod3\nalias both mod2\n");
    auto report = load("both");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().message.find("removed again"), std::string::npos)
        << report.error().message;
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod3"}));
    ASSERT_NE(state_->record_of("mod1"), nullptr);
    ASSERT_NE(state_->record_of("mod3"), nullptr);
    auto removed = unload("mod3");
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(removed->removed, (Strings{"mod3", "mod1"}));
    EXPECT_TRUE(loaded().empty());
}

TEST_F(SandboxFixture, ParametersAndConfiguredOptionsReachTheKernel)
{
    open("options mod1 debug=1\noptions mod1-alias ignored=1\n");
    ASSERT_TRUE(load("mod1", "verbose=2"));
    auto mod1 = kernel_->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->params, "debug=1 verbose=2");
}

TEST_F(SandboxFixture, OptionsForAnAliasApplyWhenLoadedThroughIt)
{
    open("options mod1_alias via_alias=1\n");
    ASSERT_TRUE(load("mod1-alias"));
    EXPECT_EQ(kernel_->loaded_module("mod1")->params, "via_alias=1 ");
}

TEST_F(SandboxFixture, SoftdepsFromModulesAndConfigAreLoadedAround)
{
    // mod1's own softdep: "pre: mod3 post: crc-helper" (crc-helper is found by its alias).
    open("", true);
    auto report = load("mod1");
    ASSERT_TRUE(report) << report.error().message;
    // kmod's order (the -D oracle checks it): mod3, the pre softdep, needs mod1, and mod1's
    // softdeps are filled in again as mod3's dependency: mod1, then its post softdep, then mod3.
    EXPECT_EQ(report->inserted, (Strings{"mod1", "crc_helper", "mod3"}));

    // Unloading mod2 later removes its softdeps too, and then mod1, which only they used.
    ASSERT_TRUE(unload("mod1").has_value() == false) << "mod3 holds mod1";
    ASSERT_TRUE(load("mod2"));
    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(loaded(), (Strings{"crc_helper", "mod1", "mod3"}))
        << "mod1 and its softdeps were asked for explicitly (mod1) or loaded for it";
}

TEST_F(SandboxFixture, SoftdepsLoadedForAModuleGoWithIt)
{
    open("", true);
    ASSERT_TRUE(load("mod2"));
    EXPECT_EQ(loaded(), (Strings{"crc_helper", "mod1", "mod2", "mod3"}));
    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_TRUE(loaded().empty()) << "mod1 is freed once its softdep mod3 is gone";
}

TEST_F(SandboxFixture, InstallCommandsRunInsteadOfInsertion)
{
    open("install mod3 /bin/echo custom $CMDLINE_OPTS\n");
    auto report = load("mod3", "x=1");
    ASSERT_TRUE(report) << report.error().message;
    ASSERT_EQ(commands_.size(), 1U);
    EXPECT_EQ(commands_[0], "mod3: /bin/echo custom $CMDLINE_OPTS [x=1]");
    EXPECT_EQ(loaded(), Strings{"mod1"}) << "the dependency is still inserted";
}

TEST_F(SandboxFixture, ABlacklistedAliasLoadsNothingButTheNameStillWorks)
{
    open("blacklist mod1\n");
    auto by_alias = load("mod1-alias");
    ASSERT_TRUE(by_alias);
    EXPECT_TRUE(by_alias->blacklisted);
    EXPECT_TRUE(loaded().empty());
    ASSERT_TRUE(load("mod1"));
    EXPECT_EQ(loaded(), Strings{"mod1"});
}

TEST_F(SandboxFixture, BadNamesAreRefusedWithTheReason)
{
    open();
    for (const char* name : {"", ".", "..", "../mod1", "/lib/modules/x.ko", "mod 1",
                             "a_module_name_that_is_much_longer_than_the_kernel_allows_x"}) {
        auto report = load(name);
        ASSERT_FALSE(report) << name;
        EXPECT_EQ(report.error().code, EINVAL) << name;
        EXPECT_NE(report.error().message.find("invalid module name"), std::string::npos);
    }
}

TEST_F(SandboxFixture, ModaliasesOfRealDevicesAreLookedUpNotRefused)
{
    open();
    // What a kernel's uevents carry: a DMI modalias holds the BIOS date with slashes, a CPU's
    // lists every feature flag (about 700 characters under qemu -cpu max).
    std::string cpu = "cpu:type:x86,ven0002fam000Fmod006B:feature:";
    for (int flag = 0; flag < 140; ++flag)
        cpu += ",0" + std::to_string(100 + flag);
    for (const std::string& modalias :
         {std::string("dmi:bvnSeaBIOS:bvr1.16.2:bd04/01/2014:br0.0:svnQEMU:"), cpu}) {
        auto report = load(modalias);
        ASSERT_FALSE(report) << modalias;
        EXPECT_EQ(report.error().code, ENOENT) << report.error().message;
    }
    EXPECT_TRUE(is_valid_module_request(cpu, nullptr));
    std::string why;
    EXPECT_FALSE(is_valid_module_request(std::string(kMaxAliasLength + 1, 'x') + ":", &why));
    EXPECT_EQ(why, "an alias has at most 4095 characters");
    for (const char* path : {"/lib/modules/a:b.ko", "./x:y", "dir/mod:1.ko"}) {
        EXPECT_FALSE(is_valid_module_request(path, &why)) << path;
        EXPECT_EQ(why, "a path is not a module name; give the module's name") << path;
    }
}

TEST_F(SandboxFixture, AnUnknownModuleIsReportedWithTheDirectory)
{
    open();
    auto report = load("nope");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().code, ENOENT);
    EXPECT_EQ(report.error().message, "module 'nope' not found in " + tree_.module_dir().string());
}

TEST_F(SandboxFixture, ADependencyCycleInAHandEditedIndexIsRefused)
{
    std::string dep = tree_.read("modules.dep");
    size_t at = dep.find("kernel/a/mod1.ko:");
    ASSERT_NE(at, std::string::npos);
    dep.replace(at, 17, "kernel/a/mod1.ko: kernel/a/mod2.ko");
    tree_.write("modules.dep", dep);
    test::fs::remove(tree_.module_dir() / "modules.dep.bin");
    open();
    auto report = load("mod2");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().code, ELOOP);
    EXPECT_NE(report.error().message.find("mod2 -> mod1 -> mod2"), std::string::npos)
        << report.error().message;
    EXPECT_TRUE(loaded().empty());
}

TEST_F(SandboxFixture, ADryRunWithTheCascadePlannedNamesWhatTheUnloadThenRemoves)
{
    open();
    ASSERT_TRUE(load("mod2"));
    ASSERT_TRUE(load("mod3"));
    UnloadRequest plan{"mod3", false, false, true};
    plan.plan_cascade = true;
    auto planned = loader_->unload(plan);
    ASSERT_TRUE(planned) << planned.error().message;
    EXPECT_EQ(planned->removed, Strings{"mod3"}) << "mod1 stays for mod2";
    plan.name = "mod2";
    planned = loader_->unload(plan);
    ASSERT_TRUE(planned);
    EXPECT_EQ(planned->removed, Strings{"mod2"});
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2", "mod3"})) << "a dry run changes nothing";
    ASSERT_TRUE(unload("mod3"));

    planned = loader_->unload(plan);
    ASSERT_TRUE(planned);
    EXPECT_EQ(planned->removed, (Strings{"mod2", "mod1"}));
    plan.plan_cascade = false;
    planned = loader_->unload(plan);
    ASSERT_TRUE(planned);
    EXPECT_EQ(planned->removed, Strings{"mod2"}) << "modprobe -r -n names the module only";
    auto report = unload("mod2");
    ASSERT_TRUE(report);
    EXPECT_EQ(report->removed, (Strings{"mod2", "mod1"}));
}

TEST_F(SandboxFixture, RecordsKeepWhoAskedWhenAndForWhichDevice)
{
    open();
    LoadRequest request{"mod2", "", false, false, false, false};
    request.provenance.requester = Requester{1000, ":1.42", "kmodctl"};
    ASSERT_TRUE(loader_->load(request));
    const Record* mod2 = state_->record_of("mod2");
    ASSERT_NE(mod2, nullptr);
    ASSERT_TRUE(mod2->provenance.requester);
    EXPECT_EQ(mod2->provenance.requester->uid, 1000);
    EXPECT_EQ(mod2->provenance.requester->bus_name, ":1.42");
    EXPECT_EQ(mod2->provenance.requester->command, "kmodctl");
    EXPECT_GT(mod2->provenance.usec, 0U);
    const Record* mod1 = state_->record_of("mod1");
    ASSERT_NE(mod1, nullptr);
    EXPECT_EQ(mod1->provenance.usec, mod2->provenance.usec) << "loaded in the same call";
    EXPECT_FALSE(mod1->provenance.requester) << "a dependency was asked for by nobody";

    LoadRequest device{"mod3", "", false, false, false, false};
    device.origin = Origin::Autoload;
    device.provenance.device = DeviceRef{"/sys/devices/pci0000:00/0000:00:02.0", "pci:v1234"};
    ASSERT_TRUE(loader_->load(device));

    // Written and read back as they were.
    auto again = StateStore::open(sandbox_dir());
    ASSERT_TRUE(again) << again.error().message;
    const Record* read = again->record_of("mod2");
    ASSERT_NE(read, nullptr);
    ASSERT_TRUE(read->provenance.requester);
    EXPECT_EQ(read->provenance.requester->command, "kmodctl");
    EXPECT_EQ(read->provenance.usec, mod2->provenance.usec);
    const Record* autoloaded = again->record_of("mod3");
    ASSERT_NE(autoloaded, nullptr);
    ASSERT_TRUE(autoloaded->provenance.device);
    EXPECT_EQ(autoloaded->provenance.device->modalias, "pci:v1234");
}

TEST(StateStore, AFileOfAnOlderKmoddWithoutTimesOrRequestersIsRead)
{
    TempTree tree;
    const fs::path dir = tree.root() / "state";
    fs::create_directories(dir);
    std::ofstream(dir / "loaded.json")
        << R"({"modules":{"e1000":{"origin":"explicit"},)"
        << R"("crc":{"needed_by":["e1000"],"origin":"dependency"}},"version":1})";
    auto store = StateStore::open(dir.string());
    ASSERT_TRUE(store) << store.error().message;
    EXPECT_EQ(store->record_of("e1000")->provenance.usec, 0U);
    EXPECT_FALSE(store->record_of("e1000")->provenance.requester);

    // Malformed provenance is refused as any other bad record.
    for (const char* bad : {R"("since":"yesterday")", R"("requested_by":[1])",
                            R"("requested_by":{"uid":"root"})", R"("device":{"syspath":1})"}) {
        std::ofstream(dir / "loaded.json", std::ios::trunc)
            << R"({"modules":{"e1000":{"origin":"explicit",)" << bad << R"(}},"version":1})";
        auto refused = StateStore::open(dir.string());
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.error().code, EBADMSG) << bad;
    }
}

TEST(StateStore, AChangeThatCannotBeWrittenIsKeptInMemoryAndWrittenByTheNextOne)
{
    TempTree tree;
    const fs::path dir = tree.root() / "state";
    auto store = StateStore::open(dir.string()); // no directory yet: no records
    ASSERT_TRUE(store) << store.error().message;
    fs::create_directories(dir / "loaded.json"); // nothing can be renamed over it
    store->record_explicit("e1000");
    store->record_dependency("ptp", "e1000", true);
    ASSERT_TRUE(store->unsaved());
    EXPECT_EQ(store->unsaved()->message,
              "cannot write '" + dir.string() + "/loaded.json': Is a directory");
    EXPECT_EQ(store->records().size(), 2U) << "the records stay in memory";
    EXPECT_TRUE(store->release("ptp", "other")) << "answers come from memory";

    fs::remove(dir / "loaded.json");
    EXPECT_FALSE(store->flush());
    auto again = StateStore::open(dir.string());
    ASSERT_TRUE(again) << again.error().message;
    ASSERT_NE(again->record_of("ptp"), nullptr);
    EXPECT_EQ(again->record_of("ptp")->needed_by, (std::set<std::string, std::less<>>{"e1000"}));
    EXPECT_NE(again->record_of("e1000"), nullptr);
}

TEST(StateStore, UsersListedForARecordThatIsNoDependencyAreNotKeptAndNothingElseIsLost)
{
    // kmodd never writes such a list (found by fuzzing): it used to be read, then dropped by
    // the next write, so two reads of one file could disagree.
    TempTree tree;
    const fs::path dir = tree.root() / "state";
    fs::create_directories(dir);
    std::ofstream(dir / "loaded.json")
        << R"({"modules":{"e1000":{"origin":"explicit"},)"
        << R"("ptp":{"needed_by":["e1000"],"origin":"autoload"},)"
        << R"("crc":{"needed_by":["e1000","ptp"],"origin":"dependency"}},"version":1})";
    auto store = StateStore::open(dir.string());
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_NE(store->record_of("ptp"), nullptr);
    EXPECT_EQ(store->record_of("ptp")->origin, Origin::Autoload);
    EXPECT_TRUE(store->record_of("ptp")->needed_by.empty());
    store->record_explicit("snd");
    ASSERT_FALSE(store->unsaved()) << store->unsaved()->message;
    auto again = StateStore::open(dir.string());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->records().size(), 4U);
    ASSERT_NE(again->record_of("crc"), nullptr);
    EXPECT_EQ(again->record_of("crc")->needed_by,
              (std::set<std::string, std::less<>>{"e1000", "ptp"}));
    EXPECT_EQ(again->record_of("e1000")->origin, Origin::Explicit);
}

} // namespace
} // namespace kmodd::loader

namespace kmodd::loader {
namespace {

/// Notes how each module is asked into and out of the kernel, and passes the call on.
class ForceRecordingKernel final : public sys::Kernel {
public:
    explicit ForceRecordingKernel(sys::Kernel& inner) : inner_(inner) {}

    base::Result<void> insert_module(const std::string& path, const std::string& params) override
    {
        calls.push_back(fs::path(path).stem().string() + " plain");
        return inner_.insert_module(path, params);
    }
    base::Result<void> insert_module_forcing(const std::string& path, const std::string& params,
                                             sys::ForceFlags force) override
    {
        calls.push_back(fs::path(path).stem().string() + (force.vermagic ? " vermagic" : "") +
                        (force.modversions ? " modversions" : ""));
        return inner_.insert_module(path, params);
    }
    base::Result<void> remove_module(const std::string& name) override
    {
        calls.push_back("remove " + name);
        return inner_.remove_module(name);
    }
    base::Result<void> force_remove_module(const std::string& name) override
    {
        calls.push_back("force-remove " + name);
        return inner_.remove_module(name);
    }
    base::Result<std::vector<sys::LoadedModule>> loaded_modules() const override
    {
        return inner_.loaded_modules();
    }
    sys::ModuleState module_state(const std::string& name) const override
    {
        return inner_.module_state(name);
    }
    base::Result<sys::LoadedModule> loaded_module(const std::string& name) const override
    {
        return inner_.loaded_module(name);
    }

    std::vector<std::string> calls;

private:
    sys::Kernel& inner_;
};

TEST_F(SandboxFixture, AForcedLoadAsksTheKernelToForceEveryModuleOfThePlanAndNoOther)
{
    open();
    ForceRecordingKernel kernel(*kernel_);
    Loader loader(*resolver_, kernel, state_.get(), recorder());
    LoadRequest forced{"mod2", "", false, false, false, false};
    forced.force.vermagic = true;
    ASSERT_TRUE(loader.load(forced));
    LoadRequest both{"mod3", "", false, false, false, false};
    both.force = {true, true};
    ASSERT_TRUE(loader.load(both));
    ASSERT_TRUE(loader.load(LoadRequest{"crc_helper", "", false, false, false, false}));
    EXPECT_EQ(kernel.calls, (Strings{"mod1 vermagic", "mod2 vermagic", "mod3 vermagic modversions",
                                     "crc_helper plain"}));

    kernel.calls.clear();
    ASSERT_TRUE(loader.unload(UnloadRequest{"mod3", false, false, false}));
    UnloadRequest forced_unload{"mod2", false, false, false};
    forced_unload.force = true;
    ASSERT_TRUE(loader.unload(forced_unload));
    EXPECT_EQ(kernel.calls, (Strings{"remove mod3", "force-remove mod2", "remove mod1"}))
        << "only the module named is removed with force";
}

} // namespace
} // namespace kmodd::loader

namespace kmodd::loader {
namespace {

TEST_F(SandboxFixture, RemoveHoldersUnloadsTheModulesHoldingTheTargetFirst)
{
    open();
    ASSERT_TRUE(load("mod2"));
    UnloadRequest plain{"mod1", false, false, false};
    auto refused = loader_->unload(plain);
    ASSERT_FALSE(refused) << "mod2 holds mod1";
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2"}));

    UnloadRequest dry{"mod1", false, false, true};
    dry.remove_holders = true;
    auto planned = loader_->unload(dry);
    ASSERT_TRUE(planned) << planned.error().message;
    EXPECT_EQ(planned->removed, (Strings{"mod2", "mod1"}));
    EXPECT_EQ(loaded(), (Strings{"mod1", "mod2"})) << "a dry run removes nothing";

    UnloadRequest with_holders{"mod1", false, false, false};
    with_holders.remove_holders = true;
    auto removed = loader_->unload(with_holders);
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(removed->removed, (Strings{"mod2", "mod1"}));
    EXPECT_EQ(loaded(), Strings{});
}

} // namespace
} // namespace kmodd::loader

namespace kmodd::loader {
namespace {

TEST_F(SandboxFixture, WaitAsksAgainUntilTheModuleIsFreeAndGivesUpAtItsDeadline)
{
    open();
    ASSERT_TRUE(load("mod2"));
    UnloadRequest briefly{"mod1", false, false, false};
    briefly.wait_ms = 30;
    const auto started = std::chrono::steady_clock::now();
    auto refused = loader_->unload(briefly);
    ASSERT_FALSE(refused) << "mod2 holds mod1 all along";
    EXPECT_EQ(refused.error().code, EWOULDBLOCK);
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(30));

    // mod2 goes away while the unload of mod1 waits for it.
    std::thread other([this] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ASSERT_TRUE(kernel_->remove_module("mod2"));
    });
    UnloadRequest patiently{"mod1", false, false, false};
    patiently.wait_ms = 10'000;
    auto removed = loader_->unload(patiently);
    other.join();
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(removed->removed, Strings{"mod1"});
    EXPECT_EQ(loaded(), Strings{});
}

} // namespace
} // namespace kmodd::loader
