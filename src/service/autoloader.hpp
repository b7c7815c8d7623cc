// SPDX-License-Identifier: LGPL-2.1-or-later
// Autoloading's device side: which devices need a module, which wait, and what a load gave.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "service/request_error.hpp"
#include "sys/devices.hpp"

namespace kmodd::service {

/// What kmodd does with device uevents.
enum class AutoloadMode {
    Off,         ///< nothing
    On,          ///< every "add" with a MODALIAS, as udevd's kmod builtin does
    UnboundOnly, ///< only devices that still have no driver (udevd had its turn)
};

struct AutoloadSettings {
    AutoloadMode mode = AutoloadMode::On;
    /// Rate limit: at most `burst` loads at once, refilled at `per_second` a second; what
    /// exceeds it waits for take_deferred() (an event storm cannot flood the kernel worker).
    double burst = 32;
    double per_second = 16;
};

/// A load to do for a device: load `modalias` as an alias (blacklist applied, origin
/// autoload).
struct AutoloadRequest {
    std::string syspath;
    std::string modalias;
};

/// What a load for a device gave.
enum class AutoloadOutcome {
    Loaded,      ///< modules inserted (or everything was there already): the device is served
    NoModule,    ///< nothing in the index matches: the device waits for a driver
    Blacklisted, ///< only blacklisted modules match: nobody wants it loaded
    Unsuitable,  ///< the kernel said the module is not for this device (ENODEV): as udevd,
                 ///< kmodd does not insist
    Failed,      ///< the load failed; tried again when the index changes
};

/// How loud a front-end should say something.
enum class Severity { Debug, Info, Warning };

/// A load for a device, classified once (as systemd's module_load_and_warn does): its outcome,
/// the modules it inserted, and the sentence to log at `severity` (empty: nothing to say).
struct AutoloadReport {
    AutoloadOutcome outcome = AutoloadOutcome::Loaded;
    std::vector<std::string> inserted;
    Severity severity = Severity::Debug;
    std::string message;
};

/// The device side of autoloading, without I/O: which devices need a module now, which wait
/// for one, and which to try again after the index changed (the case nobody handles: a
/// driver that arrives after its device). The daemon feeds it events, the coldplug scan and
/// index changes, runs the loads it asks for, and reports each outcome back.
///
/// A device is asked for once per index generation: after NoModule or Failed it waits until
/// on_index_changed(). Requests for the same modalias in flight are not repeated (a storm of
/// identical devices costs one load). Not thread-safe: the event loop owns it.
class Autoloader {
public:
    using Clock = std::chrono::steady_clock;
    using Now = std::function<Clock::time_point()>;
    /// Whether a driver is bound to the device at `syspath` now.
    using DriverProbe = std::function<bool(const std::string& syspath)>;

    Autoloader(AutoloadSettings settings, DriverProbe has_driver, Now now = &Clock::now);

    [[nodiscard]] AutoloadMode mode() const { return settings_.mode; }

    /// A uevent arrived. "add" with a MODALIAS may give a request; "bind" and "remove" end a
    /// device's wait.
    [[nodiscard]] std::optional<AutoloadRequest> on_event(const sys::DeviceEvent& event);

    /// Devices found in sysfs at start: those without a driver (in UnboundOnly mode), or all
    /// (in On mode), give requests.
    [[nodiscard]] std::vector<AutoloadRequest>
    on_coldplug(const std::vector<sys::SysfsDevice>& devices);

    /// The index changed: waiting devices that still have no driver are asked for again.
    [[nodiscard]] std::vector<AutoloadRequest> on_index_changed();

    /// The outcome of a request given out before.
    void on_result(const AutoloadRequest& request, AutoloadOutcome outcome);

    /// The result of loading a request's modalias: classified (NotFound: NoModule;
    /// Blacklisted; ENODEV: Unsuitable, as udevd's kmod builtin; any other failure: Failed),
    /// recorded as on_result() does, and phrased. A failure is a warning the first time for
    /// that device and message and debug after it, since it is tried again after every index
    /// change.
    [[nodiscard]] AutoloadReport
    on_load_result(const AutoloadRequest& request,
                   const RequestResult<std::vector<std::string>>& result);

    /// Requests held back by the rate limit, as far as the limit now allows.
    [[nodiscard]] std::vector<AutoloadRequest> take_deferred();
    [[nodiscard]] bool has_deferred() const { return !deferred_.empty(); }

    /// Devices with a modalias and no driver for which no module was found (or loading
    /// failed), by syspath.
    [[nodiscard]] std::vector<AutoloadRequest> waiting() const;

private:
    enum class State { InFlight, Deferred, Waiting };
    struct Device {
        std::string modalias;
        State state = State::InFlight;
    };

    [[nodiscard]] std::optional<AutoloadRequest> ask(const std::string& syspath,
                                                     const std::string& modalias);
    [[nodiscard]] bool take_token();

    AutoloadSettings settings_;
    DriverProbe has_driver_;
    Now now_;
    double tokens_;
    Clock::time_point refilled_;
    std::map<std::string, Device> devices_;   ///< by syspath: in flight, deferred or waiting
    std::map<std::string, size_t> in_flight_; ///< modalias -> requests out (never 0)
    std::vector<AutoloadRequest> deferred_;
    std::set<std::string> warned_; ///< "syspath\nmessage" of failures logged as warnings
};

} // namespace kmodd::service
