// SPDX-License-Identifier: LGPL-2.1-or-later
// The daemon's module requests on a temporary tree and the sandbox kernel: what is inserted
// and removed, who is recorded as having loaded what, the errors a client sees, and the load
// plan beside kmod's `modprobe -D`.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <sstream>
#include <thread>

#include "depmod/depmod.hpp"
#include "loader/sandbox_support.hpp"
#include "service/module_service.hpp"
#include "temp_tree.hpp"

namespace kmodd::service {
namespace {

using namespace std::chrono_literals;
using test::TempTree;
namespace fs = test::fs;
using Names = std::vector<std::string>;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
const char* const kKmodModprobe = "/usr/sbin/modprobe";
const char* const kKmodModinfo = "/usr/sbin/modinfo";

fs::path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

template <class T> std::string describe(const RequestResult<T>& result)
{
    return result ? std::string("success") : result.error().message;
}

Names names_of(const std::vector<LoadedEntry>& entries)
{
    Names names;
    for (const LoadedEntry& entry : entries)
        names.push_back(entry.name);
    return names;
}

const LoadedEntry* entry_named(const std::vector<LoadedEntry>& entries, const std::string& name)
{
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const LoadedEntry& entry) { return entry.name == name; });
    return it == entries.end() ? nullptr : &*it;
}

/// The module names of kmod's `modprobe -D` output: insmod <path> and builtin <name> lines.
Names modprobe_show_depends_names(const std::string& output)
{
    Names names;
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::string verb, what;
        words >> verb >> what;
        if (verb == "builtin") {
            names.push_back(what);
        } else if (verb == "insmod") {
            std::string base = fs::path(what).filename().string();
            base = base.substr(0, base.find('.'));
            std::replace(base.begin(), base.end(), '-', '_');
            names.push_back(base);
        }
    }
    return names;
}

/// A kernel that stops its first insert_module until released, so that a test can hold a
/// load() in the middle of its run.
class GatedKernel final : public sys::Kernel {
public:
    explicit GatedKernel(sys::Kernel& inner) : inner_(inner) {}

