// SPDX-License-Identifier: LGPL-2.1-or-later
// The daemon's module requests on a temporary tree and the sandbox kernel: what is inserted
// and removed, who is recorded as having loaded what, and the errors a client sees.
#include "module_service_fixture.hpp"

namespace kmodd::service {
namespace {

using namespace test_support;
using namespace std::chrono_literals;

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

TEST_F(ModuleServiceTest, ALoadedModuleIsUnloadedEvenWhenItsFileIsNoModuleAnyMore)
{
    ASSERT_TRUE(load("mod2"));
    // A build is rewriting the file, and the index says so: unloading needs no file.
    IndexSnapshot::Options options;
    options.module_dir = tree_.module_dir().string();
    options.release = tree_.version();
    options.config_paths = {"/dev/null"};
    options.unusable = {{"mod2", "'kernel/a/mod2.ko': section header table out of range"}};
    auto snapshot = IndexSnapshot::open(options);
    ASSERT_TRUE(snapshot) << snapshot.error().message;
    snapshot_ = *snapshot;
    auto loading = load("mod2");
    ASSERT_FALSE(loading);
    EXPECT_NE(loading.error().message.find("cannot be used"), std::string::npos);
    auto removed = unload("mod2");
    ASSERT_TRUE(removed) << describe(removed);
    EXPECT_EQ(*removed, (Names{"mod2", "mod1"}));
    EXPECT_TRUE(loaded_names().empty());
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

} // namespace
} // namespace kmodd::service
