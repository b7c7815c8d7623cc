// SPDX-License-Identifier: LGPL-2.1-or-later
#include "depmod/index_writer.hpp"

#include <algorithm>
#include <array>

namespace kmodd::depmod {

namespace {

constexpr uint32_t kMagic = 0xB007F457;
constexpr uint32_t kVersion = 0x00020001;
constexpr uint32_t kFlagPrefix = 0x80000000;
constexpr uint32_t kFlagValues = 0x40000000;
constexpr uint32_t kFlagChildren = 0x20000000;

void put_u32(std::string& out, uint32_t v)
{
    const std::array<char, 4> bytes = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out.append(bytes.data(), bytes.size());
}

bool is_ascii(std::string_view s)
{
    return std::all_of(s.begin(), s.end(), [](char c) {
        return static_cast<unsigned char>(c) < 128 && c != '\0';
    });
}

} // namespace

bool IndexWriter::add(std::string_view key, std::string_view value, uint32_t priority)
{
    if (!is_ascii(key) || !is_ascii(value))
        return false;
    entries_.push_back(Entry{key, value, priority, static_cast<uint32_t>(entries_.size())});
    sorted_ = false;
    return true;
}

uint32_t IndexWriter::write_node(size_t lo, size_t hi, size_t depth, bool is_root,
                                 std::string& out) const
{
    // Keys in [lo, hi) are sorted and share their first `depth` characters. A node's prefix
    // is what all of them share beyond that (the root's is always empty).
    size_t prefix_len = 0;
    if (!is_root) {
        std::string_view first = entries_[lo].key.substr(depth);
        std::string_view last = entries_[hi - 1].key.substr(depth);
        size_t limit = std::min(first.size(), last.size());
        while (prefix_len < limit && first[prefix_len] == last[prefix_len])
            ++prefix_len;
    }
    const size_t split = depth + prefix_len;

    // Values: the keys that end here (they sort first). Children: runs by next character.
    size_t values_end = lo;
    while (values_end < hi && entries_[values_end].key.size() == split)
        ++values_end;

    std::array<uint32_t, 128> child_words{};
    int first_char = 128, last_char = -1;
    for (size_t i = values_end; i < hi;) {
        auto c = static_cast<unsigned char>(entries_[i].key[split]);
        size_t j = i + 1;
        while (j < hi && static_cast<unsigned char>(entries_[j].key[split]) == c)
            ++j;
        child_words[c] = write_node(i, j, split + 1, false, out);
        first_char = std::min<int>(first_char, c);
        last_char = std::max<int>(last_char, c);
        i = j;
    }

    auto offset = static_cast<uint32_t>(out.size());
    if (prefix_len > 0) {
        out.append(entries_[lo].key.substr(depth, prefix_len));
        out.push_back('\0');
        offset |= kFlagPrefix;
    }
    if (last_char >= 0) {
        out.push_back(static_cast<char>(first_char));
        out.push_back(static_cast<char>(last_char));
        for (int c = first_char; c <= last_char; ++c)
            put_u32(out, child_words[static_cast<size_t>(c)]);
        offset |= kFlagChildren;
    }
    if (values_end > lo) {
        put_u32(out, static_cast<uint32_t>(values_end - lo));
        for (size_t i = lo; i < values_end; ++i) {
            put_u32(out, entries_[i].priority);
            out.append(entries_[i].value);
            out.push_back('\0');
        }
        offset |= kFlagValues;
    }
    return offset;
}

std::string IndexWriter::serialize()
{
    if (!sorted_) {
        std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
            if (int c = a.key.compare(b.key); c != 0)
                return c < 0;
            if (a.priority != b.priority)
                return a.priority < b.priority;
            return a.seq > b.seq;
        });
        sorted_ = true;
    }
    std::string out;
    size_t estimate = 12;
    for (const Entry& e : entries_)
        estimate += e.key.size() / 2 + e.value.size() + 12;
    out.reserve(estimate);
    put_u32(out, kMagic);
    put_u32(out, kVersion);
    put_u32(out, 0);
    uint32_t root = 0;
    if (entries_.empty()) {
        root = 12;
    } else {
        root = write_node(0, entries_.size(), 0, true, out);
    }
    for (int i = 0; i < 4; ++i)
        out[8 + static_cast<size_t>(i)] = static_cast<char>(root >> (24 - 8 * i));
    return out;
}

std::vector<std::pair<std::string_view, std::string_view>> IndexWriter::duplicates() const
{
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    pairs.reserve(entries_.size());
    for (const Entry& e : entries_)
        pairs.emplace_back(e.key, e.value);
    std::sort(pairs.begin(), pairs.end());
    std::vector<std::pair<std::string_view, std::string_view>> out;
    for (size_t i = 1; i < pairs.size(); ++i) {
        if (pairs[i] == pairs[i - 1] && (out.empty() || out.back() != pairs[i]))
            out.push_back(pairs[i]);
    }
    return out;
}

} // namespace kmodd::depmod