    base::Result<void> insert_module(const std::string& path, const std::string& params) override
    {
        if (!has_gated_.exchange(true)) {
            entered_.count_down();
            released_.wait();
        }
        return inner_.insert_module(path, params);
    }
    base::Result<void> remove_module(const std::string& name) override
    {
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

    void wait_until_inserting() { entered_.wait(); }
    void release() { released_.count_down(); }

private:
    sys::Kernel& inner_;
    std::atomic<bool> has_gated_{false};
    std::latch entered_{1};
    std::latch released_{1};
};

class ModuleServiceTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        tree_.add("kernel/a/mod1.ko", fixture("mod1"));
        tree_.add("kernel/a/mod2.ko", fixture("mod2"));
        tree_.add("kernel/a/mod-dash.ko", fixture("mod_dash"));
        tree_.write("modules.order", "kernel/a/mod1.ko\nkernel/a/mod2.ko\nkernel/a/mod-dash.ko\n");
        tree_.write("modules.builtin", "kernel/fs/ext4.ko\n");
        using namespace std::string_literals;
        tree_.write("modules.builtin.modinfo",
                    "ext4.description=Fourth Extended Filesystem\0"
                    "ext4.author=Remy Card\0ext4.author=Theodore Ts'o\0"
                    "ext4.license=GPL\0ext4.alias=fs-ext4\0ext4.alias=ext3\0"
                    "ext4.parmtype=debug:int\0ext4.parm=debug:Debug level\0"
                    "other.license=MIT\0"s);
        ASSERT_NO_FATAL_FAILURE(write_index());
        ASSERT_NO_FATAL_FAILURE(open_service());
    }

    /// Adds mod1's softdeps (pre: mod3 post: crc-helper) to the tree and indexes it again.
    void add_softdep_modules()
    {
        tree_.add("kernel/b/mod3.ko", fixture("mod3"));
        tree_.add("kernel/c/crc_helper.ko", fixture("crc_helper"));
        ASSERT_NO_FATAL_FAILURE(write_index());
        ASSERT_NO_FATAL_FAILURE(open_service());
    }

    /// The depmod engine over the tree, as `depmod -C /dev/null -b root version`.
    void write_index()
    {
        index::Diagnostics diagnostics;
        depmod::DepmodOptions options;
        options.base_dir = tree_.root().string();
        options.kernel_version = tree_.version();
        options.config_paths = {"/dev/null"};
        options.durable = false;
        auto engine = depmod::Depmod::create(options, diagnostics);
        ASSERT_TRUE(engine) << engine.error().message;
        auto scanned = (*engine)->scan(diagnostics);
        ASSERT_TRUE(scanned) << scanned.error().message;
        auto written = (*engine)->write(diagnostics);
        ASSERT_TRUE(written) << written.error().message;
    }

    std::shared_ptr<const IndexSnapshot> open_snapshot(std::vector<std::string> config_paths,
                                                       std::string cmdline_path = "")
    {
        IndexSnapshot::Options options;
        options.module_dir = tree_.module_dir().string();
        options.release = tree_.version();
        options.config_paths = std::move(config_paths);
        options.cmdline_path = std::move(cmdline_path);
        auto snapshot = IndexSnapshot::open(options);
        EXPECT_TRUE(snapshot) << snapshot.error().message;
        return snapshot ? *snapshot : nullptr;
    }

    /// (Re)opens snapshot, sandbox kernel, state store and service, as a daemon start does:
    /// the kernel's and the store's state come back from the state directory.
    void open_service(std::vector<std::string> config_paths = {"/dev/null"})
    {
        service_.reset();
        store_.reset();
        kernel_.reset();
        snapshot_ = open_snapshot(std::move(config_paths));
        ASSERT_NE(snapshot_, nullptr);
        auto kernel =
            sys::make_sandbox_kernel(state_dir(), loader::make_module_inspector(),
                                     loader::make_module_symbol_predicate(snapshot_->database()));
        ASSERT_TRUE(kernel) << kernel.error().message;
        kernel_ = std::move(*kernel);
        auto store = loader::StateStore::open(state_dir());
        ASSERT_TRUE(store) << store.error().message;
        store_ = std::make_unique<loader::StateStore>(std::move(*store));
        service_ = std::make_unique<ModuleService>(*kernel_, store_.get());
    }

    [[nodiscard]] std::string state_dir() const { return (tree_.root() / "state").string(); }

    RequestResult<Names> load(const std::string& name, const std::string& params = "")
    {
        return service_->load(*snapshot_, name, params);
    }
    RequestResult<Names> unload(const std::string& name)
    {
        return service_->unload(*snapshot_, name);
    }
    Names loaded_names()
    {
        auto loaded = service_->list_loaded();
        EXPECT_TRUE(loaded) << describe(loaded);
        return loaded ? names_of(*loaded) : Names{};
    }
    /// The origin list_loaded() shows for `name`; nullopt when it is not loaded.
    std::optional<loader::Origin> origin_of(const std::string& name)
    {
        auto loaded = service_->list_loaded();
        EXPECT_TRUE(loaded) << describe(loaded);
        if (!loaded)
            return std::nullopt;
        const LoadedEntry* entry = entry_named(*loaded, name);
        return entry == nullptr ? std::nullopt : std::optional(entry->origin);
    }

    TempTree tree_;
    std::shared_ptr<const IndexSnapshot> snapshot_;
    std::unique_ptr<sys::Kernel> kernel_;
    std::unique_ptr<loader::StateStore> store_;
    std::unique_ptr<ModuleService> service_;
};

TEST_F(ModuleServiceTest, LoadingAModuleInsertsItsDependencyFirstAndRecordsWhoAskedForIt)
{
    auto loaded = load("mod2");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, (Names{"mod1", "mod2"}));

    auto listed = service_->list_loaded();
    ASSERT_TRUE(listed) << describe(listed);
    EXPECT_EQ(names_of(*listed), (Names{"mod2", "mod1"})) << "/proc/modules order: newest first";
    const LoadedEntry* mod1 = entry_named(*listed, "mod1");
    const LoadedEntry* mod2 = entry_named(*listed, "mod2");
    ASSERT_NE(mod1, nullptr);
    ASSERT_NE(mod2, nullptr);
    EXPECT_EQ(mod2->origin, loader::Origin::Explicit);
    EXPECT_EQ(mod1->origin, loader::Origin::Dependency);
    EXPECT_EQ(mod1->refcount, 1);
    EXPECT_EQ(mod1->holders, Names{"mod2"});
    EXPECT_EQ(mod2->refcount, 0);
    EXPECT_TRUE(mod2->holders.empty());
    EXPECT_GT(mod1->size, 0U);
}

