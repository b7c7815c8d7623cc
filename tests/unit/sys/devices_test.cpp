// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "sys/devices.hpp"

namespace kmodd::sys {

void PrintTo(const SysfsDevice& device, std::ostream* out)
{
    *out << "{" << device.syspath << ", '" << device.modalias << "', "
         << (device.has_driver ? "driver" : "no driver") << "}";
}

namespace {

namespace fs = std::filesystem;
using Devices = std::vector<SysfsDevice>;

/// A fake sysfs (and run dir) in a temporary directory.
class FakeSysfsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-sysfs-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        fs::create_directories(sys() / "devices");
    }
    void TearDown() override
    {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    [[nodiscard]] fs::path sys() const { return dir_ / "sys"; }
    [[nodiscard]] fs::path devices() const { return sys() / "devices"; }
    [[nodiscard]] std::string device_path(const std::string& rel) const
    {
        return (devices() / rel).string();
    }

    static void write(const fs::path& path, const std::string& text)
    {
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << text;
    }
    /// A device directory with a `modalias` file (none when `modalias` is null).
    void add_device(const std::string& rel, const char* modalias) const
    {
        fs::create_directories(devices() / rel);
        if (modalias != nullptr)
            write(devices() / rel / "modalias", modalias);
    }
    /// A `driver` link as the kernel makes it: into <sys>/bus/<bus>/drivers/<driver>.
    void bind_driver(const std::string& rel, const std::string& bus,
                     const std::string& driver) const
    {
        fs::path target = sys() / "bus" / bus / "drivers" / driver;
        fs::create_directories(target);
        fs::create_directory_symlink(fs::relative(target, devices() / rel),
                                     devices() / rel / "driver");
    }
    void link(const std::string& rel, const fs::path& target) const
    {
        fs::create_directory_symlink(target, devices() / rel);
    }

    fs::path dir_;
};

TEST_F(FakeSysfsTest, ScanFindsEveryDeviceWithAModaliasSortedByPath)
{
    // Created out of order, so that the order of readdir is not the answer by chance.
    add_device("platform/serial8250", "platform:serial8250\n");
    bind_driver("platform/serial8250", "platform", "serial8250");
    add_device("platform/pcspkr", "platform:pcspkr\n");
    add_device("platform/empty", "");
    add_device("platform/newline-only", "\n");
    add_device("platform/no-modalias", nullptr);
    add_device("pci0000:00", nullptr);
    add_device("pci0000:00/0000:00:01.0/virtio0", "virtio:d00000001v00001AF4\n");
    bind_driver("pci0000:00/0000:00:01.0/virtio0", "virtio", "virtio_net");
    add_device("pci0000:00/0000:00:01.0",
               "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n");
    bind_driver("pci0000:00/0000:00:01.0", "pci", "virtio-pci");
    add_device("pci0000:00/0000:00:01.0-x", "pci:sibling\n");
    add_device("virtual/net/lo", nullptr);
    // A modalias without a trailing newline is taken as it is.
    add_device("virtual/misc/no-newline", "misc:no-newline");

    // Real sysfs loops through symlinks: `subsystem` up into /sys/bus, which links back to
    // the devices; `firmware_node`-style links sideways; a link straight up.
    fs::create_directories(sys() / "bus/virtio/devices");
    fs::create_directory_symlink(devices() / "pci0000:00/0000:00:01.0/virtio0",
                                 sys() / "bus/virtio/devices/virtio0");
    link("pci0000:00/0000:00:01.0/virtio0/subsystem", "../../../../bus/virtio");
    link("pci0000:00/0000:00:01.0/up", "..");
    link("platform/sideways", "../pci0000:00");
    // A `modalias` that is a symlink is not a device's own attribute.
    add_device("platform/linked", nullptr);
    fs::create_symlink("../pcspkr/modalias", devices() / "platform/linked/modalias");
    // A `driver` that is a directory, not a link, is no bound driver.
    add_device("platform/driver-dir", "platform:driver-dir\n");
    fs::create_directories(devices() / "platform/driver-dir/driver");

    auto scanned = scan_sysfs_devices(sys().string());
    ASSERT_TRUE(scanned) << scanned.error().message;
    const Devices expected = {
        {device_path("pci0000:00/0000:00:01.0"),
         "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
        {device_path("pci0000:00/0000:00:01.0-x"), "pci:sibling", false},
        {device_path("pci0000:00/0000:00:01.0/virtio0"), "virtio:d00000001v00001AF4", true},
        {device_path("platform/driver-dir"), "platform:driver-dir", false},
        {device_path("platform/pcspkr"), "platform:pcspkr", false},
        {device_path("platform/serial8250"), "platform:serial8250", true},
        {device_path("virtual/misc/no-newline"), "misc:no-newline", false},
    };
    EXPECT_EQ(*scanned, expected);
}

TEST_F(FakeSysfsTest, ScanNamesDevicesUnderTheRootAsGivenWithoutADoubleSlash)
{
    add_device("platform/pcspkr", "platform:pcspkr\n");
    auto scanned = scan_sysfs_devices(sys().string() + "/");
    ASSERT_TRUE(scanned) << scanned.error().message;
    EXPECT_EQ(*scanned,
              (Devices{{sys().string() + "/devices/platform/pcspkr", "platform:pcspkr", false}}));
}

TEST_F(FakeSysfsTest, ScanOfAnEmptyDevicesDirectoryFindsNothing)
{
    auto scanned = scan_sysfs_devices(sys().string());
    ASSERT_TRUE(scanned) << scanned.error().message;
    EXPECT_TRUE(scanned->empty());
}

TEST_F(FakeSysfsTest, ScanFailsWithENOENTWhenThereIsNoDevicesDirectory)
{
    auto scanned = scan_sysfs_devices((dir_ / "nowhere").string());
    ASSERT_FALSE(scanned);
    EXPECT_EQ(scanned.error().code, ENOENT);
    EXPECT_NE(scanned.error().message.find("nowhere/devices"), std::string::npos)
        << scanned.error().message;
}

TEST_F(FakeSysfsTest, ScanStopsDescendingAtTheDepthBound)
{
    std::string shallow;
    for (int i = 0; i < 10; ++i)
        shallow += "d/";
    std::string deep = shallow;
    for (int i = 10; i < kMaxSysfsDepth + 5; ++i)
        deep += "d/";
    std::string deepest_scanned;
    for (int i = 0; i < kMaxSysfsDepth; ++i)
        deepest_scanned += "d/";
    add_device(shallow, "shallow\n");
    add_device(deepest_scanned, "deepest\n");
    add_device(deep, "too-deep\n");

    auto scanned = scan_sysfs_devices(sys().string());
    ASSERT_TRUE(scanned) << scanned.error().message;
    shallow.pop_back();
    deepest_scanned.pop_back();
    EXPECT_EQ(*scanned, (Devices{{device_path(shallow), "shallow", false},
                                 {device_path(deepest_scanned), "deepest", false}}));
}

/// Takes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the thread's effective set (so that
/// root too sees a mode-000 file as unreadable), and puts them back when it goes.
class WithoutDacOverride {
public:
    WithoutDacOverride()
    {
        header_.version = _LINUX_CAPABILITY_VERSION_3;
        if (::syscall(SYS_capget, &header_, saved_) != 0)
            return;
        __user_cap_data_struct lowered[2] = {saved_[0], saved_[1]};
        lowered[0].effective &= ~((1U << CAP_DAC_OVERRIDE) | (1U << CAP_DAC_READ_SEARCH));
        is_active_ = ::syscall(SYS_capset, &header_, lowered) == 0;
    }
    WithoutDacOverride(const WithoutDacOverride&) = delete;
    WithoutDacOverride& operator=(const WithoutDacOverride&) = delete;
    ~WithoutDacOverride()
    {
        if (is_active_)
            (void)::syscall(SYS_capset, &header_, saved_);
    }

private:
    __user_cap_header_struct header_{};
    __user_cap_data_struct saved_[2]{};
    bool is_active_ = false;
};

/// Whether opening `path` for reading fails with EACCES now.
bool is_unreadable(const fs::path& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::close(fd);
        return false;
    }
    return errno == EACCES;
}

TEST_F(FakeSysfsTest, ScanSkipsAnUnreadableModaliasAndReadReportsIt)
{
    add_device("platform/pcspkr", "platform:pcspkr\n");
    add_device("platform/locked", "platform:locked\n");
    fs::permissions(devices() / "platform/locked/modalias", fs::perms::none);

    WithoutDacOverride unprivileged;
    if (!is_unreadable(devices() / "platform/locked/modalias"))
        GTEST_SKIP() << "cannot make a file unreadable here (capabilities cannot be lowered)";

    auto scanned = scan_sysfs_devices(sys().string());
    ASSERT_TRUE(scanned) << scanned.error().message;
    EXPECT_EQ(*scanned, (Devices{{device_path("platform/pcspkr"), "platform:pcspkr", false}}));

    auto read = read_sysfs_device(device_path("platform/locked"));
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().code, EACCES);
    EXPECT_NE(read.error().message.find("platform/locked"), std::string::npos)
        << read.error().message;
}

