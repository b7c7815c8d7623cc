// SPDX-License-Identifier: LGPL-2.1-or-later
// Writing kmod's binary indexes byte for byte as kmod 30 lays them out.
#include "depmod/index_writer.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "depmod/index_format.hpp"

namespace kmodd::depmod {

namespace {

using namespace index_format;

void put_u32(std::string& out, uint32_t v)
{
    const std::array<char, 4> bytes = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out.append(bytes.data(), bytes.size());
}

/// 7-bit ASCII without NUL, eight bytes at a time: it runs over every key and value of
/// every index.
bool is_ascii(std::string_view s)
{
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHighs = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w = 0;
        std::memcpy(&w, s.data() + i, 8);
        // A byte >= 0x80, or a zero byte (the classic "has zero byte" test).
        if ((w & kHighs) != 0 || ((w - kOnes) & ~w & kHighs) != 0)
            return false;
    }
    for (; i < s.size(); ++i) {
        auto b = static_cast<unsigned char>(s[i]);
        if (b == 0 || b >= 0x80)
            return false;
    }
    return true;
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

bool IndexWriter::add_in_order(std::string_view key, std::string_view value, uint32_t priority)
{
    if (!is_ascii(key) || !is_ascii(value))
        return false;
    entries_.push_back(Entry{key, value, priority, static_cast<uint32_t>(entries_.size())});
    return true;
}

uint32_t IndexWriter::write_node(size_t lo, size_t hi, size_t depth, bool is_root, std::string& out)
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

    // Children in ascending character order (the keys are sorted), written before this node;
    // their words wait on a stack shared by the whole recursion.
    const size_t base = children_.size();
    for (size_t i = values_end; i < hi;) {
        auto c = static_cast<unsigned char>(entries_[i].key[split]);
        size_t j = i + 1;
        while (j < hi && static_cast<unsigned char>(entries_[j].key[split]) == c)
            ++j;
        uint32_t word = write_node(i, j, split + 1, false, out);
        children_.push_back({c, word});
        i = j;
    }

    auto offset = static_cast<uint32_t>(out.size());
    if (prefix_len > 0) {
        out.append(entries_[lo].key.substr(depth, prefix_len));
        out.push_back('\0');
        offset |= kFlagPrefix;
    }
    if (children_.size() > base) {
        out.push_back(static_cast<char>(children_[base].c));
        out.push_back(static_cast<char>(children_.back().c));
        unsigned next = children_[base].c;
        for (size_t k = base; k < children_.size(); ++k) {
            for (; next < children_[k].c; ++next)
                put_u32(out, 0);
            put_u32(out, children_[k].word);
            next = children_[k].c + 1U;
        }
        children_.resize(base);
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
    // Each entry costs at most its key (as prefixes), its value, a priority and NUL, and the
    // node and child words that lead to it.
    size_t estimate = 12;
    for (const Entry& e : entries_)
        estimate += e.key.size() + e.value.size() + 24;
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
    // Shared prefixes make the estimate far too big for some indexes (the alias index comes
    // out some 40% smaller): the caller keeps the result, so it gets the bytes it needs only.
    if (out.capacity() - out.size() > out.size() / 16 + 4096)
        out.shrink_to_fit();
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