TEST_F(ModuleServiceTest, LoadingByADashedNameOrAliasLoadsTheModule)
{
    auto loaded = load("mod-dash");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, (Names{"mod1", "mod2", "mod_dash"}));
    EXPECT_EQ(origin_of("mod_dash"), loader::Origin::Explicit);

    auto by_alias = load("mod1-alias");
    ASSERT_TRUE(by_alias) << describe(by_alias);
    EXPECT_TRUE(by_alias->empty());
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Explicit) << "asked for by a user now";
}

TEST_F(ModuleServiceTest, LoadingWhatIsLoadedAlreadyInsertsNothing)
{
    ASSERT_TRUE(load("mod2"));
    auto again = load("mod2");
    ASSERT_TRUE(again) << describe(again);
    EXPECT_TRUE(again->empty());
    EXPECT_EQ(loaded_names(), (Names{"mod2", "mod1"}));
}

TEST_F(ModuleServiceTest, LoadingABuiltinModuleInsertsNothing)
{
    auto loaded = load("ext4");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_TRUE(loaded->empty());
    EXPECT_TRUE(loaded_names().empty());
}

TEST_F(ModuleServiceTest, ParametersReachTheRequestedModuleOnly)
{
    ASSERT_TRUE(load("mod2", "answer=42"));
    auto mod2 = kernel_->loaded_module("mod2");
    auto mod1 = kernel_->loaded_module("mod1");
    ASSERT_TRUE(mod2);
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod2->params, "answer=42");
    EXPECT_EQ(mod1->params, "");
}

TEST_F(ModuleServiceTest, LoadingAlsoLoadsTheSoftdepsOfADependency)
{
    ASSERT_NO_FATAL_FAILURE(add_softdep_modules());
    auto loaded = load("mod2");
    ASSERT_TRUE(loaded) << describe(loaded);
    EXPECT_EQ(*loaded, (Names{"mod1", "crc_helper", "mod3", "mod2"}));
    EXPECT_EQ(origin_of("crc_helper"), loader::Origin::Dependency);
    EXPECT_EQ(origin_of("mod3"), loader::Origin::Dependency);

    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(removed->front(), "mod2");
    EXPECT_TRUE(loaded_names().empty()) << "everything was loaded only for mod2";
}

TEST_F(ModuleServiceTest, UnloadingRemovesTheModuleAndWhatWasLoadedForIt)
{
    ASSERT_TRUE(load("mod2"));
    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, (Names{"mod2", "mod1"}));
    EXPECT_TRUE(loaded_names().empty());
    EXPECT_TRUE(store_->records().empty());
}

TEST_F(ModuleServiceTest, AModuleAUserLoadedStaysWhenItsUserIsUnloaded)
{
    auto mod1 = load("mod1");
    ASSERT_TRUE(mod1) << describe(mod1);
    EXPECT_EQ(*mod1, Names{"mod1"});
    auto mod2 = load("mod2");
    ASSERT_TRUE(mod2) << describe(mod2);
    EXPECT_EQ(*mod2, Names{"mod2"});

    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, Names{"mod2"});
    EXPECT_EQ(loaded_names(), Names{"mod1"});
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Explicit);
}

TEST_F(ModuleServiceTest, ADependencyAskedForLaterBecomesExplicitAndStays)
{
    ASSERT_TRUE(load("mod2"));
    ASSERT_EQ(origin_of("mod1"), loader::Origin::Dependency);
    auto again = load("mod1");
    ASSERT_TRUE(again) << describe(again);
    EXPECT_TRUE(again->empty());
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Explicit);

    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, Names{"mod2"});
    EXPECT_EQ(loaded_names(), Names{"mod1"});
}

TEST_F(ModuleServiceTest, UnloadingAModuleInUseFailsNamingItsHolder)
{
    ASSERT_TRUE(load("mod2"));
    auto removed = unload("mod1");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().kind, Failure::InUse) << removed.error().message;
    EXPECT_NE(removed.error().message.find("mod2"), std::string::npos) << removed.error().message;
    EXPECT_NE(removed.error().message.find("'mod1'"), std::string::npos) << removed.error().message;
    EXPECT_EQ(loaded_names(), (Names{"mod2", "mod1"}));
    EXPECT_EQ(origin_of("mod1"), loader::Origin::Dependency);
}

TEST_F(ModuleServiceTest, UnloadingAModuleThatIsNotLoadedIsNotFound)
{
    auto removed = unload("mod2");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().kind, Failure::NotFound);
    EXPECT_NE(removed.error().message.find("'mod2'"), std::string::npos) << removed.error().message;
}

