// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <cerrno>
#include <set>

#include "service/autoloader.hpp"

namespace kmodd::service {
namespace {

using namespace std::chrono_literals;

/// A fake clock and a fake sysfs: which devices have a driver bound.
class AutoloaderTest : public ::testing::Test {
protected:
    Autoloader make(AutoloadMode mode, double burst = 32, double per_second = 16)
    {
        AutoloadSettings settings;
        settings.mode = mode;
        settings.burst = burst;
        settings.per_second = per_second;
        return Autoloader(
            settings, [this](const std::string& syspath) { return bound_.contains(syspath); },
            [this] { return now_; });
    }

    static sys::DeviceEvent add(const std::string& syspath, const std::string& modalias)
    {
        return sys::DeviceEvent{"add", syspath, modalias, "pci", ""};
    }

    std::set<std::string> bound_;
    Autoloader::Clock::time_point now_{};
};

TEST_F(AutoloaderTest, AnAddWithAModaliasAsksForALoadAndOtherEventsDoNot)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto request = autoloader.on_event(add("/sys/devices/a", "pci:v1d2"));
    ASSERT_TRUE(request);
    EXPECT_EQ(request->syspath, "/sys/devices/a");
    EXPECT_EQ(request->modalias, "pci:v1d2");
    EXPECT_FALSE(
        autoloader.on_event(sys::DeviceEvent{"change", "/sys/devices/b", "pci:v1", "pci", ""}));
    EXPECT_FALSE(
        autoloader.on_event(sys::DeviceEvent{"bind", "/sys/devices/c", "pci:v1", "pci", "e1000"}));
    EXPECT_FALSE(autoloader.on_event(add("/sys/devices/d", "")));
    EXPECT_FALSE(
        autoloader.on_event(sys::DeviceEvent{"add", "/sys/devices/e", "pci:v3", "pci", "bound"}))
        << "a driver is bound already";
}

TEST_F(AutoloaderTest, OffDoesNothingAtAll)
{
    Autoloader autoloader = make(AutoloadMode::Off);
    EXPECT_FALSE(autoloader.on_event(add("/sys/devices/a", "pci:v1")));
    EXPECT_TRUE(autoloader.on_coldplug({{"/sys/devices/a", "pci:v1", false}}).empty());
    EXPECT_TRUE(autoloader.waiting().empty());
}

TEST_F(AutoloaderTest, UnboundOnlyLeavesDevicesUdevdAlreadyServed)
{
    Autoloader autoloader = make(AutoloadMode::UnboundOnly);
    bound_.insert("/sys/devices/served");
    EXPECT_FALSE(autoloader.on_event(add("/sys/devices/served", "pci:v1")));
    EXPECT_TRUE(autoloader.on_event(add("/sys/devices/unserved", "pci:v2")));
}

TEST_F(AutoloaderTest, ColdplugAsksForDevicesWithoutADriverOnly)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto requests = autoloader.on_coldplug({{"/sys/devices/a", "pci:v1", true},
                                            {"/sys/devices/b", "pci:v2", false},
                                            {"/sys/devices/c", "usb:v3", false}});
    ASSERT_EQ(requests.size(), 2U);
    EXPECT_EQ(requests[0].syspath, "/sys/devices/b");
    EXPECT_EQ(requests[1].syspath, "/sys/devices/c");
}

TEST_F(AutoloaderTest, ADeviceWithoutModuleWaitsAndIsTriedAgainWhenTheIndexChanges)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto request = autoloader.on_event(add("/sys/devices/nic", "pci:v8086d100E"));
    ASSERT_TRUE(request);
    autoloader.on_result(*request, AutoloadOutcome::NoModule);
    ASSERT_EQ(autoloader.waiting().size(), 1U);
    EXPECT_EQ(autoloader.waiting()[0].modalias, "pci:v8086d100E");

    // A driver arrives (a DKMS build, a developer's link): the index changed.
    auto again = autoloader.on_index_changed();
    ASSERT_EQ(again.size(), 1U);
    EXPECT_EQ(again[0].syspath, "/sys/devices/nic");
    EXPECT_TRUE(autoloader.waiting().empty()) << "in flight, not waiting";
    autoloader.on_result(again[0], AutoloadOutcome::Loaded);
    EXPECT_TRUE(autoloader.waiting().empty());
    EXPECT_TRUE(autoloader.on_index_changed().empty()) << "served devices are not asked for again";
}

