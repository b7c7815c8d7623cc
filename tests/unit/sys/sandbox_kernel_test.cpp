// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "sys/kernel.hpp"
#include "temp_tree.hpp"

namespace kmodd::sys {
namespace {

namespace fs = std::filesystem;

/// A module inspector that knows a fixed set of files: path -> facts. No ELF involved.
class FakeModules {
public:
    void add(const std::string& path, ModuleFacts facts) { facts_[path] = std::move(facts); }

    [[nodiscard]] ModuleInspector inspector()
    {
        return [this](const std::string& path) -> base::Result<ModuleFacts> {
            ++inspections_;
            auto it = facts_.find(path);
            if (it == facts_.end())
                return base::make_error(ENOENT, "'" + path + "': No such file or directory");
            return it->second;
        };
    }

    int inspections_ = 0;

private:
    std::map<std::string, ModuleFacts> facts_;
};

/// Symbols only modules export: mod*_fn and helper_*; everything else is the kernel's.
bool is_module_symbol(const std::string& symbol)
{
    return symbol.starts_with("mod") || symbol.starts_with("helper_");
}

class SandboxKernelTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-sandbox-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        state_dir_ = (dir_ / "state").string();
        // The seed's story: mod2 needs mod1; mod3 needs mod1 and mod2.
        modules_.add("/m/mod1.ko", {"mod1", 16384, {"mod1_fn", "mod1_data"}, {"printk"}});
        modules_.add("/m/mod2.ko", {"mod2", 8192, {"mod2_fn"}, {"mod1_fn", "printk"}});
        modules_.add("/m/mod3.ko",
                     {"mod3", 4096, {}, {"mod1_fn", "mod1_data", "mod2_fn", "kmalloc"}});
        modules_.add("/m/helper.ko", {"helper", 100, {"helper_fn"}, {}});
        modules_.add("/m/helper-copy.ko", {"helper_copy", 100, {"helper_fn"}, {}});
        modules_.add("/m/needs-helper-gone.ko", {"orphan", 100, {}, {"helper_missing"}});
        modules_.add("/m/nameless.ko", {"", 100, {}, {}});
    }
    void TearDown() override { fs::remove_all(dir_); }

    [[nodiscard]] std::unique_ptr<Kernel> make_kernel()
    {
        auto kernel = make_sandbox_kernel(state_dir_, modules_.inspector(), is_module_symbol);
        EXPECT_TRUE(kernel) << kernel.error().message;
        return kernel ? std::move(*kernel) : nullptr;
    }

    [[nodiscard]] fs::path state_file() const { return fs::path(state_dir_) / kSandboxStateFile; }

    void write_state(const std::string& text) const
    {
        fs::create_directories(state_dir_);
        std::ofstream(state_file()) << text;
    }

    static std::vector<std::string> names(const Kernel& kernel)
    {
        std::vector<std::string> result;
        auto loaded = kernel.loaded_modules();
        EXPECT_TRUE(loaded);
        if (loaded) {
            for (const LoadedModule& module : *loaded)
                result.push_back(module.name);
        }
        return result;
    }

    fs::path dir_;
    std::string state_dir_;
    FakeModules modules_;
};

using Names = std::vector<std::string>;

TEST_F(SandboxKernelTest, InsertingAModuleBeforeTheOneItNeedsFailsNamingTheUnknownSymbol)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    auto inserted = kernel->insert_module("/m/mod2.ko", "");
    ASSERT_FALSE(inserted);
    EXPECT_EQ(inserted.error().code, ENOENT);
    EXPECT_EQ(inserted.error().message, "cannot insert 'mod2': unknown symbol mod1_fn");
    EXPECT_EQ(kernel->module_state("mod2"), ModuleState::NotLoaded);
    EXPECT_TRUE(names(*kernel).empty());
    EXPECT_FALSE(fs::exists(state_file())) << "a refused insert changed the state";
}

TEST_F(SandboxKernelTest, TheSeedsStoryPlaysOutAsOnTheKernel)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", ""));
    ASSERT_TRUE(kernel->insert_module("/m/mod2.ko", ""));
    EXPECT_EQ(names(*kernel), (Names{"mod2", "mod1"})) << "most recently loaded first";

    auto mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 1);
    EXPECT_EQ(mod1->holders, (Names{"mod2"}));
    EXPECT_EQ(mod1->size, 16384U);
    EXPECT_EQ(mod1->state, ModuleState::Live);
    auto mod2 = kernel->loaded_module("mod2");
    ASSERT_TRUE(mod2);
    EXPECT_EQ(mod2->refcount, 0);
    EXPECT_TRUE(mod2->holders.empty());

    auto busy = kernel->remove_module("mod1");
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, EWOULDBLOCK) << "delete_module's errno for a module with users";
    EXPECT_EQ(busy.error().message, "'mod1' is in use by: mod2");
    EXPECT_EQ(kernel->module_state("mod1"), ModuleState::Live);

    ASSERT_TRUE(kernel->remove_module("mod2"));
    mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 0) << "removing the user drops its reference";
    EXPECT_TRUE(mod1->holders.empty());
    ASSERT_TRUE(kernel->remove_module("mod1"));
    EXPECT_TRUE(names(*kernel).empty());
    EXPECT_EQ(kernel->module_state("mod1"), ModuleState::NotLoaded);
}

