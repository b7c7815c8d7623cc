// SPDX-License-Identifier: LGPL-2.1-or-later
// Proves that org.kmodd1.Manager.xml, the adaptor and proxy sdbus-c++-xml2cpp generates from it
// and sdbus-c++ 1.2 work together: a private dbus-daemon, a stand-in Manager served from an
// external poll(2) loop (getEventLoopPollData + processPendingRequest, as kmodd's epoll loop
// will), and the generated proxy calling it.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include "kmodd-adaptor.h"
#include "kmodd-proxy.h"
#include "kmodd_dbus_names.hpp"
#include "sdbus_compat.hpp"
#include "test_bus.hpp"

namespace {

using namespace std::chrono_literals;
namespace names = kmodd::dbus;
using kmodd::dbus::test::FakeManager;
using kmodd::dbus::test::PollLoop;
using kmodd::dbus::test::PrivateBus;

static_assert(std::string_view(org::kmodd1::Manager_adaptor::INTERFACE_NAME) ==
              names::kInterfaceName);
static_assert(std::string_view(org::kmodd1::Manager_proxy::INTERFACE_NAME) ==
              names::kInterfaceName);

/// What a client saw, in order; filled from the client connection's loop thread.
class EventLog {
public:
    void add(std::string event)
    {
        {
            std::lock_guard lock(mutex_);
            events_.push_back(std::move(event));
        }
        changed_.notify_all();
    }

    /// Waits until `event` was seen, at most 2 s.
    bool saw(const std::string& event)
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 2s, [&] {
            return std::find(events_.begin(), events_.end(), event) != events_.end();
        });
    }

    std::vector<std::string> events()
    {
        std::lock_guard lock(mutex_);
        return events_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> events_;
};

class ManagerClient final
    : public kmodd::dbus::Proxy<org::kmodd1::Manager_proxy, sdbus::Properties_proxy> {
public:
    explicit ManagerClient(sdbus::IConnection& connection)
        : Proxy(connection, names::kBusName, names::kObjectPath)
    {
        registerProxy();
    }
    ManagerClient(const ManagerClient&) = delete;
    ManagerClient& operator=(const ManagerClient&) = delete;
    ~ManagerClient() { unregisterProxy(); }

    std::string introspect()
    {
        std::string xml;
        getProxy()
            .callMethod("Introspect")
            .onInterface("org.freedesktop.DBus.Introspectable")
            .storeResultsTo(xml);
        return xml;
    }

    EventLog log;

private:
    void onModuleLoaded(const std::string& module) override { log.add("ModuleLoaded " + module); }
    void onModuleUnloaded(const std::string& module) override
    {
        log.add("ModuleUnloaded " + module);
    }
    void onIndexRebuilt(const std::string& version, const std::uint32_t& modules,
                        const std::uint64_t& duration_usec) override
    {
        log.add("IndexRebuilt " + version + " " + std::to_string(modules) + " " +
                std::to_string(duration_usec));
    }
    void onDeviceAutoloaded(const std::string& syspath, const std::string& modalias,
                            const std::vector<std::string>& modules) override
    {
        std::string event = "DeviceAutoloaded " + syspath + " " + modalias;
        for (const auto& module : modules)
            event += " " + module;
        log.add(event);
    }
    void onPropertiesChanged(const kmodd::dbus::InterfaceName& interface_name,
                             const kmodd::dbus::PropertyMap& changed,
                             const kmodd::dbus::PropertyNames& invalidated) override
    {
        for (const auto& [name, value] : changed) {
            std::string event = "PropertiesChanged ";
            event += interface_name;
            event += ' ';
            event += name;
            event += '=';
            event += name == "ModuleCount" ? std::to_string(value.get<std::uint32_t>())
                                           : value.peekValueType();
            log.add(std::move(event));
        }
        for (const auto& name : invalidated)
            log.add("PropertiesInvalidated " + name);
    }
};

class DbusInterface : public ::testing::Test {
protected:
    DbusInterface()
        : server_connection_(sdbus::createSessionBusConnectionWithAddress(bus_.address()))
    {
        kmodd::dbus::request_name(*server_connection_, names::kBusName);
        manager_ = std::make_unique<FakeManager>(*server_connection_);
        loop_ = std::make_unique<PollLoop>(*server_connection_);

        client_connection_ = sdbus::createSessionBusConnectionWithAddress(bus_.address());
        client_ = std::make_unique<ManagerClient>(*client_connection_);
        // Signals are dispatched by this connection's own loop thread; the proxy's
        // synchronous calls from the test thread are handed to it and waited for.
        client_connection_->enterEventLoopAsync();
    }

