// SPDX-License-Identifier: LGPL-2.1-or-later
// Devices: uevents through libudev, coldplug through a walk of <sysfs>/devices.
#include "sys/devices.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libudev.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "base/file.hpp"
#include "base/unique_fd.hpp"

namespace kmodd::sys {

namespace {

// ---- libudev monitor ----

struct UdevUnref {
    void operator()(udev* handle) const noexcept { ::udev_unref(handle); }
};
struct UdevMonitorUnref {
    void operator()(udev_monitor* handle) const noexcept { ::udev_monitor_unref(handle); }
};
struct UdevDeviceUnref {
    void operator()(udev_device* handle) const noexcept { ::udev_device_unref(handle); }
};
using UdevPtr = std::unique_ptr<udev, UdevUnref>;
using UdevMonitorPtr = std::unique_ptr<udev_monitor, UdevMonitorUnref>;
using UdevDevicePtr = std::unique_ptr<udev_device, UdevDeviceUnref>;

// A coldplug storm (udevadm trigger on a big machine) queues thousands of events at once; the
// default socket buffer (net.core.rmem_default, ~200 KiB) would overflow. Memory is only used
// while events wait.
constexpr int kReceiveBufferSize = 32 * 1024 * 1024;

// libudev reports a message it could not parse as one of these; the message is consumed, so
// reading on is safe.
bool is_malformed_message(int code)
{
    return code == EINVAL || code == EBADMSG || code == ENOMSG || code == ENODATA ||
           code == EPROTO || code == E2BIG;
}

// A bound on the messages skipped in one read_events(), so that a stream of garbage cannot
// keep the event loop in here; the fd stays readable and the rest comes in the next call.
constexpr int kMaxSkippedPerRead = 4096;

/// errno after a libudev call that returned NULL; EIO when libudev left it unset.
int errno_or_eio()
{
    return errno != 0 ? errno : EIO;
}

/// A libudev call's negative-errno return as a positive code; EIO when it returned -1
/// without errno.
int code_of(int result)
{
    if (result == -1)
        return errno_or_eio();
    return -result;
}

const char* source_name(EventSource source)
{
    return source == EventSource::Kernel ? "kernel" : "udev";
}

std::string property(udev_device* device, const char* key)
{
    const char* value = ::udev_device_get_property_value(device, key);
    return value != nullptr ? std::string(value) : std::string();
}

class UdevMonitor final : public DeviceMonitor {
public:
    UdevMonitor(UdevPtr context, UdevMonitorPtr monitor, int fd, EventSource source)
        : context_(std::move(context)), monitor_(std::move(monitor)), fd_(fd), source_(source)
    {
    }

    [[nodiscard]] int fd() const override { return fd_; }

    [[nodiscard]] base::Result<std::vector<DeviceEvent>> read_events() override
    {
        std::vector<DeviceEvent> events;
        int skipped = 0;
        while (skipped < kMaxSkippedPerRead) {
            errno = 0;
            UdevDevicePtr device(::udev_monitor_receive_device(monitor_.get()));
            if (!device) {
                const int code = errno;
                // libudev says EAGAIN both when the socket is empty and when it ignored a
                // message (wrong sender, ...): either way, stop; level-triggered polling
                // brings us back if more is queued. 0 should not happen; stopping is safe.
                if (code == 0 || code == EAGAIN || code == EWOULDBLOCK)
                    break;
                if (code == EINTR || is_malformed_message(code)) {
                    ++skipped;
                    continue;
                }
                if (code == ENOBUFS)
                    return base::make_error(code,
                                            std::string("the '") + source_name(source_) +
                                                "' uevent socket overflowed: events were lost");
                return base::errno_error(code, std::string("cannot receive uevents from the '") +
                                                   source_name(source_) + "' netlink source");
            }
            const char* action = ::udev_device_get_action(device.get());
            const char* syspath = ::udev_device_get_syspath(device.get());
            if (action == nullptr || syspath == nullptr) {
                ++skipped;
                continue;
            }
            events.push_back(DeviceEvent{action, syspath, property(device.get(), "MODALIAS"),
                                         property(device.get(), "SUBSYSTEM"),
                                         property(device.get(), "DRIVER")});
        }
        return events;
    }

private:
    // Declared before the monitor, so it is released after it.
    UdevPtr context_;
    UdevMonitorPtr monitor_;
    int fd_ = -1; // owned by monitor_
    EventSource source_;
};

// ---- sysfs ----

// A modalias is far below a page; anything bigger is not one.
constexpr size_t kMaxAttributeSize = size_t{64} * 1024;

/// Reads the small attribute file `name` in `dir_fd` without following a symlink (and
/// without blocking on a FIFO), without its trailing newlines. Errors: the errno of
/// open/read (ELOOP for a symlink), EFBIG when it is too big for an attribute.
base::Result<std::string> read_attribute(int dir_fd, const char* name)
{
    base::UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.is_valid())
        return base::errno_error(errno, std::string("'") + name + "'");
    std::string content;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return base::errno_error(errno, std::string("'") + name + "'");
        }
        if (n == 0)
            break;
        content.append(buffer, static_cast<size_t>(n));
        if (content.size() > kMaxAttributeSize)
            return base::errno_error(EFBIG, std::string("'") + name + "'");
    }
    while (!content.empty() && content.back() == '\n')
        content.pop_back();
    return content;
}

