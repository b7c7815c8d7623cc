// SPDX-License-Identifier: LGPL-2.1-or-later
// The order of the alias index: sorting a build's alias entries, merging a later build's in,
// and the order kept between runs (AliasOrder) that spares a one-shot run the whole sort.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "depmod/outputs.hpp"

namespace kmodd::depmod {

namespace {

/// Per module position, where its aliases' ids begin (an alias's id is its module's start plus
/// its ordinal), then their total: counted from `entries`, in any order.
template <typename Entries>
std::vector<uint32_t> alias_starts(const Entries& entries, size_t modules)
{
    std::vector<uint32_t> starts(modules + 1, 0);
    for (const auto& e : entries)
        ++starts[e.fragment->position + 1];
    for (size_t p = 0; p < modules; ++p)
        starts[p + 1] += starts[p];
    return starts;
}

} // namespace

bool OutputBuilder::alias_before(const AliasEntry& a, const AliasEntry& b)
{
    if (int c = a.key().compare(b.key()); c != 0)
        return c < 0;
    if (a.fragment->position != b.fragment->position)
        return a.fragment->position < b.fragment->position;
    return a.ordinal > b.ordinal;
}

bool OutputBuilder::sort_as_expected(std::vector<AliasEntry>& fresh) const
{
    const AliasOrder& old = expected_order_;
    const size_t modules = module_keys_.size();
    if (old.module_keys.size() != modules || old.starts.size() != modules + 1 ||
        old.starts[0] != 0 || old.starts[modules] != old.sorted.size() ||
        !std::is_sorted(old.starts.begin(), old.starts.end()))
        return false;
    // This build's ids, and where each alias is in `fresh`.
    const std::vector<uint32_t> starts = alias_starts(fresh, modules);
    // Each (module, ordinal) once: a second entry for one would leave another's place empty.
    constexpr uint32_t kEmpty = UINT32_MAX;
    std::vector<uint32_t> at(fresh.size(), kEmpty);
    for (uint32_t i = 0; i < fresh.size(); ++i) {
        const uint32_t p = fresh[i].fragment->position;
        if (fresh[i].ordinal >= starts[p + 1] - starts[p] ||
            at[starts[p] + fresh[i].ordinal] != kEmpty)
            return false;
        at[starts[p] + fresh[i].ordinal] = i;
    }
    // The modules whose aliases are taken in the old order: the same file, as many aliases.
    std::vector<uint8_t> same(modules);
    std::vector<uint32_t> owner(old.sorted.size());
    for (uint32_t p = 0; p < modules; ++p) {
        same[p] = old.module_keys[p] == module_keys_[p] &&
                  old.starts[p + 1] - old.starts[p] == starts[p + 1] - starts[p];
        std::fill(owner.begin() + old.starts[p], owner.begin() + old.starts[p + 1], p);
    }
    std::vector<AliasEntry> sorted;
    sorted.reserve(fresh.size());
    std::vector<uint8_t> taken(fresh.size());
    for (const uint32_t id : old.sorted) {
        if (id >= owner.size())
            return false;
        const uint32_t p = owner[id];
        if (same[p] == 0)
            continue;
        const uint32_t i = at[starts[p] + (id - old.starts[p])];
        if (taken[i] != 0)
            return false;
        taken[i] = 1;
        sorted.push_back(fresh[i]);
    }
    const auto kept = static_cast<std::ptrdiff_t>(sorted.size());
    for (const AliasEntry& e : fresh) {
        if (same[e.fragment->position] == 0)
            sorted.push_back(e);
    }
    // Every alias once, then. update_alias_entries() checks the order, as after any merge: in
    // order, it is the one order there is; out of order (a module changed within the same
    // key), it is sorted.
    if (sorted.size() != fresh.size())
        return false;
    std::sort(sorted.begin() + kept, sorted.end(), alias_before);
    std::inplace_merge(sorted.begin(), sorted.begin() + kept, sorted.end(), alias_before);
    fresh = std::move(sorted);
    return true;
}

void OutputBuilder::update_alias_entries(std::vector<AliasEntry> fresh, bool removed_any)
{
    if (removed_any) {
        std::erase_if(alias_entries_,
                      [&](const AliasEntry& e) { return e.fragment->build != build_; });
        std::erase_if(fragments_, [&](const auto& item) { return item.second.build != build_; });
    }
    if (alias_entries_.empty()) {
        // A first build's entries are all fresh: sorted where they are, not copied, unless
        // the last run's order serves (checked below).
        if (!sort_as_expected(fresh))
            std::sort(fresh.begin(), fresh.end(), alias_before);
        expected_order_ = AliasOrder();
        alias_entries_ = std::move(fresh);
    } else if (!fresh.empty()) {
        std::sort(fresh.begin(), fresh.end(), alias_before);
        // Merged in place: the entries of a full build are not held twice. Room for a few
        // more modules, not the usual doubling: the vector lives as long as the engine.
        auto middle = static_cast<std::ptrdiff_t>(alias_entries_.size());
        const size_t needed = alias_entries_.size() + fresh.size();
        if (alias_entries_.capacity() < needed)
            alias_entries_.reserve(needed + needed / 64);
        alias_entries_.insert(alias_entries_.end(), fresh.begin(), fresh.end());
        fresh = {};
        std::inplace_merge(alias_entries_.begin(), alias_entries_.begin() + middle,
                           alias_entries_.end(), alias_before);
    }
    // Positions of the other modules keep their relative order unless modules.order changed;
    // then the entries of equal keys need sorting again.
    if (!std::is_sorted(alias_entries_.begin(), alias_entries_.end(), alias_before))
        std::sort(alias_entries_.begin(), alias_entries_.end(), alias_before);
}

AliasOrder OutputBuilder::alias_order() const
{
    AliasOrder order;
    order.module_keys = module_keys_;
    const size_t modules = module_keys_.size();
    order.starts = alias_starts(alias_entries_, modules);
    order.sorted.reserve(alias_entries_.size());
    for (const AliasEntry& e : alias_entries_)
        order.sorted.push_back(order.starts[e.fragment->position] + e.ordinal);
    return order;
}

} // namespace kmodd::depmod
