// SPDX-License-Identifier: LGPL-2.1-or-later
// What the module request tests share: a temporary tree indexed by the engine, the sandbox
// kernel (or a kernel whose inserts wait at a gate), a ModuleService over them, and helpers.
#pragma once

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

namespace kmodd::service::test_support {

using namespace std::chrono_literals;
using test::TempTree;
namespace fs = test::fs;
using Names = std::vector<std::string>;

inline const fs::path kFixtures = KMODD_FIXTURE_MODULES;
inline const char* const kKmodModprobe = "/usr/sbin/modprobe";
inline const char* const kKmodModinfo = "/usr/sbin/modinfo";

inline fs::path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

template <class T> inline std::string describe(const RequestResult<T>& result)
{
    return result ? std::string("success") : result.error().message;
}

inline Names names_of(const std::vector<LoadedEntry>& entries)
{
    Names names;
    for (const LoadedEntry& entry : entries)
        names.push_back(entry.name);
    return names;
}

inline const LoadedEntry* entry_named(const std::vector<LoadedEntry>& entries,
                                      const std::string& name)
{
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const LoadedEntry& entry) { return entry.name == name; });
    return it == entries.end() ? nullptr : &*it;
}

/// The module names of kmod's `modprobe -D` output: insmod <path> and builtin <name> lines.
inline Names modprobe_show_depends_names(const std::string& output)
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

} // namespace kmodd::service::test_support
