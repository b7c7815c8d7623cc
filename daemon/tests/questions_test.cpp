// SPDX-License-Identifier: LGPL-2.1-or-later
// The questions desktop tools and people ask kmodd, end to end on a private bus in sandbox
// mode: Explain (why is it loaded), ListHolders / PlanUnload (what needs it, what would go),
// FindModules, and the calls and the Kernels property for every installed kernel.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "daemon_harness.hpp"

namespace kmodd::daemon::test {
namespace {

using kmodd::test::run_shell;
using Names = std::vector<std::string>;
using Info = std::map<std::string, sdbus::Variant>;
using UserRow = sdbus::Struct<std::string, std::string, bool>;
using FoundRow = sdbus::Struct<std::string, std::string, std::string, std::string>;
using KernelRow = sdbus::Struct<std::string, uint32_t, std::string, std::string>;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
fs::path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

template <class T> T value_of(const Info& info, const std::string& key)
{
    auto it = info.find(key);
    if (it == info.end())
        return T{};
    return it->second.get<T>();
}

std::string joined_lines(const Info& explanation)
{
    std::string text;
    for (const auto& line : value_of<Names>(explanation, "lines"))
        text += line + "\n";
    return text;
}

std::string own_command()
{
    std::string comm = kmodd::test::slurp("/proc/self/comm");
    while (!comm.empty() && comm.back() == '\n')
        comm.pop_back();
    return comm;
}

/// The fixtures' story: mod2 and mod3 need mod1, whose softdeps are mod3 (pre) and
/// crc_helper (post), so loading mod2 brings all four; blockdev and devname_only are loaded
/// by others, before and after kmodd starts.
class Questions : public ::testing::Test {
protected:
    void SetUp() override
    {
        for (const char* name : {"mod1", "mod2", "mod3", "crc_helper", "blockdev", "devname_only"})
            setup_.tree().add(std::string("kernel/a/") + name + ".ko", fixture(name));
        config_ = setup_.tree().root() / "modprobe.conf";
        std::ofstream(config_) << "alias mod2-also mod2\n";
        // Loaded before kmodd starts, into the same sandbox kernel, as an initramfs would.
        std::string output;
        ASSERT_EQ(run_shell(std::string(KMODD_KMODCTL) + " depmod -b '" +
                                setup_.tree().root().string() + "' " + setup_.tree().version(),
                            &output),
                  0)
            << output;
        ASSERT_EQ(modprobe("blockdev"), 0);
        ASSERT_TRUE(start());
    }

    /// kmodd keeps its records apart from the sandbox's, where kmodctl modprobe keeps its own.
    bool start()
    {
        return setup_.start({"--modprobe-config", config_.string(), "--state-dir",
                             (setup_.tree().root() / "records").string()});
    }

    /// kmod-style modprobe into the sandbox kernel, beside kmodd.
    int modprobe(const std::string& module)
    {
        std::string output;
        const int status =
            run_shell(std::string(KMODD_KMODCTL) + " modprobe --sandbox-kernel='" +
                          setup_.state_dir().string() + "' -d '" + setup_.tree().root().string() +
                          "' -S " + setup_.tree().version() + " " + module,
                      &output);
        EXPECT_EQ(status, 0) << output;
        return status;
    }

    std::string kmodctl(const std::string& command, int* status = nullptr)
    {
        std::string output;
        const int code = run_shell(std::string(KMODD_KMODCTL) + " --bus '" + setup_.address() +
                                       "' " + command + " 2>&1",
                                   &output);
        if (status != nullptr)
            *status = code;
        return output;
    }

    Info explain(const std::string& module)
    {
        auto result = setup_.client().call<Info>("Explain", module);
        EXPECT_TRUE(result) << module << ": " << result.error_message;
        return result ? *result.value : Info{};
    }