TEST_F(FakeSysfsTest, ReadGivesTheModaliasAndABoundDriver)
{
    add_device("platform/serial8250", "platform:serial8250\n");
    bind_driver("platform/serial8250", "platform", "serial8250");
    auto read = read_sysfs_device(device_path("platform/serial8250"));
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read,
              (SysfsDevice{device_path("platform/serial8250"), "platform:serial8250", true}));
}

TEST_F(FakeSysfsTest, ReadGivesNoDriverWhenNoneIsBound)
{
    add_device("platform/pcspkr", "platform:pcspkr\n");
    auto read = read_sysfs_device(device_path("platform/pcspkr"));
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, (SysfsDevice{device_path("platform/pcspkr"), "platform:pcspkr", false}));
}

TEST_F(FakeSysfsTest, ReadCountsADanglingDriverLinkAsBound)
{
    // The driver may be going away while its link is still there: the link is what counts.
    add_device("platform/pcspkr", "platform:pcspkr\n");
    link("platform/pcspkr/driver", "../../../bus/platform/drivers/gone");
    auto read = read_sysfs_device(device_path("platform/pcspkr"));
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_TRUE(read->has_driver);
}

TEST_F(FakeSysfsTest, ReadOfADeviceWithoutModaliasGivesAnEmptyOne)
{
    add_device("virtual/net/lo", nullptr);
    auto read = read_sysfs_device(device_path("virtual/net/lo"));
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, (SysfsDevice{device_path("virtual/net/lo"), "", false}));
}