TEST_F(SandboxKernelTest, AThirdUserCountsOnceForEachModuleItImportsFrom)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", ""));
    ASSERT_TRUE(kernel->insert_module("/m/mod2.ko", ""));
    // mod3 imports two symbols of mod1: still one reference on mod1.
    ASSERT_TRUE(kernel->insert_module("/m/mod3.ko", ""));
    EXPECT_EQ(names(*kernel), (Names{"mod3", "mod2", "mod1"}));

    auto mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 2);
    EXPECT_EQ(mod1->holders, (Names{"mod2", "mod3"}));
    auto mod2 = kernel->loaded_module("mod2");
    ASSERT_TRUE(mod2);
    EXPECT_EQ(mod2->refcount, 1);
    EXPECT_EQ(mod2->holders, (Names{"mod3"}));

    auto busy = kernel->remove_module("mod1");
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().message, "'mod1' is in use by: mod2, mod3");
    ASSERT_TRUE(kernel->remove_module("mod3"));
    mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 1);
    EXPECT_EQ(mod1->holders, (Names{"mod2"}));
    mod2 = kernel->loaded_module("mod2");
    ASSERT_TRUE(mod2);
    EXPECT_EQ(mod2->refcount, 0);
}

TEST_F(SandboxKernelTest, InsertingALoadedModuleAgainFailsWithEexistAndChangesNothing)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", "debug=1"));
    auto again = kernel->insert_module("/m/mod1.ko", "debug=2");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, EEXIST);
    EXPECT_EQ(again.error().message, "cannot insert 'mod1': already loaded");
    EXPECT_EQ(names(*kernel), (Names{"mod1"}));
    EXPECT_EQ(kernel->loaded_module("mod1")->params, "debug=1");
}

TEST_F(SandboxKernelTest, TheParametersThatReachedTheKernelAreRecorded)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", "debug=1 name=\"a b\""));
    ASSERT_TRUE(kernel->insert_module("/m/mod2.ko", ""));
    auto loaded = kernel->loaded_modules();
    ASSERT_TRUE(loaded);
    ASSERT_EQ(loaded->size(), 2U);
    EXPECT_EQ((*loaded)[0].params, "");
    EXPECT_EQ((*loaded)[1].params, "debug=1 name=\"a b\"");
}

TEST_F(SandboxKernelTest, RemovingAModuleThatIsNotLoadedFailsWithEnoent)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    auto removed = kernel->remove_module("mod1");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().code, ENOENT);
    EXPECT_EQ(removed.error().message, "'mod1' is not loaded");
    auto module = kernel->loaded_module("mod1");
    ASSERT_FALSE(module);
    EXPECT_EQ(module.error().code, ENOENT);
}

TEST_F(SandboxKernelTest, AModuleExportingASymbolALoadedModuleExportsIsRefusedAsTheKernelDoes)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/helper.ko", ""));
    auto duplicate = kernel->insert_module("/m/helper-copy.ko", "");
    ASSERT_FALSE(duplicate);
    EXPECT_EQ(duplicate.error().code, ENOEXEC);
    EXPECT_EQ(duplicate.error().message,
              "cannot insert 'helper_copy': it exports helper_fn, which 'helper' already exports");
    EXPECT_EQ(kernel->module_state("helper_copy"), ModuleState::NotLoaded);
}

TEST_F(SandboxKernelTest, SymbolsNoModuleProvidesCountAsTheKernelImagesOnlyWhenThePredicateSaysSo)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    // printk is the kernel's (mod1 loads alone); helper_missing is a module symbol nobody has.
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", ""));
    EXPECT_EQ(kernel->loaded_module("mod1")->refcount, 0);
    auto orphan = kernel->insert_module("/m/needs-helper-gone.ko", "");
    ASSERT_FALSE(orphan);
    EXPECT_EQ(orphan.error().message, "cannot insert 'orphan': unknown symbol helper_missing");

    auto lenient = make_sandbox_kernel((dir_ / "other").string(), modules_.inspector(), {});
    ASSERT_TRUE(lenient);
    EXPECT_TRUE((*lenient)->insert_module("/m/needs-helper-gone.ko", ""))
        << "without a predicate every symbol no module exports is the kernel's";
}