TEST_F(AutoloaderTest, AWaitingDeviceThatGotADriverOrLeftIsForgotten)
{
    Autoloader autoloader = make(AutoloadMode::On);
    for (const char* path : {"/sys/devices/a", "/sys/devices/b", "/sys/devices/c"}) {
        auto request = autoloader.on_event(add(path, std::string("pci:") + path));
        ASSERT_TRUE(request);
        autoloader.on_result(*request, AutoloadOutcome::NoModule);
    }
    ASSERT_EQ(autoloader.waiting().size(), 3U);
    EXPECT_FALSE(autoloader.on_event(sys::DeviceEvent{"remove", "/sys/devices/a", "", "pci", ""}));
    EXPECT_FALSE(autoloader.on_event(sys::DeviceEvent{"bind", "/sys/devices/b", "", "pci", "drv"}));
    bound_.insert("/sys/devices/c"); // bound by hand, no event seen
    EXPECT_TRUE(autoloader.on_index_changed().empty());
    EXPECT_TRUE(autoloader.waiting().empty());
}

TEST_F(AutoloaderTest, ManyDevicesWithOneModaliasCostOneLoad)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto first = autoloader.on_event(add("/sys/devices/port0", "serio:ty06"));
    ASSERT_TRUE(first);
    for (int i = 1; i < 50; ++i)
        EXPECT_FALSE(
            autoloader.on_event(add("/sys/devices/port" + std::to_string(i), "serio:ty06")));
    autoloader.on_result(*first, AutoloadOutcome::NoModule);
    EXPECT_EQ(autoloader.waiting().size(), 50U) << "the one outcome counts for all";
    EXPECT_EQ(autoloader.on_index_changed().size(), 1U);
}

TEST_F(AutoloaderTest, AStormIsRateLimitedAndTheRestComesLater)
{
    Autoloader autoloader = make(AutoloadMode::On, /*burst=*/4, /*per_second=*/2);
    size_t asked = 0;
    for (int i = 0; i < 10; ++i)
        asked +=
            autoloader.on_event(add("/sys/devices/d" + std::to_string(i), "m:" + std::to_string(i)))
                ? 1
                : 0;
    EXPECT_EQ(asked, 4U);
    EXPECT_TRUE(autoloader.has_deferred());
    EXPECT_TRUE(autoloader.take_deferred().empty()) << "no time has passed";
    now_ += 1s;
    EXPECT_EQ(autoloader.take_deferred().size(), 2U);
    now_ += 10s;
    EXPECT_EQ(autoloader.take_deferred().size(), 4U);
    EXPECT_FALSE(autoloader.has_deferred());
}

TEST_F(AutoloaderTest, BlacklistedAndLoadedDevicesDoNotWait)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto a = autoloader.on_event(add("/sys/devices/a", "pci:a"));
    auto b = autoloader.on_event(add("/sys/devices/b", "pci:b"));
    auto c = autoloader.on_event(add("/sys/devices/c", "pci:c"));
    auto d = autoloader.on_event(add("/sys/devices/d", "pci:d"));
    ASSERT_TRUE(a && b && c && d);
    autoloader.on_result(*d, AutoloadOutcome::Unsuitable);
    autoloader.on_result(*a, AutoloadOutcome::Blacklisted);
    autoloader.on_result(*b, AutoloadOutcome::Loaded);
    autoloader.on_result(*c, AutoloadOutcome::Failed);
    auto waiting = autoloader.waiting();
    ASSERT_EQ(waiting.size(), 1U);
    EXPECT_EQ(waiting[0].syspath, "/sys/devices/c") << "a failure is tried again after a change";
}

TEST_F(AutoloaderTest, TheSameAddTwiceWhileInFlightAsksOnce)
{
    Autoloader autoloader = make(AutoloadMode::On);
    EXPECT_TRUE(autoloader.on_event(add("/sys/devices/a", "pci:a")));
    EXPECT_FALSE(autoloader.on_event(add("/sys/devices/a", "pci:a")));
}