TEST_F(ModuleServiceTest, UnloadingABuiltinModuleFails)
{
    auto removed = unload("ext4");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().kind, Failure::Failed);
    EXPECT_NE(removed.error().message.find("built into the kernel"), std::string::npos)
        << removed.error().message;
}

TEST_F(ModuleServiceTest, AnUnknownNameIsNotFoundInEveryRequest)
{
    const std::string expected = "Module 'no-such-module' not found in " + tree_.version();
    auto loaded = load("no-such-module");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::NotFound);
    EXPECT_EQ(loaded.error().message, expected);
    auto removed = unload("no-such-module");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().kind, Failure::NotFound);
    auto deps = service_->list_deps(*snapshot_, "no-such-module");
    ASSERT_FALSE(deps);
    EXPECT_EQ(deps.error().kind, Failure::NotFound);
    EXPECT_EQ(deps.error().message, expected);
    auto info = service_->module_info(*snapshot_, "no-such-module");
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().kind, Failure::NotFound);
}

TEST_F(ModuleServiceTest, AConfigAliasToAModuleTheTreeLacksIsNotFound)
{
    tree_.write("/conf/alias.conf", "alias ghost no_such_module\n");
    ASSERT_NO_FATAL_FAILURE(open_service({(tree_.root() / "conf").string()}));
    auto loaded = load("ghost");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::NotFound) << loaded.error().message;
    auto deps = service_->list_deps(*snapshot_, "ghost");
    ASSERT_FALSE(deps);
    EXPECT_EQ(deps.error().kind, Failure::NotFound);
}

TEST_F(ModuleServiceTest, MalformedNamesAndParametersAreInvalid)
{
    for (const std::string name : {"a/b", "", "two words"}) {
        auto loaded = load(name);
        ASSERT_FALSE(loaded) << "'" << name << "'";
        EXPECT_EQ(loaded.error().kind, Failure::InvalidName);
        EXPECT_TRUE(loaded.error().message.starts_with("Invalid module name '" + name + "': "))
            << loaded.error().message;
        auto removed = unload(name);
        ASSERT_FALSE(removed);
        EXPECT_EQ(removed.error().kind, Failure::InvalidName);
        auto deps = service_->list_deps(*snapshot_, name);
        ASSERT_FALSE(deps);
        EXPECT_EQ(deps.error().kind, Failure::InvalidName);
        auto info = service_->module_info(*snapshot_, name);
        ASSERT_FALSE(info);
        EXPECT_EQ(info.error().kind, Failure::InvalidName);
    }
    using namespace std::string_literals;
    for (const std::string& params : {"a=1\nb=2"s, "a=1\0b=2"s}) {
        auto loaded = load("mod2", params);
        ASSERT_FALSE(loaded);
        EXPECT_EQ(loaded.error().kind, Failure::InvalidName) << loaded.error().message;
    }
    EXPECT_TRUE(loaded_names().empty());
}

TEST_F(ModuleServiceTest, ABlacklistedAliasIsRefusedButTheNameStillLoads)
{
    tree_.write("/conf/blacklist.conf", "blacklist mod1\n");
    ASSERT_NO_FATAL_FAILURE(open_service({(tree_.root() / "conf").string()}));
    auto by_alias = load("mod1-alias");
    ASSERT_FALSE(by_alias);
    EXPECT_EQ(by_alias.error().kind, Failure::Blacklisted) << by_alias.error().message;
    EXPECT_NE(by_alias.error().message.find("'mod1-alias'"), std::string::npos)
        << by_alias.error().message;
    EXPECT_TRUE(loaded_names().empty());

    // As modprobe without -b: the blacklist applies to aliases only.
    auto by_name = load("mod1");
    ASSERT_TRUE(by_name) << describe(by_name);
    EXPECT_EQ(*by_name, Names{"mod1"});
}

TEST_F(ModuleServiceTest, AFailedLoadRemovesWhatItInsertedAndSaysWhy)
{
    // The index still names mod2, but its file is no module any more.
    tree_.write("kernel/a/mod2.ko", "this is not an ELF file");
    auto loaded = load("mod2");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::Failed);
    const std::string& message = loaded.error().message;
    EXPECT_TRUE(message.starts_with("Cannot load 'mod2': ")) << message;
    EXPECT_NE(message.find("removed again: mod1"), std::string::npos) << message;
    EXPECT_TRUE(loaded_names().empty());
    EXPECT_TRUE(store_->records().empty());
}

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