    DaemonSetup setup_;
    fs::path config_;
};

TEST_F(Questions, ExplainSaysWhoAskedWhatForAndWhatKmoddCannotKnow)
{
    Client& client = setup_.client();
    auto loaded = client.load("mod2");
    ASSERT_TRUE(loaded) << loaded.error_message;
    ASSERT_EQ(loaded.value->size(), 4U);
    // mod3 came as a softdep; now a user asks for it by name: it becomes theirs.
    int status = 0;
    EXPECT_EQ(kmodctl("load mod3", &status), "");
    ASSERT_EQ(status, 0);
    ASSERT_EQ(modprobe("devname_only"), 0); // beside kmodd, after its start

    // mod2: asked for over D-Bus by this test process.
    Info mod2 = explain("mod2");
    EXPECT_EQ(value_of<std::string>(mod2, "origin"), dbus::kOriginExplicit);
    EXPECT_EQ(value_of<uint32_t>(mod2, "requested_by_uid"), ::getuid());
    EXPECT_EQ(value_of<std::string>(mod2, "requested_by_command"), own_command());
    EXPECT_TRUE(value_of<std::string>(mod2, "requested_by_bus_name").starts_with(":"));
    const uint64_t since = value_of<uint64_t>(mod2, "since_usec");
    EXPECT_GT(since, 0U);

    // mod3: kmodctl asked; it keeps the time it was loaded at.
    Info mod3 = explain("mod3");
    EXPECT_EQ(value_of<std::string>(mod3, "origin"), dbus::kOriginExplicit);
    EXPECT_EQ(value_of<std::string>(mod3, "requested_by_command"), "kmodctl");
    EXPECT_LE(value_of<uint64_t>(mod3, "since_usec"), since);
    EXPECT_NE(joined_lines(mod3).find("because kmodctl (uid "), std::string::npos)
        << joined_lines(mod3);

    // mod1: a dependency of mod2, the chain followed to who asked.
    Info mod1 = explain("mod1");
    EXPECT_EQ(value_of<std::string>(mod1, "origin"), dbus::kOriginDependency);
    EXPECT_EQ(value_of<std::vector<UserRow>>(mod1, "needed_by"),
              (std::vector<UserRow>{{"mod2", "dependency", true}}));
    EXPECT_EQ(value_of<Names>(mod1, "holders"), (Names{"mod2", "mod3"}));
    const std::string mod1_text = joined_lines(mod1);
    EXPECT_NE(mod1_text.find("'mod1' was loaded by kmodd at "), std::string::npos) << mod1_text;
    EXPECT_NE(mod1_text.find(" as a dependency of 'mod2'."), std::string::npos) << mod1_text;
    EXPECT_NE(mod1_text.find("\n  'mod2' was loaded by kmodd at "), std::string::npos) << mod1_text;
    EXPECT_NE(mod1_text.find("because " + own_command() + " (uid "), std::string::npos)
        << mod1_text;
    EXPECT_NE(mod1_text.find("Used by: mod2, mod3."), std::string::npos) << mod1_text;

    // crc_helper: a softdep (of mod1) that the load of mod2 brought.
    Info helper = explain("crc_helper");
    EXPECT_EQ(value_of<std::vector<UserRow>>(helper, "needed_by"),
              (std::vector<UserRow>{{"mod2", "softdep", true}}));
    EXPECT_NE(joined_lines(helper).find("as a softdep brought by loading 'mod2'"),
              std::string::npos)
        << joined_lines(helper);

    // Loaded by others: before kmodd started, and beside it later.
    Info before = explain("blockdev");
    EXPECT_EQ(value_of<std::string>(before, "origin"), dbus::kOriginExternal);
    EXPECT_TRUE(value_of<bool>(before, "loaded_before_start"));
    EXPECT_NE(joined_lines(before).find("was loaded before kmodd started"), std::string::npos)
        << joined_lines(before);
    Info beside = explain("devname_only");
    EXPECT_FALSE(value_of<bool>(beside, "loaded_before_start"));
    EXPECT_NE(joined_lines(beside).find("beside kmodd after it started"), std::string::npos)
        << joined_lines(beside);

    // By alias; not loaded; unknown; malformed.
    EXPECT_EQ(value_of<std::string>(explain("mod2-also"), "name"), "mod2");
    ASSERT_TRUE(client.unload("devname_only"));
    Info gone = explain("devname_only");
    EXPECT_FALSE(value_of<bool>(gone, "loaded"));
    EXPECT_EQ(value_of<Names>(gone, "lines"), (Names{"'devname_only' is not loaded."}));
    EXPECT_EQ(client.call<Info>("Explain", std::string("no_such_module")).error_name,
              dbus::kErrorNotFound);
    EXPECT_EQ(client.call<Info>("Explain", std::string("a/b")).error_name, dbus::kErrorInvalidName);

    // The records survive a restart; kmodctl prints the lines, --json the dict.
    ASSERT_TRUE(setup_.stop());
    ASSERT_TRUE(start()) << setup_.log();
    EXPECT_EQ(value_of<std::string>(explain("mod2"), "requested_by_command"), own_command());
    EXPECT_EQ(value_of<uint64_t>(explain("mod2"), "since_usec"), since);
    const std::string text = kmodctl("why mod1");
    EXPECT_NE(text.find("'mod1' was loaded by kmodd at "), std::string::npos) << text;
    EXPECT_NE(text.find("Used by: mod2, mod3."), std::string::npos) << text;
    auto json = nlohmann::json::parse(kmodctl("why mod1 --json"));
    EXPECT_EQ(json["origin"], "dependency");
    EXPECT_EQ(json["needed_by"][0][0], "mod2");
}

TEST_F(Questions, HoldersUsersAndTheUnloadPlanMatchWhatUnloadThenDoes)
{
    Client& client = setup_.client();
    ASSERT_TRUE(client.load("mod2"));

    auto mod1 = client.list_holders("mod1");
    ASSERT_TRUE(mod1) << mod1.error_message;
    EXPECT_EQ(mod1.value->holders, (Names{"mod2", "mod3"}));
    EXPECT_EQ(mod1.value->users, (Names{"mod2", "mod3"}));
    EXPECT_TRUE(mod1.value->unload.empty());
    EXPECT_EQ(mod1.value->unload_error, "Module 'mod1' is in use by: mod2, mod3");
    EXPECT_EQ(client.call<Names>("PlanUnload", std::string("mod1")).error_name, dbus::kErrorInUse);
    EXPECT_EQ(kmodctl("rdeps mod1"), "holders: mod2 mod3\nusers: mod2 mod3\nunload: (not "
                                     "possible) Module 'mod1' is in use by: mod2, mod3\n");

    // mod2 goes with everything its load brought: its softdeps first, then mod1.
    auto plan = client.call<Names>("PlanUnload", std::string("mod2"));
    ASSERT_TRUE(plan) << plan.error_message;
    EXPECT_EQ(*plan.value, (Names{"mod2", "mod3", "crc_helper", "mod1"}));
    EXPECT_EQ(kmodctl("unload --dry-run mod2"), "mod2\nmod3\ncrc_helper\nmod1\n");
    EXPECT_EQ(client.origin_of("mod2"), dbus::kOriginExplicit) << "a plan changes nothing";
    auto mod2 = client.list_holders("mod2");
    ASSERT_TRUE(mod2);
    EXPECT_TRUE(mod2.value->holders.empty());
    EXPECT_EQ(mod2.value->unload, *plan.value);
    EXPECT_EQ(mod2.value->unload_error, "");

    // Once a user asks for mod3 by name, it stays, and so does mod1 under it.
    ASSERT_TRUE(client.load("mod3"));
    plan = client.call<Names>("PlanUnload", std::string("mod2"));
    ASSERT_TRUE(plan) << plan.error_message;
    EXPECT_EQ(*plan.value, (Names{"mod2", "crc_helper"}));
    auto removed = client.unload("mod2");
    ASSERT_TRUE(removed) << removed.error_message;
    EXPECT_EQ(*removed.value, *plan.value);

    EXPECT_EQ(client.call<Names>("PlanUnload", std::string("mod2")).error_name,
              dbus::kErrorNotFound);
    // Loaded by someone else: unloading it removes only it.
    auto external = client.call<Names>("PlanUnload", std::string("blockdev"));
    ASSERT_TRUE(external) << external.error_message;
    EXPECT_EQ(*external.value, (Names{"blockdev"}));
}

TEST_F(Questions, FindModulesSearchesNamesAliasesAndDescriptions)
{
    Client& client = setup_.client();
    auto names = client.call<std::vector<FoundRow>>("FindModules", std::string("MOD?"));
    ASSERT_TRUE(names) << names.error_message;
    ASSERT_EQ(names.value->size(), 3U);
    EXPECT_EQ((*names.value)[0], (FoundRow{"mod1", "", "name", "mod1"}));
    EXPECT_EQ((*names.value)[2].get<0>(), "mod3");

    auto alias = client.call<std::vector<FoundRow>>("FindModules", std::string("loop-control"));
    ASSERT_TRUE(alias) << alias.error_message;
    ASSERT_EQ(alias.value->size(), 1U);
    EXPECT_EQ((*alias.value)[0],
              (FoundRow{"blockdev", "Loop block device stand-in", "alias", "devname:loop_control"}))
        << "the index keeps aliases with '_' for '-'";

    auto description =
        client.call<std::vector<FoundRow>>("FindModules", std::string("device STAND"));
    ASSERT_TRUE(description) << description.error_message;
    ASSERT_EQ(description.value->size(), 1U);
    EXPECT_EQ((*description.value)[0].get<2>(), "description");

    // A module file changed in place: its new description is found, the old one is not.
    const fs::path blockdev = setup_.tree().module_dir() / "kernel/a/blockdev.ko";
    std::string image = kmodd::test::slurp(blockdev);
    const std::string old_text = "Loop block device stand-in";
    image.replace(image.find(old_text), old_text.size(), "Loop block device standby!");
    std::ofstream(blockdev, std::ios::binary | std::ios::trunc) << image;
    ASSERT_TRUE(wait_until([&] {
        auto found = client.call<std::vector<FoundRow>>("FindModules", std::string("standby"));
        return found && found.value->size() == 1U;
    })) << setup_.log();
    auto stale = client.call<std::vector<FoundRow>>("FindModules", std::string("stand-in"));
    ASSERT_TRUE(stale);
    EXPECT_TRUE(stale.value->empty());

    EXPECT_EQ(client.call<std::vector<FoundRow>>("FindModules", std::string()).error_name,
              dbus::kErrorInvalidName);
    EXPECT_EQ(client.call<std::vector<FoundRow>>("FindModules", std::string("a\nb")).error_name,
              dbus::kErrorInvalidName);
    EXPECT_EQ(kmodctl("find loop-control"),
              "blockdev  Loop block device standby!  [alias devname:loop_control]\n");
}

TEST_F(Questions, EveryInstalledKernelIsListedAndAnsweredFor)
{
    Client& client = setup_.client();
    const std::string other = "6.2.0-other";
    const fs::path other_dir = setup_.tree().root() / "lib/modules" / other;
    fs::create_directories(other_dir / "kernel");
    fs::copy_file(fixture("mod1"), other_dir / "kernel/mod1.ko");
    const std::string served = setup_.tree().version();
    ASSERT_TRUE(wait_until([&] {
        auto kernels = client.property<std::vector<KernelRow>>("Kernels");
        return kernels && kernels->size() == 2U;
    })) << setup_.log();
    EXPECT_EQ(*client.property<std::vector<KernelRow>>("Kernels"),
              (std::vector<KernelRow>{{served, 6, "indexed", ""}, {other, 1, "indexed", ""}}));

    auto deps = client.call<Names>("ListDepsForKernel", other, std::string("mod1"));
    ASSERT_TRUE(deps) << deps.error_message;
    EXPECT_EQ(*deps.value, (Names{"mod1"}));
    EXPECT_EQ(client.call<Names>("ListDepsForKernel", other, std::string("mod2")).error_name,
              dbus::kErrorNotFound);
    EXPECT_EQ(client.call<Names>("ListDepsForKernel", std::string("9.9.9"), std::string("mod1"))
                  .error_name,
              dbus::kErrorNotFound);
    EXPECT_EQ(client.call<Names>("ListDepsForKernel", std::string("../x"), std::string("mod1"))
                  .error_name,
              dbus::kErrorInvalidName);
    auto served_deps =
        client.call<Names>("ListDepsForKernel", std::string(), std::string("blockdev"));
    ASSERT_TRUE(served_deps);
    EXPECT_EQ(*served_deps.value, (Names{"blockdev"}));

    auto info = client.call<Info>("GetModuleInfoForKernel", other, std::string("mod1"));
    ASSERT_TRUE(info) << info.error_message;
    EXPECT_EQ(value_of<std::string>(*info.value, "path"), (other_dir / "kernel/mod1.ko").string());

    // The other kernel gains a module: the property and the answers follow.
    fs::copy_file(fixture("mod2"), other_dir / "kernel/mod2.ko");
    ASSERT_TRUE(wait_until([&] {
        auto found = client.call<Names>("ListDepsForKernel", other, std::string("mod2"));
        return found && *found.value == Names{"mod1", "mod2"};
    })) << setup_.log();
    EXPECT_EQ(*client.property<std::vector<KernelRow>>("Kernels"),
              (std::vector<KernelRow>{{served, 6, "indexed", ""}, {other, 2, "indexed", ""}}));
    auto users = client.call<Names>("ListUsersForKernel", other, std::string("mod1"));
    ASSERT_TRUE(users);
    EXPECT_EQ(*users.value, (Names{"mod2"}));
    auto found =
        client.call<std::vector<FoundRow>>("FindModulesForKernel", other, std::string("mod*"));
    ASSERT_TRUE(found);
    EXPECT_EQ(found.value->size(), 2U);

    EXPECT_EQ(kmodctl("--kernel " + other + " deps mod2"), "mod1\nmod2\n");
    EXPECT_EQ(kmodctl("rdeps --kernel=" + other + " mod1"), "users: mod2\n");
    const std::string table = kmodctl("kernels");
    EXPECT_NE(table.find(served), std::string::npos) << table;
    EXPECT_NE(table.find("(served)"), std::string::npos) << table;
    int status = 0;
    kmodctl("--kernel " + other + " why mod1", &status);
    EXPECT_EQ(status, 2) << "why is about the running kernel";

    // The other kernel is removed: it leaves the list.
    fs::remove_all(other_dir);
    EXPECT_TRUE(wait_until([&] {
        auto kernels = client.property<std::vector<KernelRow>>("Kernels");
        return kernels && kernels->size() == 1U;
    })) << setup_.log();
}

TEST_F(Questions, DiagnoseGivesHowTheLastLoadOfANameEnded)
{
    // mod1 has the parameter debug: the other one is ignored by the kernel, a warning here.
    int status = 0;
    const std::string output = kmodctl("load mod1 nosuch=1 debug=3", &status);
    ASSERT_EQ(status, 0) << output;
    EXPECT_NE(output.find("kmodctl: warning: mod1: unknown parameter 'nosuch': the kernel "
                          "ignores it"),
              std::string::npos)
        << output;
    auto outcome = setup_.client().call<Info>("Diagnose", std::string("mod1"));
    ASSERT_TRUE(outcome) << outcome.error_message;
    EXPECT_TRUE(value_of<bool>(*outcome.value, "loaded"));
    EXPECT_EQ(value_of<std::string>(*outcome.value, "params"), "nosuch=1 debug=3");
    EXPECT_EQ(value_of<Names>(*outcome.value, "warnings").size(), 1U);

    // --json: what was inserted and the outcome; a failure also names the error.
    auto loaded = nlohmann::json::parse(kmodctl("--json load mod2", &status));
    ASSERT_EQ(status, 0);
    EXPECT_EQ(loaded["inserted"], nlohmann::json::array({"mod2"}));
    EXPECT_EQ(loaded["diagnosis"]["loaded"], true);
    const std::string failed = kmodctl("load --json kmodd_no_such_module", &status);
    EXPECT_EQ(status, 1) << failed;
    // The JSON on stdout, the error line on stderr (here both in one text).
    const size_t json_at = failed.find('{');
    ASSERT_NE(json_at, std::string::npos) << failed;
    auto refused =
        nlohmann::json::parse(failed.substr(json_at, failed.find('\n', json_at) - json_at));
    EXPECT_EQ(refused["error"], "org.kmodd1.Error.NotFound");
    EXPECT_EQ(refused["diagnosis"]["loaded"], false);
    EXPECT_EQ(refused["diagnosis"]["error"], "org.kmodd1.Error.NotFound");
    EXPECT_NE(failed.find("kmodctl: "), std::string::npos) << "the error line stays: " << failed;

    auto never = setup_.client().call<Info>("Diagnose", std::string("devname_only"));
    ASSERT_FALSE(never);
    EXPECT_EQ(never.error_name, "org.kmodd1.Error.NotFound");
}

} // namespace
} // namespace kmodd::daemon::test
