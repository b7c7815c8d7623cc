// SPDX-License-Identifier: LGPL-2.1-or-later
// Writing kmod's binary indexes byte for byte as kmod 30 and kmod 34 lay them out.
#include "depmod/index_writer.hpp"

#include <algorithm>
#include <cstring>

#include "depmod/index_format.hpp"

namespace kmodd::depmod {

namespace {

using namespace index_format;

} // namespace

// Eight bytes at a time: it runs over every key and value of every index.
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

bool IndexWriter::add(std::string_view key, std::string_view value, uint32_t priority)
{
    if (!is_ascii(key) || !is_ascii(value))
        return false;
    entries_.emplace_back(key, value, priority, static_cast<uint32_t>(entries_.size()));
    sorted_ = false;
    return true;
}

bool IndexWriter::add_in_order(std::string_view key, std::string_view value, uint32_t priority)
{
    if (!is_ascii(key) || !is_ascii(value))
        return false;
    entries_.emplace_back(key, value, priority, static_cast<uint32_t>(entries_.size()));
    return true;
}

size_t IndexWriter::prefix_length(size_t lo, size_t hi, size_t depth, bool is_root) const
{
    // Keys in [lo, hi) are sorted and share their first `depth` characters. A node's prefix
    // is what all of them share beyond that (the root's is always empty); every key shares
    // the writer's key prefix.
    if (is_root)
        return 0;
    const Entry& first = entries_[lo];
    const Entry& last = entries_[hi - 1];
    const size_t shared = key_prefix_.size();
    const size_t limit = std::min(key_size(first), key_size(last));
    size_t pos = std::max(depth, shared);
    while (pos < limit && first.key_data[pos - shared] == last.key_data[pos - shared])
        ++pos;
    return pos - depth;
}

void IndexWriter::append_key(OutputSink& out, const Entry& e, size_t from, size_t length) const
{
    const size_t shared = key_prefix_.size();
    if (from < shared) {
        const size_t part = std::min(length, shared - from);
        out.append(key_prefix_.substr(from, part));
        from += part;
        length -= part;
    }
    out.append(e.key().substr(from - shared, length));
}

uint32_t IndexWriter::write_node(size_t lo, size_t hi, size_t depth, bool is_root, OutputSink& out)
{
    const size_t prefix_len = prefix_length(lo, hi, depth, is_root);
    const size_t split = depth + prefix_len;

    // Values: the keys that end here (they sort first). Children: runs by next character.
    size_t values_end = lo;
    while (values_end < hi && key_size(entries_[values_end]) == split)
        ++values_end;

    // Children in ascending character order (the keys are sorted), written before this node;
    // their words wait on a stack shared by the whole recursion.
    const size_t base = children_.size();
    for (size_t i = values_end; i < hi;) {
        const unsigned char c = key_char(entries_[i], split);
        size_t j = i + 1;
        while (j < hi && key_char(entries_[j], split) == c)
            ++j;
        uint32_t word = write_node(i, j, split + 1, false, out);
        children_.push_back({c, word});
        i = j;
    }

    auto offset = static_cast<uint32_t>(out.size());
    if (prefix_len > 0) {
        append_key(out, entries_[lo], depth, prefix_len);
        out.push_back('\0');
        offset |= kFlagPrefix;
    }
    if (children_.size() > base) {
        out.push_back(static_cast<char>(children_[base].c));
        out.push_back(static_cast<char>(children_.back().c));
        unsigned next = children_[base].c;
        for (size_t k = base; k < children_.size(); ++k) {
            for (; next < children_[k].c; ++next)
                out.put_u32(0);
            out.put_u32(children_[k].word);
            next = children_[k].c + 1U;
        }
        children_.resize(base);
        offset |= kFlagChildren;
    }
    if (values_end > lo) {
        out.put_u32(static_cast<uint32_t>(values_end - lo));
        for (size_t i = lo; i < values_end; ++i) {
            out.put_u32(entries_[i].priority);
            out.append(entries_[i].value());
            out.push_back('\0');
        }
        offset |= kFlagValues;
    }
    return offset;
}

uint32_t IndexWriter::plan_node(size_t lo, size_t hi, size_t depth, bool is_root)
{
    // The same split as write_node(): a shared prefix, the keys ending here, runs of children.
    const size_t prefix_len = prefix_length(lo, hi, depth, is_root);
    const size_t split = depth + prefix_len;
    size_t values_end = lo;
    size_t size = prefix_len > 0 ? prefix_len + 1 : 0;
    while (values_end < hi && key_size(entries_[values_end]) == split) {
        size += 4 + entries_[values_end].value().size() + 1;
        ++values_end;
    }
    if (values_end > lo)
        size += 4;

    const auto index = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(Node{static_cast<uint32_t>(lo), static_cast<uint32_t>(values_end),
                          static_cast<uint32_t>(hi), static_cast<uint32_t>(depth),
                          static_cast<uint32_t>(prefix_len), 0, 0, 0});
    size_t below = 0;
    if (values_end < hi) {
        const unsigned char first_c = key_char(entries_[values_end], split);
        const unsigned char last_c = key_char(entries_[hi - 1], split);
        size += 2 + 4 * (size_t{last_c} - first_c + 1);
    }
    for (size_t i = values_end; i < hi;) {
        const unsigned char c = key_char(entries_[i], split);
        size_t j = i + 1;
        while (j < hi && key_char(entries_[j], split) == c)
            ++j;
        below += nodes_[plan_node(i, j, split + 1, false)].total;
        i = j;
    }
    Node& node = nodes_[index]; // the recursion may have moved the vector
    node.size = static_cast<uint32_t>(size);
    node.total = static_cast<uint32_t>(size + below);
    node.count = static_cast<uint32_t>(nodes_.size() - index);
    return index;
}

uint32_t IndexWriter::flags_of(const Node& node) const
{
    uint32_t flags = 0;
    if (node.prefix_len > 0)
        flags |= kFlagPrefix;
    if (node.count > 1)
        flags |= kFlagChildren;
    if (node.values_end > node.lo)
        flags |= kFlagValues;
    return flags;
}

void IndexWriter::write_parent_first(OutputSink& out)
{
    // Each node, then its subtree: a child's offset is where its parent ends plus the
    // subtrees of the children before it.
    for (size_t k = 0; k < nodes_.size(); ++k) {
        const Node& node = nodes_[k];
        const auto start = static_cast<uint32_t>(out.size());
        if (node.prefix_len > 0) {
            append_key(out, entries_[node.lo], node.depth, node.prefix_len);
            out.push_back('\0');
        }
        if (node.count > 1) {
            auto char_of = [&](const Node& child) {
                return key_char(entries_[child.lo], child.depth - 1);
            };
            const unsigned char first = char_of(nodes_[k + 1]);
            unsigned char last = first;
            for (size_t c = k + 1; c < k + node.count; c += nodes_[c].count)
                last = char_of(nodes_[c]);
            out.push_back(static_cast<char>(first));
            out.push_back(static_cast<char>(last));
            uint32_t child_offset = start + node.size;
            unsigned next = first;
            for (size_t c = k + 1; c < k + node.count; c += nodes_[c].count) {
                const Node& child = nodes_[c];
                for (; next < char_of(child); ++next)
                    out.put_u32(0);
                out.put_u32(child_offset | flags_of(child));
                child_offset += child.total;
                next = char_of(child) + 1U;
            }
        }
        if (node.values_end > node.lo) {
            out.put_u32(node.values_end - node.lo);
            for (size_t i = node.lo; i < node.values_end; ++i) {
                out.put_u32(entries_[i].priority);
                out.append(entries_[i].value());
                out.push_back('\0');
            }
        }
    }
}

void IndexWriter::sort_entries()
{
    if (sorted_)
        return;
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
        if (int c = a.key().compare(b.key()); c != 0)
            return c < 0;
        if (a.priority != b.priority)
            return a.priority < b.priority;
        return a.seq > b.seq;
    });
    sorted_ = true;
}

