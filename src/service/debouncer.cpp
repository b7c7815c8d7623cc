// SPDX-License-Identifier: LGPL-2.1-or-later
// The quiet period and maximum delay between a burst of changes and its rebuild.
#include "service/debouncer.hpp"

#include <algorithm>

namespace kmodd::service {

Debouncer::Debouncer(Settings settings, Now now) : settings_(settings), now_(std::move(now)) {}

void Debouncer::note_event()
{
    last_ = now_();
    if (!first_)
        first_ = last_;
}

std::optional<Debouncer::TimePoint> Debouncer::deadline() const
{
    if (!first_)
        return std::nullopt;
    return std::min(last_ + settings_.quiet, *first_ + settings_.max_delay);
}

bool Debouncer::fire_if_due()
{
    auto due = deadline();
    if (!due || now_() < *due)
        return false;
    reset();
    return true;
}

void Debouncer::reset()
{
    first_.reset();
}

} // namespace kmodd::service