TEST_F(SandboxKernelTest, AFileTheInspectorCannotReadFailsWithItsErrorAndThePath)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    auto missing = kernel->insert_module("/m/nope.ko", "");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ENOENT);
    EXPECT_EQ(missing.error().message,
              "cannot insert '/m/nope.ko': '/m/nope.ko': No such file or directory");
    auto nameless = kernel->insert_module("/m/nameless.ko", "");
    ASSERT_FALSE(nameless);
    EXPECT_EQ(nameless.error().code, ENOEXEC);
}

TEST_F(SandboxKernelTest, TheStateSurvivesRecreatingTheSandboxOnTheSameDirectory)
{
    {
        auto kernel = make_kernel();
        ASSERT_TRUE(kernel);
        ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", "debug=1"));
        ASSERT_TRUE(kernel->insert_module("/m/mod2.ko", ""));
        ASSERT_TRUE(kernel->insert_module("/m/mod3.ko", ""));
        ASSERT_TRUE(kernel->remove_module("mod3"));
    }
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    EXPECT_EQ(names(*kernel), (Names{"mod2", "mod1"}));
    auto mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->refcount, 1);
    EXPECT_EQ(mod1->holders, (Names{"mod2"}));
    EXPECT_EQ(mod1->params, "debug=1");
    EXPECT_EQ(mod1->size, 16384U);
    // The exports survive too: a second copy of mod1's symbols is still refused, and mod2
    // still holds mod1.
    EXPECT_EQ(kernel->insert_module("/m/mod1.ko", "").error().code, EEXIST);
    EXPECT_EQ(kernel->remove_module("mod1").error().code, EWOULDBLOCK);
    ASSERT_TRUE(kernel->insert_module("/m/mod3.ko", ""));
    EXPECT_EQ(kernel->loaded_module("mod2")->holders, (Names{"mod3"}));
}

TEST_F(SandboxKernelTest, TheStateDirectoryIsCreatedAndHoldsOnlyTheStateFile)
{
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    EXPECT_TRUE(fs::is_directory(state_dir_));
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", ""));
    std::set<std::string> entries;
    for (const auto& entry : fs::directory_iterator(state_dir_))
        entries.insert(entry.path().filename().string());
    EXPECT_EQ(entries, (std::set<std::string>{kSandboxStateFile}));
    std::string text = test::slurp(state_file());
    EXPECT_NE(text.find("\"mod1_fn\""), std::string::npos) << text;
}

TEST_F(SandboxKernelTest, ACorruptStateFileIsReportedWithTheFileAndTheProblem)
{
    write_state("{\"format\": \"kmodd-sandbox-kernel\", \"version\": 1, \"modules\": [");
    auto kernel = make_sandbox_kernel(state_dir_, modules_.inspector(), is_module_symbol);
    ASSERT_FALSE(kernel);
    EXPECT_EQ(kernel.error().code, EINVAL);
    const std::string& message = kernel.error().message;
    EXPECT_TRUE(message.starts_with("'" + state_file().string() + "': ")) << message;
    EXPECT_NE(message.find("parse error"), std::string::npos) << message;
    EXPECT_EQ(message.find("[json.exception"), std::string::npos) << message;
}

TEST_F(SandboxKernelTest, AStateFileOfTheWrongShapeIsReportedNotTrusted)
{
    struct Case {
        std::string text;
        std::string problem;
    };
    const std::string head = R"({"format": "kmodd-sandbox-kernel", "version": 1, "modules": )";
    const std::string mod1 =
        R"({"name": "mod1", "path": "/m/mod1.ko", "size": 1, "params": "", "exports": ["mod1_fn"], "uses": []})";
    const std::vector<Case> cases = {
        {"[]", "not a JSON object"},
        {R"({"format": "other", "version": 1, "modules": []})", "\"format\""},
        {R"({"format": "kmodd-sandbox-kernel", "version": 2, "modules": []})", "\"version\""},
        {head + "{}}", "\"modules\" is not an array"},
        {head + R"([{"name": "mod1"}]})", "module 1 ('mod1'): \"path\" is not a string"},
        {head +
             R"([{"name": "mod1", "path": "", "size": -1, "params": "", "exports": [], "uses": []}]})",
         "\"size\" is not an unsigned integer"},
        {head + "[" + mod1 + ", " + mod1 + "]}", "'mod1' is listed twice"},
        {head +
             R"([{"name": "mod2", "path": "", "size": 1, "params": "", "exports": ["mod1_fn"], "uses": []}, )" +
             mod1 + "]}",
         "symbol mod1_fn is exported by both 'mod1' and 'mod2'"},
        // The user listed before (loaded after) its provider is the only valid order.
        {head + "[" + mod1 +
             R"(, {"name": "mod2", "path": "", "size": 1, "params": "", "exports": [], "uses": ["mod1"]}]})",
         "'mod2' uses 'mod1', which is not loaded before it"},
    };
    for (const Case& c : cases) {
        write_state(c.text);
        auto kernel = make_sandbox_kernel(state_dir_, modules_.inspector(), is_module_symbol);
        ASSERT_FALSE(kernel) << c.text;
        EXPECT_EQ(kernel.error().code, EINVAL);
        EXPECT_NE(kernel.error().message.find(c.problem), std::string::npos)
            << kernel.error().message << "\nfor: " << c.text;
    }
}