    ~DbusInterface() override
    {
        client_connection_->leaveEventLoop();
        client_.reset();
        client_connection_.reset();
        loop_.reset(); // stops serving before the object goes away
        manager_.reset();
        server_connection_.reset();
    }

    /// Runs `task` on the server's loop thread and waits for it.
    void on_server(const std::function<void()>& task)
    {
        std::promise<void> done;
        loop_->post([&] {
            task();
            done.set_value();
        });
        ASSERT_EQ(done.get_future().wait_for(2s), std::future_status::ready);
    }

    PrivateBus bus_;
    std::unique_ptr<sdbus::IConnection> server_connection_;
    std::unique_ptr<FakeManager> manager_;
    std::unique_ptr<PollLoop> loop_;
    std::unique_ptr<sdbus::IConnection> client_connection_;
    std::unique_ptr<ManagerClient> client_;
};

using Strings = std::vector<std::string>;

TEST_F(DbusInterface, LoadRepliesWithTheInsertedModulesAndSignalsEachOne)
{
    EXPECT_EQ(client_->Load("mod2", "debug=1 verbose"), (Strings{"mod1", "mod2"}));
    EXPECT_TRUE(client_->log.saw("ModuleLoaded mod1"));
    EXPECT_TRUE(client_->log.saw("ModuleLoaded mod2"));
    on_server([&] { EXPECT_EQ(manager_->last_params, "debug=1 verbose"); });
}

TEST_F(DbusInterface, UnloadRepliesWithTheRemovedModulesAndSignalsEachOne)
{
    EXPECT_EQ(client_->Unload("mod2"), (Strings{"mod2", "mod1"}));
    EXPECT_TRUE(client_->log.saw("ModuleUnloaded mod2"));
    EXPECT_TRUE(client_->log.saw("ModuleUnloaded mod1"));
}

TEST_F(DbusInterface, AnErrorReplyArrivesAsAnSdbusErrorWithItsName)
{
    try {
        (void)client_->ListDeps("missing");
        FAIL() << "ListDeps('missing') returned";
    } catch (const sdbus::Error& error) {
        EXPECT_EQ(error.getName(), names::kErrorNotFound);
        EXPECT_EQ(error.getMessage(), "Module 'missing' not found.");
    }
    try {
        (void)client_->Unload("busy");
        FAIL() << "Unload('busy') returned";
    } catch (const sdbus::Error& error) {
        EXPECT_EQ(error.getName(), names::kErrorInUse);
    }
}

TEST_F(DbusInterface, AnSdbusErrorThrownByAnAsyncHandlerBecomesTheErrorReply)
{
    try {
        (void)client_->Load("missing", "");
        FAIL() << "Load('missing') returned";
    } catch (const sdbus::Error& error) {
        EXPECT_EQ(error.getName(), names::kErrorNotFound);
        EXPECT_EQ(error.getMessage(), "Module 'missing' not found.");
    }
}

TEST_F(DbusInterface, ListDepsRepliesWithThePlanInOrder)
{
    EXPECT_EQ(client_->ListDeps("mod2"), (Strings{"mod1", "mod2"}));
}

TEST_F(DbusInterface, ListLoadedKeepsTheShapeOfItsStructs)
{
    auto loaded = client_->ListLoaded();
    ASSERT_EQ(loaded.size(), 2U);
    EXPECT_EQ(std::get<0>(loaded[0]), "mod1");
    EXPECT_EQ(std::get<1>(loaded[0]), 16384U);
    EXPECT_EQ(std::get<2>(loaded[0]), 1U);
    EXPECT_EQ(std::get<3>(loaded[0]), (Strings{"mod2"}));
    EXPECT_EQ(std::get<4>(loaded[0]), names::kOriginDependency);
    EXPECT_EQ(std::get<4>(loaded[1]), names::kOriginExplicit);
}

TEST_F(DbusInterface, GetModuleInfoCarriesTypedValuesInItsDictionary)
{
    auto info = client_->GetModuleInfo("mod2");
    EXPECT_EQ(info.at("name").get<std::string>(), "mod2");
    EXPECT_EQ(info.at("aliases").get<Strings>(), (Strings{"pci:v00001234d*"}));
    EXPECT_FALSE(info.at("builtin").get<bool>());
    EXPECT_EQ(std::string(info.at("parameters").peekValueType()), "a(sss)");
    auto parameters = info.at("parameters")
                          .get<std::vector<sdbus::Struct<std::string, std::string, std::string>>>();
    ASSERT_EQ(parameters.size(), 1U);
    EXPECT_EQ(std::get<2>(parameters[0]), "Debug level (0-3)");
}

TEST_F(DbusInterface, RebuildRepliesAndSignalsIndexRebuilt)
{
    client_->Rebuild("");
    EXPECT_TRUE(client_->log.saw("IndexRebuilt 6.1.0-test 3 18000"));
}

