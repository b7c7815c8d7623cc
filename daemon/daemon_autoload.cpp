// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's autoloading glue: device events and sysfs scans into the Autoloader, its requests
// onto the kernel worker, their outcomes back to it, to the bus and to the log.
#include <sys/epoll.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "sys/devices.hpp"

namespace kmodd::daemon {

namespace {

void log(service::Severity severity, const std::string& message)
{
    if (message.empty())
        return;
    switch (severity) {
    case service::Severity::Debug:
        spdlog::debug("{}", message);
        break;
    case service::Severity::Info:
        spdlog::info("{}", message);
        break;
    case service::Severity::Warning:
        spdlog::warn("{}", message);
        break;
    }
}

} // namespace

base::Result<void> Daemon::set_up_autoload()
{
    bool is_udevd = sys::is_udevd_running();
    service::AutoloadMode mode =
        options_.autoload.value_or(!options_.sandbox_dir.empty() ? service::AutoloadMode::Off
                                   : is_udevd ? service::AutoloadMode::UnboundOnly
                                              : service::AutoloadMode::On);
    if (mode == service::AutoloadMode::Off)
        return {};
    service::AutoloadSettings settings;
    settings.mode = mode;
    autoloader_ = std::make_unique<service::Autoloader>(settings, [](const std::string& syspath) {
        auto device = sys::read_sysfs_device(syspath);
        return device && device->has_driver;
    });
    UeventSource source =
        options_.uevent_source.value_or(is_udevd ? UeventSource::Udev : UeventSource::Kernel);
    if (source != UeventSource::None) {
        auto monitor = sys::make_udev_monitor(
            source == UeventSource::Udev ? sys::EventSource::Udev : sys::EventSource::Kernel);
        if (monitor) {
            devices_ = std::move(*monitor);
            if (auto added =
                    loop_->add(devices_->fd(), EPOLLIN, [this](uint32_t) { on_devices_ready(); });
                !added)
                return added;
        } else {
            spdlog::warn("cannot listen to device events ({}): drivers are loaded only for devices "
                         "found at start and after the index changes",
                         monitor.error().message);
        }
    }
    // Held back by the rate limit: let them through as the limit allows.
    if (auto ticking = loop_->every(std::chrono::milliseconds(250),
                                    [this] {
                                        if (autoloader_->has_deferred())
                                            request_loads(autoloader_->take_deferred());
                                    });
        !ticking)
        return ticking;
    spdlog::info("autoloading drivers for devices ({}, events from {})",
                 mode == service::AutoloadMode::On ? "every new device"
                                                   : "devices left without a driver",
                 !devices_                      ? "nowhere"
                 : source == UeventSource::Udev ? "udev"
                                                : "kernel");
    return {};
}

void Daemon::coldplug()
{
    // Off the loop: a real /sys has thousands of entries to walk.
    reader_worker_->post([this] {
        auto devices = sys::scan_sysfs_devices(options_.sysfs);
        loop_->post([this, devices = std::move(devices)] {
            if (!devices) {
                spdlog::warn("cannot scan '{}' for devices: {}", options_.sysfs,
                             devices.error().message);
                return;
            }
            request_loads(autoloader_->on_coldplug(*devices));
        });
    });
}

void Daemon::on_devices_ready()
{
    auto events = devices_->read_events();
    if (!events) {
        if (events.error().code == ENOBUFS) {
            // The kernel dropped events: what they said is in sysfs now.
            spdlog::warn("device events were lost: scanning '{}' again", options_.sysfs);
            coldplug();
        } else {
            spdlog::error("reading device events: {}", events.error().message);
        }
        return;
    }
    std::vector<service::AutoloadRequest> requests;
    for (const auto& event : *events) {
        if (auto request = autoloader_->on_event(event))
            requests.push_back(std::move(*request));
    }
    request_loads(std::move(requests));
}

void Daemon::request_loads(std::vector<service::AutoloadRequest> requests)
{
    auto current = publisher_->current();
    for (auto& request : requests) {
        if (!current) {
            autoloader_->on_result(request, service::AutoloadOutcome::NoModule);
            continue;
        }
        kernel_worker_->post([this, current, request = std::move(request)] {
            if (is_stopping_)
                return; // the next start's coldplug asks again
            loader::Provenance provenance;
            provenance.device = loader::DeviceRef{request.syspath, request.modalias};
            auto result = modules_->load(*current, request.modalias, "", loader::Origin::Autoload,
                                         provenance);
            loop_->post([this, request, result = std::move(result)] {
                service::AutoloadReport report = autoloader_->on_load_result(request, result);
                for (const auto& inserted : report.inserted)
                    object_->module_loaded(inserted);
                if (!report.inserted.empty())
                    object_->device_autoloaded(request.syspath, request.modalias, report.inserted);
                log(report.severity, report.message);
                note_records();
            });
        });
    }
}

std::vector<WaitingDevice> Daemon::waiting_devices() const
{
    std::vector<WaitingDevice> devices;
    if (!autoloader_)
        return devices;
    for (const auto& device : autoloader_->waiting())
        devices.push_back({device.syspath, device.modalias});
    return devices;
}

} // namespace kmodd::daemon