/// The type of an entry as getdents says it, asking fstatat (without following a symlink)
/// only when the file system does not fill d_type in.
unsigned char entry_type(int dir_fd, const char* name, unsigned char d_type)
{
    if (d_type != DT_UNKNOWN)
        return d_type;
    struct stat st {};
    if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return DT_UNKNOWN;
    if (S_ISDIR(st.st_mode))
        return DT_DIR;
    if (S_ISLNK(st.st_mode))
        return DT_LNK;
    if (S_ISREG(st.st_mode))
        return DT_REG;
    return DT_UNKNOWN;
}

/// The recursive walk of scan_sysfs_devices. Speed matters (a big server has tens of
/// thousands of directories under /sys/devices), so it lists directories with getdents64
/// straight into one buffer: openat, getdents64 until it says 0, close per directory (a
/// DIR* would add an fstat and two fcntl). A short getdents64 does not mean the end: the
/// kernel also stops early when a signal is pending.
class SysfsWalker {
public:
    SysfsWalker() : buffer_(size_t{64} * 1024) {}

    /// Collects the devices in the directory `fd` (named `path`) and below. Unreadable
    /// directories and files are skipped.
    void walk(const base::UniqueFd& fd, std::string& path, int depth)
    {
        bool has_modalias = false;
        bool has_driver = false;
        std::vector<std::string> children;
        for (;;) {
            const ssize_t n = ::getdents64(fd.get(), buffer_.data(), buffer_.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break; // the end, or a read error: keep what was listed
            const auto used = static_cast<size_t>(n);
            for (size_t offset = 0; offset < used;) {
                const char* record = buffer_.data() + offset;
                unsigned short length = 0;
                unsigned char d_type = DT_UNKNOWN;
                std::memcpy(&length, record + offsetof(dirent64, d_reclen), sizeof length);
                std::memcpy(&d_type, record + offsetof(dirent64, d_type), sizeof d_type);
                if (length == 0 || offset + length > used)
                    break; // cannot happen: the kernel wrote it
                offset += length;
                const char* name = record + offsetof(dirent64, d_name);
                if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0)
                    continue;
                const unsigned char type = entry_type(fd.get(), name, d_type);
                if (type == DT_DIR)
                    children.emplace_back(name);
                else if (type == DT_REG && std::strcmp(name, "modalias") == 0)
                    has_modalias = true;
                else if (type == DT_LNK && std::strcmp(name, "driver") == 0)
                    has_driver = true;
            }
        }

        if (has_modalias) {
            auto modalias = read_attribute(fd.get(), "modalias");
            if (modalias && !modalias->empty())
                devices_.push_back(SysfsDevice{path, std::move(*modalias), has_driver});
        }

        if (depth >= kMaxSysfsDepth)
            return;
        for (const std::string& child : children) {
            // O_NOFOLLOW: the entry may have been replaced by a symlink since it was listed.
            base::UniqueFd child_fd(
                ::openat(fd.get(), child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!child_fd.is_valid())
                continue;
            const size_t length = path.size();
            path += '/';
            path += child;
            walk(child_fd, path, depth + 1);
            path.resize(length);
        }
    }

    [[nodiscard]] std::vector<SysfsDevice> take_devices() { return std::move(devices_); }

private:
    std::vector<char> buffer_;
    std::vector<SysfsDevice> devices_;
};

/// `root` + "/" + `name`, without doubling a trailing slash of `root`.
std::string join(const std::string& root, const char* name)
{
    std::string path = root;
    while (path.size() > 1 && path.back() == '/')
        path.pop_back();
    if (path != "/")
        path += '/';
    path += name;
    return path;
}

} // namespace