void IndexWriter::serialize(OutputSink& out)
{
    sort_entries();
    // Parent first, the plan gives every node's size before anything is written, the root's
    // offset included; children first, the root comes last and the header is patched.
    const bool parent_first = !entries_.empty() && layout_ == IndexLayout::ParentFirst;
    if (parent_first) {
        nodes_.clear();
        plan_node(0, entries_.size(), 0, true);
    }
    out.put_u32(kMagic);
    out.put_u32(kVersion);
    if (entries_.empty()) {
        out.put_u32(static_cast<uint32_t>(kHeaderSize));
    } else if (parent_first) {
        out.put_u32(static_cast<uint32_t>(kHeaderSize) | flags_of(nodes_[0]));
        write_parent_first(out);
        nodes_ = {};
    } else {
        out.put_u32(0);
        out.patch_u32(8, write_node(0, entries_.size(), 0, true, out));
    }
}

std::string IndexWriter::serialize(size_t expected_size)
{
    // Room for the whole at once when the size is about known: the last file's size (with
    // room for a few more entries), else each entry's key, value, priority and NUL and some
    // node words (short where nodes have sparse child tables: modules.dep.bin of amd64 outgrew
    // it by 7%).
    size_t room = with_room(expected_size);
    if (expected_size == 0) {
        room = kHeaderSize;
        for (const Entry& e : entries_)
            room += key_size(e) + e.value().size() + 24;
    }
    StringSink sink(room);
    serialize(sink);
    sink.finish();
    std::string out = sink.take();
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
        pairs.emplace_back(e.key(), e.value());
    std::sort(pairs.begin(), pairs.end());
    std::vector<std::pair<std::string_view, std::string_view>> out;
    for (size_t i = 1; i < pairs.size(); ++i) {
        if (pairs[i] == pairs[i - 1] && (out.empty() || out.back() != pairs[i]))
            out.push_back(pairs[i]);
    }
    return out;
}

} // namespace kmodd::depmod
