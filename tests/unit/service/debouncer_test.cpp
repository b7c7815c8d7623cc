// SPDX-License-Identifier: LGPL-2.1-or-later
// The debouncer on a fake clock: it fires after a quiet period, never later than the maximum
// delay, and has no deadline when nothing is pending.
#include <gtest/gtest.h>

#include "service/debouncer.hpp"

namespace kmodd::service {
namespace {

using std::chrono::milliseconds;

struct FakeClock {
    Debouncer::TimePoint now{std::chrono::seconds(1000)};
    void advance(milliseconds by) { now += by; }
    Debouncer::Now function()
    {
        return [this] { return now; };
    }
};

Debouncer make(FakeClock& clock, milliseconds quiet = milliseconds(50),
               milliseconds max_delay = milliseconds(200))
{
    return Debouncer({quiet, max_delay}, clock.function());
}

TEST(Debouncer, WithNothingPendingThereIsNoDeadlineAndNothingFires)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    EXPECT_FALSE(debouncer.has_pending());
    EXPECT_FALSE(debouncer.deadline().has_value());
    clock.advance(milliseconds(10'000));
    EXPECT_FALSE(debouncer.fire_if_due());
}

TEST(Debouncer, FiresOnceTheQuietPeriodPassedWithoutEvents)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    const auto start = clock.now;
    debouncer.note_event();
    ASSERT_TRUE(debouncer.deadline().has_value());
    EXPECT_EQ(*debouncer.deadline(), start + milliseconds(50));
    clock.advance(milliseconds(49));
    EXPECT_FALSE(debouncer.fire_if_due());
    clock.advance(milliseconds(1));
    EXPECT_TRUE(debouncer.fire_if_due());
    EXPECT_FALSE(debouncer.has_pending());
    EXPECT_FALSE(debouncer.deadline().has_value());
    EXPECT_FALSE(debouncer.fire_if_due()) << "one burst fires once";
}

TEST(Debouncer, EachEventPushesTheQuietDeadlineBack)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    debouncer.note_event();
    clock.advance(milliseconds(40));
    debouncer.note_event();
    clock.advance(milliseconds(40));
    EXPECT_FALSE(debouncer.fire_if_due()) << "only 40 ms since the last event";
    EXPECT_EQ(*debouncer.deadline(), clock.now + milliseconds(10));
    clock.advance(milliseconds(10));
    EXPECT_TRUE(debouncer.fire_if_due());
}

TEST(Debouncer, AContinuousStreamStillFiresAtTheMaximumDelay)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    const auto first = clock.now;
    int fired_at_ms = -1;
    for (int t = 0; t <= 1000 && fired_at_ms < 0; t += 10) {
        debouncer.note_event();
        if (debouncer.fire_if_due())
            fired_at_ms = t;
        else
            clock.advance(milliseconds(10));
    }
    EXPECT_EQ(fired_at_ms, 200);
    EXPECT_EQ(clock.now, first + milliseconds(200));
}

TEST(Debouncer, TheDeadlineIsTheEarlierOfQuietAndMaximumDelay)
{
    FakeClock clock;
    Debouncer debouncer = make(clock, milliseconds(50), milliseconds(120));
    const auto first = clock.now;
    debouncer.note_event();
    clock.advance(milliseconds(100));
    debouncer.note_event();
    EXPECT_EQ(*debouncer.deadline(), first + milliseconds(120));
}

TEST(Debouncer, AfterFiringTheNextEventStartsANewBurst)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    debouncer.note_event();
    clock.advance(milliseconds(300));
    ASSERT_TRUE(debouncer.fire_if_due());
    debouncer.note_event();
    EXPECT_EQ(*debouncer.deadline(), clock.now + milliseconds(50))
        << "the maximum delay counts from the new burst's first event";
}

TEST(Debouncer, ResetForgetsWhatIsPending)
{
    FakeClock clock;
    Debouncer debouncer = make(clock);
    debouncer.note_event();
    debouncer.reset();
    clock.advance(milliseconds(500));
    EXPECT_FALSE(debouncer.fire_if_due());
}

} // namespace
} // namespace kmodd::service
