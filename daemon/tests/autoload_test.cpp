// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's uevent autoloading end to end, without a kernel's devices: a fake sysfs tree for
// the coldplug scan and the driver checks, kmodd in sandbox mode on a private bus, no event
// source (the netlink path is proven in the VM scenarios).
#include <gtest/gtest.h>

#include <fstream>

#include "daemon_harness.hpp"

namespace kmodd::daemon::test {
namespace {

const fs::path kFixtures = KMODD_FIXTURE_MODULES;

/// mod1's alias pci:v00001234d*sv*sd*bc02sc00i* matches this.
constexpr const char* kMod1Device = "pci:v00001234d00005678sv00000001sd00000002bc02sc00i00";

class Sysfs {
public:
    explicit Sysfs(fs::path root) : root_(std::move(root))
    {
        fs::create_directories(root_ / "devices");
    }

    /// A device directory with a modalias file, and a driver link when `driver` is set.
    fs::path add(const std::string& path, const std::string& modalias,
                 const std::string& driver = "")
    {
        fs::path dir = root_ / "devices" / path;
        fs::create_directories(dir);
        std::ofstream(dir / "modalias") << modalias << "\n";
        if (!driver.empty()) {
            fs::create_directories(root_ / "bus/pci/drivers" / driver);
            fs::create_directory_symlink(root_ / "bus/pci/drivers" / driver, dir / "driver");
        }
        return dir;
    }
    [[nodiscard]] const fs::path& root() const { return root_; }

private:
    fs::path root_;
};

std::vector<std::string> autoload_args(const Sysfs& sysfs)
{
    return {"--autoload=on", "--uevent-source", "none", "--sysfs", sysfs.root().string()};
}

TEST(KmoddAutoload, ColdplugLoadsTheDriverOfADeviceWithoutOneAndRecordsItAsAutoload)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
    Sysfs sysfs(setup.tree().root() / "sys");
    sysfs.add("pci0000:00/0000:00:03.0", kMod1Device);
    sysfs.add("pci0000:00/0000:00:04.0", "pci:v0000FFFFd0000FFFFsv0sd0bc03sc00i00", "bound");
    ASSERT_TRUE(setup.start(autoload_args(sysfs))) << setup.log();
    EXPECT_TRUE(wait_until([&] {
        return setup.client().origin_of("mod1") == dbus::kOriginAutoload;
    })) << setup.log();
    auto loaded = setup.client().list_loaded();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded.value->size(), 1U) << "nothing for the device that has a driver";

    // Explain names the device and its modalias.
    using Info = std::map<std::string, sdbus::Variant>;
    auto why = setup.client().call<Info>("Explain", std::string("mod1"));
    ASSERT_TRUE(why) << why.error_message;
    const std::string syspath = (sysfs.root() / "devices/pci0000:00/0000:00:03.0").string();
    EXPECT_EQ(why.value->at("device_syspath").get<std::string>(), syspath);
    EXPECT_EQ(why.value->at("device_modalias").get<std::string>(), kMod1Device);
    const auto lines = why.value->at("lines").get<std::vector<std::string>>();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines[0].find("for the device " + syspath + " (modalias " + kMod1Device + ")"),
              std::string::npos)
        << lines[0];
}

TEST(KmoddAutoload, ADeviceWaitsForItsDriverAndGetsItWhenTheModuleIsLinkedIn)
{
    DaemonSetup setup;
    Sysfs sysfs(setup.tree().root() / "sys");
    fs::path device = sysfs.add("pci0000:00/0000:00:03.0", kMod1Device);
    ASSERT_TRUE(setup.start(autoload_args(sysfs))) << setup.log();
    SignalLog signals(setup.address());

    using Waiting = std::vector<sdbus::Struct<std::string, std::string>>;
    auto waiting = [&] {
        Waiting devices;
        try {
            kmodd::dbus::create_proxy(
                *sdbus::createSessionBusConnectionWithAddress(setup.address()), dbus::kBusName,
                dbus::kObjectPath)
                ->callMethod("ListWaitingDevices")
                .onInterface(dbus::kInterfaceName)
                .storeResultsTo(devices);
        } catch (const sdbus::Error&) {
        }
        return devices;
    };
    ASSERT_TRUE(wait_until([&] { return waiting().size() == 1U; })) << setup.log();
    EXPECT_EQ(std::get<0>(waiting()[0]), device.string());
    EXPECT_EQ(std::get<1>(waiting()[0]), kMod1Device);

    // The developer links the driver in: no modprobe, no reboot.
    const fs::path build = setup.tree().root() / "home/dev";
    fs::create_directories(build);
    fs::copy_file(kFixtures / "mod1.ko", build / "mod1.ko");
    fs::create_directories(setup.tree().module_dir() / "extra");
    fs::create_symlink(build / "mod1.ko", setup.tree().module_dir() / "extra/mod1.ko");

    EXPECT_TRUE(wait_until([&] {
        return setup.client().origin_of("mod1") == dbus::kOriginAutoload;
    })) << setup.log();
    EXPECT_TRUE(signals.wait_for("ModuleLoaded mod1"));
    EXPECT_TRUE(wait_until([&] { return waiting().empty(); }));
}

TEST(KmoddAutoload, ABlacklistedDriverIsNotLoadedForADevice)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
    setup.tree().add("kernel/a/mod2.ko", kFixtures / "mod2.ko");
    Sysfs sysfs(setup.tree().root() / "sys");
    sysfs.add("pci0000:00/0000:00:03.0", kMod1Device);
    const fs::path config = setup.tree().root() / "blacklist.conf";
    std::ofstream(config) << "blacklist mod1\n";
    auto args = autoload_args(sysfs);
    args.insert(args.end(), {"--modprobe-config", config.string()});
    ASSERT_TRUE(setup.start(args)) << setup.log();
    // The debug log says when the coldplug's request was refused.
    ASSERT_TRUE(wait_until([&] { return setup.log().find("is blacklisted") != std::string::npos; }))
        << setup.log();
    auto loaded = setup.client().list_loaded();
    ASSERT_TRUE(loaded);
    for (const auto& row : *loaded.value)
        ADD_FAILURE() << std::get<0>(row) << " was loaded";
}

TEST(KmoddAutoload, OffInSandboxModeUnlessAskedFor)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
    Sysfs sysfs(setup.tree().root() / "sys");
    sysfs.add("pci0000:00/0000:00:03.0", kMod1Device);
    ASSERT_TRUE(setup.start({"--sysfs", sysfs.root().string()})) << setup.log();
    ASSERT_TRUE(setup.client().list_deps("mod1"));
    auto loaded = setup.client().list_loaded();
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(loaded.value->empty());
}

} // namespace
} // namespace kmodd::daemon::test
