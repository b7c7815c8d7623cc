// SPDX-License-Identifier: LGPL-2.1-or-later
// The device seam: uevents from libudev, and devices with a modalias found in sysfs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace kmodd::sys {

/// One device uevent, as much of it as autoloading needs.
struct DeviceEvent {
    std::string action;   ///< "add", "remove", "bind", "unbind", "change", "move", ...
    std::string syspath;  ///< e.g. /sys/devices/pci0000:00/0000:00:03.0
    std::string modalias; ///< MODALIAS property; empty when the event has none
    std::string subsystem;
    std::string driver; ///< DRIVER property (bound driver), empty when none
};

/// Where uevents come from: after udevd processed them ("udev"), or straight from the kernel
/// ("kernel", when no udevd runs).
enum class EventSource { Udev, Kernel };

/// A stream of device uevents with an fd to poll. Not thread-safe: the event loop owns it.
class DeviceMonitor {
public:
    virtual ~DeviceMonitor() = default;
    /// Readable (EPOLLIN) when read_events() has something. Non-blocking. Poll it
    /// level-triggered: libudev may end a read_events() early at a message it ignores.
    [[nodiscard]] virtual int fd() const = 0;
    /// Every event queued now, without blocking (empty when none). Malformed events are
    /// skipped. Errors: the monitor's socket failed (the errno, with a sentence); ENOBUFS
    /// when the kernel dropped events because the receive buffer overflowed: the events read
    /// in this call are dropped too, the monitor stays usable, and the caller should rescan
    /// sysfs (scan_sysfs_devices) to learn what it missed.
    [[nodiscard]] virtual base::Result<std::vector<DeviceEvent>> read_events() = 0;
};

/// A libudev monitor on the netlink source `source`, receiving every subsystem. Errors:
/// libudev could not create or enable the monitor (EPERM without privileges, ...).
/// Note: libudev creates a Udev monitor that never receives anything, without an error,
/// when neither /run/udev/control exists nor /dev is a devtmpfs; check is_udevd_running().
[[nodiscard]] base::Result<std::unique_ptr<DeviceMonitor>> make_udev_monitor(EventSource source);

/// A device under sysfs that announces a modalias.
struct SysfsDevice {
    std::string syspath;     ///< <sysfs root>/devices/...: as the kernel names it (under "/sys"
                             ///< when the root is /sys)
    std::string modalias;    ///< the content of its `modalias` file, without the newline
    bool has_driver = false; ///< a `driver` link exists in its directory

    bool operator==(const SysfsDevice&) const = default;
};

/// How many directory levels below `<sysfs_root>/devices` scan_sysfs_devices descends at
/// most: a guard against surprises (real device trees stay far below it).
inline constexpr int kMaxSysfsDepth = 64;

/// Every device under `<sysfs_root>/devices` with a non-empty `modalias` file, in byte
/// order of `syspath` (coldplug: what was there before we listened). Symlinks are not
/// followed (sysfs has loops through them), neither for directories nor for `modalias`;
/// unreadable entries are skipped. Errors: `<sysfs_root>/devices` cannot be opened.
[[nodiscard]] base::Result<std::vector<SysfsDevice>>
scan_sysfs_devices(const std::string& sysfs_root = "/sys");

/// Reads one device's state now: its modalias (empty when it has no `modalias` file) and
/// whether a driver is bound. `syspath` as scan_sysfs_devices or a DeviceEvent gives it.
/// Errors: ENOENT when the device is gone (a device removed while it is being read may
/// also read as one without modalias); the errno when its `modalias` cannot be read.
[[nodiscard]] base::Result<SysfsDevice> read_sysfs_device(const std::string& syspath);

/// Whether systemd-udevd runs (its control socket /run/udev/control exists), which decides
/// kmodd's default autoload mode and event source. `run_dir` exists for tests.
[[nodiscard]] bool is_udevd_running(const std::string& run_dir = "/run");

} // namespace kmodd::sys
