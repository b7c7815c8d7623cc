// SPDX-License-Identifier: LGPL-2.1-or-later
// The quiet period and maximum delay between a burst of changes and its rebuild.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace kmodd::service {

/// Turns a stream of events into rare "act now" moments: it fires once `quiet` has passed
/// without an event, but never later than `max_delay` after the first event still pending
/// (so a continuous stream cannot postpone the work forever). Pure logic: time comes from the
/// injected clock, nothing waits. Not thread-safe.
class Debouncer {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;
    using Now = std::function<TimePoint()>;

    struct Settings {
        std::chrono::milliseconds quiet{50};       ///< silence that ends a burst
        std::chrono::milliseconds max_delay{1000}; ///< longest wait after the first event
    };

    /// `now` is asked for the time on every call; std::chrono::steady_clock::now by default.
    explicit Debouncer(Settings settings, Now now = &Clock::now);

    /// An event arrived.
    void note_event();

    /// Whether events are waiting for the next firing.
    [[nodiscard]] bool has_pending() const { return first_.has_value(); }

    /// When to call fire_if_due() next (for a timerfd, absolute on the same clock); nullopt
    /// when nothing is pending.
    [[nodiscard]] std::optional<TimePoint> deadline() const;

    /// True when events are pending and the deadline has passed; the pending state is then
    /// cleared (the next event starts a new burst).
    [[nodiscard]] bool fire_if_due();

    /// Forgets pending events (after the caller acted on them for another reason).
    void reset();

    [[nodiscard]] const Settings& settings() const { return settings_; }

private:
    Settings settings_;
    Now now_;
    std::optional<TimePoint> first_; ///< first event of the pending burst
    TimePoint last_{};               ///< latest event of the pending burst
};

} // namespace kmodd::service