TEST_F(DbusInterface, DeviceSignalsAndWaitingDevicesReachTheClient)
{
    auto waiting = client_->ListWaitingDevices();
    ASSERT_EQ(waiting.size(), 1U);
    EXPECT_EQ(std::get<1>(waiting[0]), "pci:v00008086d0000A348sv*");

    on_server([&] {
        manager_->emitDeviceAutoloaded("/sys/devices/x", "usb:v1234p5678", {"mod1", "mod2"});
    });
    EXPECT_TRUE(client_->log.saw("DeviceAutoloaded /sys/devices/x usb:v1234p5678 mod1 mod2"));
}

TEST_F(DbusInterface, PropertiesAreReadableAndTheirChangesAreSignalledWithTheValue)
{
    EXPECT_EQ(client_->KernelRelease(), "6.1.0-test");
    EXPECT_EQ(client_->ModuleCount(), 3U);
    EXPECT_EQ(client_->IndexGeneration(), 7U);
    EXPECT_EQ(client_->LastRebuildUSec(), 1700000000000000U);
    EXPECT_EQ(client_->LastRebuildDurationUSec(), 18000U);
    EXPECT_TRUE(client_->IndexVerified());
    using KernelRow = sdbus::Struct<std::string, std::uint32_t, std::string, std::string>;
    EXPECT_EQ(client_->Kernels(), (std::vector<KernelRow>{{"6.1.0-test", 3U, "indexed", ""}}));
    EXPECT_EQ(client_->RecordsProblem(), "");
    EXPECT_EQ(client_->GetAll(kmodd::dbus::InterfaceName(names::kInterfaceName)).size(), 8U);

    on_server([&] { manager_->set_module_count(42); });
    EXPECT_TRUE(client_->log.saw("PropertiesChanged org.kmodd1.Manager ModuleCount=42"));
    EXPECT_EQ(client_->ModuleCount(), 42U);
}

TEST_F(DbusInterface, PropertiesCannotBeSet)
{
    try {
        client_->Set(names::kInterfaceName, "ModuleCount", sdbus::Variant(std::uint32_t{1}));
        FAIL() << "setting ModuleCount succeeded";
    } catch (const sdbus::Error& error) {
        EXPECT_EQ(error.getName(), "org.freedesktop.DBus.Error.PropertyReadOnly");
    }
}

TEST_F(DbusInterface, ASlowLoadDoesNotHoldUpOtherCallers)
{
    // The slow caller is another client with a connection of its own and no event loop, so
    // its synchronous call blocks only that connection. (With sdbus-c++ 1.2, a synchronous
    // call made on client_connection_ before its loop thread has started would run in the
    // calling thread and keep that loop from dispatching until it returns.)
    auto other_connection = sdbus::createSessionBusConnectionWithAddress(bus_.address());
    ManagerClient other(*other_connection);
    auto slow = std::async(std::launch::async, [&] { return other.Load("slow", ""); });
    ASSERT_EQ(manager_->slow_load_started.get_future().wait_for(2s), std::future_status::ready);

    // The server still answers while the Load is outstanding.
    EXPECT_EQ(client_->ListDeps("mod2"), (Strings{"mod1", "mod2"}));
    EXPECT_EQ(client_->ModuleCount(), 3U);
    EXPECT_EQ(slow.wait_for(0s), std::future_status::timeout);

    on_server([&] { manager_->finish_slow_load(); });
    ASSERT_EQ(slow.wait_for(2s), std::future_status::ready);
    EXPECT_EQ(slow.get(), (Strings{"slow"}));
}

TEST_F(DbusInterface, TheServerSeesWhoCalled)
{
    (void)client_->Load("mod2", "");
    on_server([&] {
        EXPECT_EQ(manager_->last_sender, client_connection_->getUniqueName());
        EXPECT_EQ(manager_->last_uid, ::getuid());
    });
}

TEST_F(DbusInterface, IntrospectionNamesEveryArgumentAndProperty)
{
    std::string xml = client_->introspect();
    const std::vector<std::string> expected{
        "<interface name=\"org.kmodd1.Manager\">",
        "name=\"inserted\"",
        "name=\"removed\"",
        "name=\"duration_usec\"",
        "name=\"syspath\"",
        "name=\"ListWaitingDevices\"",
        "type=\"a(stuass)\"",
        "<property name=\"LastRebuildDurationUSec\" type=\"t\" access=\"read\">",
        "<property name=\"IndexVerified\" type=\"b\" access=\"read\">",
    };
    for (const auto& text : expected)
        EXPECT_NE(xml.find(text), std::string::npos) << "missing " << text;
}

} // namespace