TEST_F(AutoloaderTest, LoadResultsAreClassifiedAsUdevdsKmodBuiltinDoes)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto ask = [&](const std::string& syspath) {
        auto request = autoloader.on_event(add(syspath, "pci:v" + syspath));
        EXPECT_TRUE(request);
        return request.value_or(AutoloadRequest{});
    };
    auto failure = [](Failure kind, std::string message, int code = 0) {
        return RequestResult<std::vector<std::string>>(
            tl::unexpected(RequestError{kind, std::move(message), code}));
    };

    auto loaded =
        autoloader.on_load_result(ask("/sys/a"), std::vector<std::string>{"mod1", "mod2"});
    EXPECT_EQ(loaded.outcome, AutoloadOutcome::Loaded);
    EXPECT_EQ(loaded.inserted, (std::vector<std::string>{"mod1", "mod2"}));
    EXPECT_EQ(loaded.severity, Severity::Info);
    EXPECT_EQ(loaded.message, "loaded mod1, mod2 for /sys/a (pci:v/sys/a)");

    auto there = autoloader.on_load_result(ask("/sys/b"), std::vector<std::string>{});
    EXPECT_EQ(there.outcome, AutoloadOutcome::Loaded);
    EXPECT_TRUE(there.message.empty()) << "everything was loaded already: nothing to say";

    auto none = autoloader.on_load_result(ask("/sys/c"), failure(Failure::NotFound, "no module"));
    EXPECT_EQ(none.outcome, AutoloadOutcome::NoModule);
    EXPECT_EQ(none.severity, Severity::Debug);

    auto blacklisted = autoloader.on_load_result(
        ask("/sys/d"), failure(Failure::Blacklisted, "'pci:v/sys/d' is blacklisted"));
    EXPECT_EQ(blacklisted.outcome, AutoloadOutcome::Blacklisted);
    EXPECT_EQ(blacklisted.message, "'pci:v/sys/d' is blacklisted");

    auto unsuitable = autoloader.on_load_result(ask("/sys/e"),
                                                failure(Failure::Failed, "No such device", ENODEV));
    EXPECT_EQ(unsuitable.outcome, AutoloadOutcome::Unsuitable);
    EXPECT_EQ(unsuitable.severity, Severity::Info);

    std::vector<std::string> waiting;
    for (const auto& device : autoloader.waiting())
        waiting.push_back(device.syspath);
    EXPECT_EQ(waiting, std::vector<std::string>{"/sys/c"})
        << "only the device without a module waits";
}

TEST_F(AutoloaderTest, AFailedLoadIsAWarningOnceAndDebugWhenItFailsTheSameWayAgain)
{
    Autoloader autoloader = make(AutoloadMode::On);
    auto failed = RequestResult<std::vector<std::string>>(
        tl::unexpected(RequestError{Failure::Failed, "Exec format error", ENOEXEC}));
    auto request = autoloader.on_event(add("/sys/a", "pci:v1"));
    ASSERT_TRUE(request);
    auto first = autoloader.on_load_result(*request, failed);
    EXPECT_EQ(first.outcome, AutoloadOutcome::Failed);
    EXPECT_EQ(first.severity, Severity::Warning);
    EXPECT_EQ(first.message, "loading a driver for /sys/a (pci:v1) failed: Exec format error");
    ASSERT_EQ(autoloader.waiting().size(), 1U) << "tried again after the next index change";

    auto again = autoloader.on_index_changed();
    ASSERT_EQ(again.size(), 1U);
    auto second = autoloader.on_load_result(again[0], failed);
    EXPECT_EQ(second.severity, Severity::Debug);
    EXPECT_EQ(second.message,
              "loading a driver for /sys/a (pci:v1) failed again: Exec format error");

    auto third = autoloader.on_index_changed();
    ASSERT_EQ(third.size(), 1U);
    auto other = autoloader.on_load_result(
        third[0], RequestResult<std::vector<std::string>>(tl::unexpected(
                      RequestError{Failure::Failed, "Key was rejected", EKEYREJECTED})));
    EXPECT_EQ(other.severity, Severity::Warning) << "a new reason is said again";
}

} // namespace
} // namespace kmodd::service