TEST_F(SandboxKernelTest, AValidHandWrittenStateFileIsRead)
{
    write_state(
        R"({"format": "kmodd-sandbox-kernel", "version": 1, "modules": [
          {"name": "mod2", "path": "/m/mod2.ko", "size": 2, "params": "x=1", "exports": [], "uses": ["mod1"]},
          {"name": "mod1", "path": "/m/mod1.ko", "size": 1, "params": "", "exports": ["mod1_fn"], "uses": []}]})");
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    EXPECT_EQ(names(*kernel), (Names{"mod2", "mod1"}));
    EXPECT_EQ(kernel->loaded_module("mod1")->holders, (Names{"mod2"}));
    EXPECT_EQ(kernel->loaded_module("mod2")->params, "x=1");
}

TEST_F(SandboxKernelTest, AStateThatCannotBeSavedLeavesTheSandboxAsItWas)
{
    if (::geteuid() == 0)
        GTEST_SKIP() << "root writes into a read-only directory";
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    ASSERT_TRUE(kernel->insert_module("/m/mod1.ko", ""));
    fs::permissions(state_dir_, fs::perms::owner_read | fs::perms::owner_exec);
    auto inserted = kernel->insert_module("/m/mod2.ko", "");
    fs::permissions(state_dir_, fs::perms::owner_all);
    ASSERT_FALSE(inserted);
    EXPECT_NE(inserted.error().message.find("cannot save the sandbox state"), std::string::npos)
        << inserted.error().message;
    EXPECT_EQ(names(*kernel), (Names{"mod1"}));
}

TEST_F(SandboxKernelTest, AStateFileThatCannotBeReadOrReplacedChangesNothing)
{
    // Works as root too: a directory in place of the state file can be neither read nor
    // replaced. Every change reads the state first (another process may have changed it).
    auto kernel = make_kernel();
    ASSERT_TRUE(kernel);
    fs::create_directories(state_file() / "blocker");
    auto inserted = kernel->insert_module("/m/mod1.ko", "");
    ASSERT_FALSE(inserted);
    EXPECT_NE(inserted.error().message.find("cannot insert 'mod1': cannot read the sandbox state"),
              std::string::npos)
        << inserted.error().message;
    EXPECT_EQ(kernel->module_state("mod1"), ModuleState::NotLoaded);
    EXPECT_FALSE(kernel->loaded_modules()) << "the state cannot be read";
    fs::remove_all(state_file());
    EXPECT_TRUE(kernel->insert_module("/m/mod1.ko", "")) << "usable again once the file is";
}

TEST_F(SandboxKernelTest, TwoKernelsOnOneDirectorySeeEachOthersChangesAsProcessesWould)
{
    // As kmodd and kmodctl, or a modprobe run by an install command and its parent.
    auto first = make_kernel();
    auto second = make_kernel();
    ASSERT_TRUE(first && second);
    ASSERT_TRUE(first->insert_module("/m/mod1.ko", ""));
    EXPECT_EQ(second->module_state("mod1"), ModuleState::Live);
    ASSERT_TRUE(second->insert_module("/m/mod2.ko", "")) << "mod1's symbols are there";
    auto again = first->insert_module("/m/mod2.ko", "");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, EEXIST);
    auto removed = first->remove_module("mod1");
    ASSERT_FALSE(removed);
    EXPECT_EQ(removed.error().code, EWOULDBLOCK) << "mod2, loaded by the other, holds it";
    auto loaded = first->loaded_modules();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->size(), 2U);
}

TEST_F(SandboxKernelTest, AMissingInspectorIsRefused)
{
    auto kernel = make_sandbox_kernel(state_dir_, {}, is_module_symbol);
    ASSERT_FALSE(kernel);
    EXPECT_EQ(kernel.error().code, EINVAL);
}

} // namespace
} // namespace kmodd::sys