base::Result<std::unique_ptr<DeviceMonitor>> make_udev_monitor(EventSource source)
{
    const std::string what = std::string("cannot create a udev monitor on the '") +
                             source_name(source) + "' netlink source";

    errno = 0;
    UdevPtr context(::udev_new());
    if (!context)
        return base::errno_error(errno_or_eio(), what + ": udev_new");

    errno = 0;
    UdevMonitorPtr monitor(::udev_monitor_new_from_netlink(context.get(), source_name(source)));
    if (!monitor)
        return base::errno_error(errno_or_eio(), what);

    // Best effort: raising the buffer above net.core.rmem_max needs CAP_NET_ADMIN; without
    // it the default buffer only makes an overflow (ENOBUFS, then a rescan) more likely.
    (void)::udev_monitor_set_receive_buffer_size(monitor.get(), kReceiveBufferSize);

    errno = 0;
    if (int result = ::udev_monitor_enable_receiving(monitor.get()); result < 0)
        return base::errno_error(code_of(result), what);

    errno = 0;
    const int fd = ::udev_monitor_get_fd(monitor.get());
    if (fd < 0)
        return base::errno_error(code_of(fd), what);
    // libudev opens its socket non-blocking already; read_events() relies on it, so make sure.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return base::errno_error(errno, what + ": cannot make its socket non-blocking");

    return std::make_unique<UdevMonitor>(std::move(context), std::move(monitor), fd, source);
}

base::Result<std::vector<SysfsDevice>> scan_sysfs_devices(const std::string& sysfs_root)
{
    std::string path = join(sysfs_root, "devices");
    auto top = base::open_directory(AT_FDCWD, path);
    if (!top)
        return base::Unexpected(top.error().with_context("cannot scan devices"));
    SysfsWalker walker;
    walker.walk(*top, path, 0);
    std::vector<SysfsDevice> devices = walker.take_devices();
    std::sort(devices.begin(), devices.end(),
              [](const SysfsDevice& a, const SysfsDevice& b) { return a.syspath < b.syspath; });
    return devices;
}

base::Result<SysfsDevice> read_sysfs_device(const std::string& syspath)
{
    const std::string what = "device '" + syspath + "'";
    base::UniqueFd dir(::openat(AT_FDCWD, syspath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.is_valid())
        return base::errno_error(errno, what);

    SysfsDevice device;
    device.syspath = syspath;
    auto modalias = read_attribute(dir.get(), "modalias");
    if (modalias) {
        device.modalias = std::move(*modalias);
    } else if (modalias.error().code == ENODEV) {
        // sysfs answers reads of a removed device's attributes with ENODEV.
        return base::errno_error(ENOENT, what);
    } else if (modalias.error().code != ENOENT) {
        return base::Unexpected(modalias.error().with_context(what));
    }
    struct stat st {};
    device.has_driver =
        ::fstatat(dir.get(), "driver", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
    return device;
}

bool is_udevd_running(const std::string& run_dir)
{
    struct stat st {};
    return ::stat(join(run_dir, "udev/control").c_str(), &st) == 0;
}

} // namespace kmodd::sys
