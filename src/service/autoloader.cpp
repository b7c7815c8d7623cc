// SPDX-License-Identifier: LGPL-2.1-or-later
// Autoloading's device side: which devices need a module, which wait, and what a load gave.
#include "service/autoloader.hpp"

#include <cerrno>

#include <algorithm>

#include "base/strings.hpp"

namespace kmodd::service {

Autoloader::Autoloader(AutoloadSettings settings, DriverProbe has_driver, Now now)
    : settings_(settings), has_driver_(std::move(has_driver)), now_(std::move(now)),
      tokens_(settings.burst), refilled_(now_())
{
}

bool Autoloader::take_token()
{
    auto now = now_();
    double elapsed = std::chrono::duration<double>(now - refilled_).count();
    refilled_ = now;
    tokens_ = std::min(settings_.burst, tokens_ + elapsed * settings_.per_second);
    if (tokens_ < 1)
        return false;
    tokens_ -= 1;
    return true;
}

std::optional<AutoloadRequest> Autoloader::ask(const std::string& syspath,
                                               const std::string& modalias)
{
    auto it = devices_.find(syspath);
    if (it != devices_.end() && it->second.state != State::Waiting &&
        it->second.modalias == modalias)
        return std::nullopt; // already being handled
    devices_[syspath] = Device{modalias, State::InFlight};
    // Another device with the same modalias is being served: its outcome is ours too.
    if (in_flight_.contains(modalias))
        return std::nullopt;
    if (!take_token()) {
        devices_[syspath].state = State::Deferred;
        deferred_.push_back({syspath, modalias});
        return std::nullopt;
    }
    ++in_flight_[modalias];
    return AutoloadRequest{syspath, modalias};
}

std::optional<AutoloadRequest> Autoloader::on_event(const sys::DeviceEvent& event)
{
    if (settings_.mode == AutoloadMode::Off || event.syspath.empty())
        return std::nullopt;
    if (event.action == "remove" || event.action == "bind") {
        auto it = devices_.find(event.syspath);
        // A device whose load is running stays known until its outcome arrives.
        if (it != devices_.end() && it->second.state != State::InFlight)
            devices_.erase(it);
        return std::nullopt;
    }
    // Only "add": loading on change/bind/unbind would bring back modules a user removed
    // (the reason udevd loads on "add" only).
    if (event.action != "add" || event.modalias.empty() || !event.driver.empty())
        return std::nullopt;
    if (settings_.mode == AutoloadMode::UnboundOnly && has_driver_(event.syspath))
        return std::nullopt;
    return ask(event.syspath, event.modalias);
}

std::vector<AutoloadRequest> Autoloader::on_coldplug(const std::vector<sys::SysfsDevice>& devices)
{
    std::vector<AutoloadRequest> requests;
    if (settings_.mode == AutoloadMode::Off)
        return requests;
    for (const sys::SysfsDevice& device : devices) {
        if (device.has_driver || device.modalias.empty())
            continue;
        if (auto request = ask(device.syspath, device.modalias))
            requests.push_back(std::move(*request));
    }
    return requests;
}

std::vector<AutoloadRequest> Autoloader::on_index_changed()
{
    std::vector<AutoloadRequest> requests;
    std::vector<std::pair<std::string, std::string>> again;
    for (auto it = devices_.begin(); it != devices_.end();) {
        if (it->second.state != State::Waiting) {
            ++it;
            continue;
        }
        if (has_driver_(it->first)) {
            it = devices_.erase(it);
            continue;
        }
        again.emplace_back(it->first, it->second.modalias);
        ++it;
    }
    for (const auto& [syspath, modalias] : again) {
        if (auto request = ask(syspath, modalias))
            requests.push_back(std::move(*request));
    }
    return requests;
}

void Autoloader::on_result(const AutoloadRequest& request, AutoloadOutcome outcome)
{
    if (auto it = in_flight_.find(request.modalias); it != in_flight_.end()) {
        if (--it->second == 0)
            in_flight_.erase(it);
    }
    for (auto it = devices_.begin(); it != devices_.end();) {
        Device& device = it->second;
        if (device.modalias != request.modalias || device.state != State::InFlight) {
            ++it;
            continue;
        }
        if (outcome == AutoloadOutcome::NoModule || outcome == AutoloadOutcome::Failed) {
            device.state = State::Waiting;
            ++it;
        } else {
            it = devices_.erase(it);
        }
    }
}

AutoloadReport Autoloader::on_load_result(const AutoloadRequest& request,
                                          const RequestResult<std::vector<std::string>>& result)
{
    AutoloadReport report;
    const std::string device = request.syspath + " (" + request.modalias + ")";
    if (result) {
        report.inserted = *result;
        if (!result->empty()) {
            report.severity = Severity::Info;
            report.message = "loaded " + base::join(*result, ", ") + " for " + device;
        }
    } else if (result.error().kind == Failure::NotFound) {
        report.outcome = AutoloadOutcome::NoModule;
        report.message = "no module for " + device + ": it waits for a driver";
    } else if (result.error().kind == Failure::Blacklisted) {
        report.outcome = AutoloadOutcome::Blacklisted;
        report.message = result.error().message;
    } else if (result.error().code == ENODEV) {
        // Probed and found no hardware of its kind: udevd's kmod builtin treats this as "not
        // for this device" too.
        report.outcome = AutoloadOutcome::Unsuitable;
        report.severity = Severity::Info;
        report.message = device + ": " + result.error().message +
                         "; the device does not wait for another driver";
    } else {
        report.outcome = AutoloadOutcome::Failed;
        bool is_new = warned_.insert(request.syspath + "\n" + result.error().message).second;
        report.severity = is_new ? Severity::Warning : Severity::Debug;
        report.message = "loading a driver for " + device + " failed" + (is_new ? "" : " again") +
                         ": " + result.error().message;
    }
    on_result(request, report.outcome);
    return report;
}

std::vector<AutoloadRequest> Autoloader::take_deferred()
{
    std::vector<AutoloadRequest> requests;
    size_t used = 0;
    for (; used < deferred_.size(); ++used) {
        const AutoloadRequest& held = deferred_[used];
        auto it = devices_.find(held.syspath);
        if (it == devices_.end() || it->second.state != State::Deferred ||
            it->second.modalias != held.modalias)
            continue; // gone (removed, bound) meanwhile
        if (in_flight_.contains(held.modalias)) {
            it->second.state = State::InFlight;
            continue;
        }
        if (!take_token())
            break;
        it->second.state = State::InFlight;
        ++in_flight_[held.modalias];
        requests.push_back(held);
    }
    deferred_.erase(deferred_.begin(), deferred_.begin() + static_cast<std::ptrdiff_t>(used));
    return requests;
}

std::vector<AutoloadRequest> Autoloader::waiting() const
{
    std::vector<AutoloadRequest> devices;
    for (const auto& [syspath, device] : devices_) {
        if (device.state == State::Waiting)
            devices.push_back({syspath, device.modalias});
    }
    return devices;
}

} // namespace kmodd::service
