// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd against the callers it must survive and refuse, end to end on a private bus: malformed
// requests get error replies, and a user other than root or the bus owner may read everything
// but change nothing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>

#include "daemon_harness.hpp"

namespace kmodd::daemon::test {
namespace {

using kmodd::test::run_shell;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
fs::path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

TEST(Kmodd, BadRequestsGetErrorRepliesAndTheDaemonKeepsServing)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    ASSERT_TRUE(setup.start()) << setup.log();
    Client& client = setup.client();

    EXPECT_EQ(client.load("").error_name, dbus::kErrorInvalidName);
    EXPECT_EQ(client.load("../../etc/passwd").error_name, dbus::kErrorInvalidName);
    EXPECT_EQ(client.load(std::string(300, 'a')).error_name, dbus::kErrorInvalidName);
    EXPECT_EQ(client.load("mod2", "a=1\nb=2").error_name, dbus::kErrorInvalidName);
    EXPECT_EQ(client.unload("with space").error_name, dbus::kErrorInvalidName);
    EXPECT_EQ(client.list_deps("mod\x01").error_name, dbus::kErrorInvalidName);
    auto missing = client.load("no_such_module");
    EXPECT_EQ(missing.error_name, dbus::kErrorNotFound);
    EXPECT_NE(missing.error_message.find("no_such_module"), std::string::npos)
        << missing.error_message;
    EXPECT_EQ(client.unload("mod1").error_name, dbus::kErrorNotFound) << "not loaded";
    EXPECT_EQ(client.module_info("nothing").error_name, dbus::kErrorNotFound);
    EXPECT_EQ(client.rebuild("no-such-release").error_name, dbus::kErrorNotFound);
    EXPECT_EQ(client.rebuild("../x").error_name, dbus::kErrorInvalidName);

    // In use: the message names the holder.
    ASSERT_TRUE(client.load("mod2"));
    auto busy = client.unload("mod1");
    EXPECT_EQ(busy.error_name, dbus::kErrorInUse);
    EXPECT_NE(busy.error_message.find("mod2"), std::string::npos) << busy.error_message;

    // Wrong signatures are refused by the bus layer, and the daemon stays.
    std::string output;
    EXPECT_NE(
        run_shell(setup.busctl() + " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager Load s mod2",
                  &output),
        0);
    EXPECT_TRUE(setup.process().is_running());
    auto info = client.module_info("mod1");
    ASSERT_TRUE(info) << info.error_message;
    EXPECT_EQ(info.value->at("license").get<std::string>(), "GPL");
    EXPECT_NE(info.value->at("path").get<std::string>().find("kernel/a/mod1.ko"),
              std::string::npos);
}

TEST(Kmodd, CallersOtherThanRootOrTheBusOwnerMayReadButNotChange)
{
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to run a client as another user";
    DaemonSetup setup("6.1.0-test", /*open_to_all_users=*/true);
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    ASSERT_TRUE(setup.start()) << setup.log();
    const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";

    std::string output;
    EXPECT_EQ(run_shell(as_nobody + setup.busctl() +
                            " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager ListDeps s mod2",
                        &output),
              0)
        << output;
    EXPECT_NE(output.find("\"mod1\" \"mod2\""), std::string::npos) << output;

    for (const std::string call : {"Load ss mod2 ''", "Unload s mod2", "Rebuild s ''"}) {
        EXPECT_NE(run_shell(as_nobody + setup.busctl() +
                                " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager " + call,
                            &output),
                  0)
            << call;
        EXPECT_NE(output.find("Not allowed"), std::string::npos) << call << ": " << output;
    }
    // kmodctl says so in one line and exits with 4, as systemctl does.
    for (const std::string command : {"load mod2", "unload mod2", "rebuild"}) {
        const int status = run_shell(
            as_nobody + KMODD_KMODCTL + " --bus '" + setup.address() + "' " + command, &output);
        EXPECT_EQ(status, 4) << command << ": " << output;
        EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
        EXPECT_NE(output.find("kmodctl: Not allowed to "), std::string::npos) << output;
        EXPECT_NE(output.find("Run it as root"), std::string::npos) << output;
    }
    auto loaded = setup.client().list_loaded();
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(loaded.value->empty()) << "nothing was loaded for the refused caller";

    // The whole sweep: every method that only reads answers the other user, every one that
    // changes is refused before it reaches the kernel or the records.
    ASSERT_TRUE(setup.client().load("mod2"));
    const std::string records = kmodd::test::slurp(setup.state_dir() / "loaded.json");
    const std::string kernel = kmodd::test::slurp(setup.state_dir() / "sandbox-kernel.json");
    for (const std::string call :
         {"ListDeps s mod2", "ListLoaded", "GetModuleInfo s mod2", "ListWaitingDevices",
          "Explain s mod1", "ListHolders s mod1", "PlanUnload s mod2", "FindModules s mod",
          "ListDepsForKernel ss '' mod2", "GetModuleInfoForKernel ss '' mod2",
          "ListUsersForKernel ss '' mod1", "FindModulesForKernel ss '' mod"}) {
        EXPECT_EQ(run_shell(as_nobody + setup.busctl() +
                                " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager " + call,
                            &output),
                  0)
            << call << ": " << output;
    }
    for (const std::string call : {"Load ss mod3 ''", "Load ss mod2 'x=1'", "Unload s mod2",
                                   "Unload s mod1", "Rebuild s 6.1.0-test"}) {
        EXPECT_NE(run_shell(as_nobody + setup.busctl() +
                                " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager " + call,
                            &output),
                  0)
            << call;
        EXPECT_NE(output.find("Not allowed"), std::string::npos) << call << ": " << output;
    }
    EXPECT_EQ(kmodd::test::slurp(setup.state_dir() / "loaded.json"), records)
        << "the records are as they were";
    EXPECT_EQ(kmodd::test::slurp(setup.state_dir() / "sandbox-kernel.json"), kernel)
        << "the kernel is as it was";
}

} // namespace
} // namespace kmodd::daemon::test
