// SPDX-License-Identifier: LGPL-2.1-or-later
// How many rebuilds a debounced burst of changes may give, from how the burst really went, so
// a busy machine (pauses, a slow writer) does not fail a test that a quiet one passes.
#pragma once

#include <chrono>
#include <cstddef>

namespace kmodd::test {

/// Times a burst of changes as its writer makes them: call change() after each.
class BurstTiming {
public:
    using Clock = std::chrono::steady_clock;

    explicit BurstTiming(std::chrono::milliseconds quiet) : quiet_(quiet) {}

    void change()
    {
        auto now = Clock::now();
        if (count_ > 0 && now - last_ > quiet_)
            ++pauses_;
        if (count_ == 0)
            first_ = now;
        last_ = now;
        ++count_;
    }

    /// Pauses between two changes longer than the quiet period: each may end a batch.
    [[nodiscard]] size_t pauses() const { return pauses_; }
    [[nodiscard]] std::chrono::milliseconds duration() const
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(last_ - first_);
    }

    /// The most batches the debouncer's design allows for this burst: a batch at most every
    /// `max_delay` while changes keep coming, one more per pause that ended a batch early, the
    /// last one, and one for the watcher reading its events late (the reader thread can be
    /// descheduled in the middle of a burst too).
    [[nodiscard]] size_t max_batches(std::chrono::milliseconds max_delay) const
    {
        return 2 + static_cast<size_t>(duration() / max_delay) + pauses_;
    }

private:
    std::chrono::milliseconds quiet_;
    Clock::time_point first_{};
    Clock::time_point last_{};
    size_t count_ = 0;
    size_t pauses_ = 0;
};

} // namespace kmodd::test