TEST_F(FakeSysfsTest, ReadOfAVanishedDeviceFailsWithENOENT)
{
    add_device("platform/pcspkr", "platform:pcspkr\n");
    fs::remove_all(devices() / "platform/pcspkr");
    auto read = read_sysfs_device(device_path("platform/pcspkr"));
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().code, ENOENT);
    EXPECT_NE(read.error().message.find("platform/pcspkr"), std::string::npos)
        << read.error().message;
}

TEST_F(FakeSysfsTest, UdevdRunsExactlyWhenItsControlSocketExists)
{
    const fs::path run = dir_ / "run";
    fs::create_directories(run);
    EXPECT_FALSE(is_udevd_running(run.string()));
    fs::create_directories(run / "udev");
    EXPECT_FALSE(is_udevd_running(run.string()));
    write(run / "udev/control", "");
    EXPECT_TRUE(is_udevd_running(run.string()));
    EXPECT_TRUE(is_udevd_running(run.string() + "/"));
}

TEST(RealSysfsTest, ScanOfThisMachineGivesSortedDevicesWithModaliases)
{
    if (!fs::is_directory("/sys/devices"))
        GTEST_SKIP() << "no /sys/devices here";
    const auto start = std::chrono::steady_clock::now();
    auto scanned = scan_sysfs_devices();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(scanned) << scanned.error().message;
    RecordProperty("devices", static_cast<int>(scanned->size()));
    RecordProperty(
        "microseconds",
        static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
    for (size_t i = 0; i < scanned->size(); ++i) {
        const SysfsDevice& device = (*scanned)[i];
        EXPECT_TRUE(device.syspath.starts_with("/sys/devices/")) << device.syspath;
        EXPECT_FALSE(device.modalias.empty()) << device.syspath;
        EXPECT_EQ(device.modalias.find('\n'), std::string::npos) << device.syspath;
        if (i > 0) {
            EXPECT_LT((*scanned)[i - 1].syspath, device.syspath);
        }
    }
}

/// A monitor on `source`, or the reason it cannot exist here (privileges, no netlink).
void expect_monitor_works_or_skip(EventSource source)
{
    auto monitor = make_udev_monitor(source);
    if (!monitor) {
        const int code = monitor.error().code;
        if (code == EPERM || code == EACCES || code == EAFNOSUPPORT || code == EPROTONOSUPPORT ||
            code == ESOCKTNOSUPPORT)
            GTEST_SKIP() << monitor.error().message;
        FAIL() << monitor.error().message;
    }
    const int fd = (*monitor)->fd();
    ASSERT_GE(fd, 0);
    const int flags = ::fcntl(fd, F_GETFL);
    ASSERT_GE(flags, 0);
    EXPECT_NE(flags & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

    const auto start = std::chrono::steady_clock::now();
    auto events = (*monitor)->read_events();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(events) << events.error().message;
    EXPECT_TRUE(events->empty());
    EXPECT_LT(elapsed, std::chrono::seconds(1));
}

TEST(UdevMonitorTest, KernelSourceGivesAPollableFdAndDoesNotBlock)
{
    expect_monitor_works_or_skip(EventSource::Kernel);
}

TEST(UdevMonitorTest, UdevSourceGivesAPollableFdAndDoesNotBlock)
{
    expect_monitor_works_or_skip(EventSource::Udev);
}

} // namespace
} // namespace kmodd::sys
