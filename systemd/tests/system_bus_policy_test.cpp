// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs org.kmodd1.conf in a dbus-daemon configured like Debian's system bus, with a stand-in
// kmodd owning org.kmodd1 as root, and calls it with dbus-send as root and as nobody: proof
// that the policy parses and lets through exactly what its comment promises. Needs root (to
// own the name and to switch to nobody); skipped otherwise.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include "child_process.hpp"
#include "kmodd_dbus_names.hpp"
#include "sdbus_compat.hpp"
#include "test_bus.hpp"

namespace {

using kmodd::dbus::test::FakeManager;
using kmodd::dbus::test::PollLoop;
using kmodd::dbus::test::PrivateBus;

// The default policy of Debian 12's /usr/share/dbus-1/system.conf, then our file.
std::string system_bus_config()
{
    return "  <type>system</type>\n"
           "  <policy context=\"default\">\n"
           "    <allow user=\"*\"/>\n"
           "    <deny own=\"*\"/>\n"
           "    <deny send_type=\"method_call\"/>\n"
           "    <allow send_type=\"signal\"/>\n"
           "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
           "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
           "    <allow receive_type=\"method_call\"/>\n"
           "    <allow receive_type=\"method_return\"/>\n"
           "    <allow receive_type=\"error\"/>\n"
           "    <allow receive_type=\"signal\"/>\n"
           "    <allow send_destination=\"org.freedesktop.DBus\"\n"
           "           send_interface=\"org.freedesktop.DBus\"/>\n"
           "    <allow send_destination=\"org.freedesktop.DBus\"\n"
           "           send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
           "  </policy>\n"
           "  <include>" KMODD_BUS_POLICY "</include>\n";
}

struct Outcome {
    int status = -1;
    std::string output; // stdout, then stderr
};

Outcome run(const std::vector<std::string>& args)
{
    kmodd::test::Outcome done = kmodd::test::run_process(args);
    return {done.status, done.out + done.err};
}

class SystemBusPolicy : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "owning org.kmodd1 under the system policy and calling as nobody "
                            "need root";
        bus_ = std::make_unique<PrivateBus>(system_bus_config(), /*open_to_all_users=*/true);
        connection_ = sdbus::createSessionBusConnectionWithAddress(bus_->address());
        kmodd::dbus::request_name(*connection_, kmodd::dbus::kBusName);
        manager_ = std::make_unique<FakeManager>(*connection_);
        loop_ = std::make_unique<PollLoop>(*connection_);
    }

    void TearDown() override
    {
        loop_.reset();
        manager_.reset();
        connection_.reset();
        bus_.reset();
    }

    // dbus-send to kmodd's object; `as_nobody` runs it as uid/gid 65534 without groups.
    Outcome call(bool as_nobody, const std::string& method, std::vector<std::string> args = {},
                 const std::string& destination = kmodd::dbus::kBusName,
                 const std::string& path = kmodd::dbus::kObjectPath)
    {
        std::vector<std::string> argv;
        if (as_nobody)
            argv = {KMODD_SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"};
        std::vector<std::string> send{KMODD_DBUS_SEND,
                                      "--bus=" + bus_->address(),
                                      "--print-reply",
                                      "--reply-timeout=5000",
                                      "--dest=" + destination,
                                      path,
                                      method};
        argv.insert(argv.end(), send.begin(), send.end());
        for (auto& arg : args)
            argv.push_back(std::move(arg));
        return run(argv);
    }

    static constexpr bool kNobody = true;
    static constexpr bool kRoot = false;

    std::unique_ptr<PrivateBus> bus_;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<FakeManager> manager_;
    std::unique_ptr<PollLoop> loop_;
};

TEST_F(SystemBusPolicy, AnyUserMayCallTheReadMethods)
{
    auto deps = call(kNobody, "org.kmodd1.Manager.ListDeps", {"string:mod2"});
    EXPECT_EQ(deps.status, 0) << deps.output;
    EXPECT_NE(deps.output.find("string \"mod1\""), std::string::npos) << deps.output;

    auto loaded = call(kNobody, "org.kmodd1.Manager.ListLoaded");
    EXPECT_EQ(loaded.status, 0) << loaded.output;
}

TEST_F(SystemBusPolicy, AnyUserReachesLoadUnloadAndRebuildSoThatKmoddCanAskPolkit)
{
    auto load = call(kNobody, "org.kmodd1.Manager.Load", {"string:mod2", "string:"});
    EXPECT_EQ(load.status, 0) << load.output;
    EXPECT_NE(load.output.find("string \"mod2\""), std::string::npos) << load.output;
    EXPECT_EQ(call(kNobody, "org.kmodd1.Manager.Unload", {"string:mod2"}).status, 0);
    EXPECT_EQ(call(kNobody, "org.kmodd1.Manager.Rebuild", {"string:"}).status, 0);
}

TEST_F(SystemBusPolicy, AnyUserMayReadPropertiesIntrospectAndPing)
{
    auto get = call(kNobody, "org.freedesktop.DBus.Properties.Get",
                    {"string:org.kmodd1.Manager", "string:ModuleCount"});
    EXPECT_EQ(get.status, 0) << get.output;
    EXPECT_NE(get.output.find("uint32 3"), std::string::npos) << get.output;
    EXPECT_EQ(call(kNobody, "org.freedesktop.DBus.Properties.GetAll", {"string:org.kmodd1.Manager"})
                  .status,
              0);
    EXPECT_EQ(call(kNobody, "org.freedesktop.DBus.Introspectable.Introspect").status, 0);
    EXPECT_EQ(call(kNobody, "org.freedesktop.DBus.Peer.Ping").status, 0);
}

TEST_F(SystemBusPolicy, TheBusStopsOtherUsersFromSettingProperties)
{
    std::vector<std::string> args{"string:org.kmodd1.Manager", "string:ModuleCount",
                                  "variant:uint32:1"};
    auto as_nobody = call(kNobody, "org.freedesktop.DBus.Properties.Set", args);
    EXPECT_NE(as_nobody.status, 0);
    EXPECT_NE(as_nobody.output.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos)
        << as_nobody.output;

    // Root gets through the bus; the read-only property then refuses.
    auto as_root = call(kRoot, "org.freedesktop.DBus.Properties.Set", args);
    EXPECT_NE(as_root.output.find("org.freedesktop.DBus.Error.PropertyReadOnly"), std::string::npos)
        << as_root.output;
}

TEST_F(SystemBusPolicy, OnlyRootMayOwnTheName)
{
    auto request =
        call(kNobody, "org.freedesktop.DBus.RequestName", {"string:org.kmodd1", "uint32:0"},
             "org.freedesktop.DBus", "/org/freedesktop/DBus");
    EXPECT_NE(request.status, 0);
    EXPECT_NE(request.output.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos)
        << request.output;
}

TEST_F(SystemBusPolicy, OtherInterfacesOfKmoddAreClosedToOtherUsers)
{
    auto other = call(kNobody, "org.freedesktop.DBus.ObjectManager.GetManagedObjects");
    EXPECT_NE(other.output.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos)
        << other.output;
}

} // namespace
