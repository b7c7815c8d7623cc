// SPDX-License-Identifier: LGPL-2.1-or-later
// Writing kmod's binary indexes (modules.*.bin).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "depmod/output_sink.hpp"

namespace kmodd::depmod {

/// Whether `s` may be a key or value of an index: 7-bit ASCII without NUL.
[[nodiscard]] bool is_ascii(std::string_view s);

/// Where a trie node goes relative to its children. The keys, values and node contents are
/// the same either way; kmod 34 changed the order (its NEWS: "Switch index to pre-order").
enum class IndexLayout {
    ChildrenFirst, ///< post-order, the root last: kmod up to 33
    ParentFirst,   ///< pre-order, the root right after the header: kmod 34 on
};

/// A buffer size for an output that was `size` bytes last time: room for a few more
/// entries, as one module more or less is the usual change.
[[nodiscard]] constexpr size_t with_room(size_t size)
{
    return size + size / 64 + 4096;
}

/// Builds one of kmod's binary index files (modules.*.bin): a radix trie over the keys,
/// big-endian u32 words, magic 0xB007F457, version 2.1, nodes in the order of `layout`, so
/// the bytes match those of the kmod that uses it. Values of one key are ordered by
/// priority, and among equal priorities the one added last comes first. Keys and values are
/// borrowed: they must outlive serialize().
class IndexWriter {
public:
    /// Every key of the file starts with `key_prefix`, which add() is not given again
    /// (modules.symbols.bin: "symbol:" before each of ~21,000 names, which would otherwise be
    /// made into keys of their own). It must be 7-bit ASCII without NUL and outlive the writer.
    explicit IndexWriter(IndexLayout layout = IndexLayout::ChildrenFirst,
                         std::string_view key_prefix = {})
        : key_prefix_(key_prefix), layout_(layout)
    {
    }

    void reserve(size_t entries) { entries_.reserve(entries); }

    /// Adds `value` under `key`. Both must be 7-bit ASCII without NUL (the format stores
    /// children in a 128-entry range and strings NUL-terminated); returns false otherwise.
    bool add(std::string_view key, std::string_view value, uint32_t priority);

    /// Like add(), for callers that add entries already in the final order (keys ascending,
    /// then the order values must have in the file): serialize() then does not sort. Do not
    /// mix with add().
    bool add_in_order(std::string_view key, std::string_view value, uint32_t priority);

    /// Gives the file content to `out`, in file order (the caller finishes it).
    void serialize(OutputSink& out);
    /// The file content, made in a buffer of about `expected_size` bytes when that is known
    /// (the size of the last file so made), else of an estimate from the entries; a buffer far
    /// too big is cut to fit by a copy.
    [[nodiscard]] std::string serialize(size_t expected_size = 0);

    /// Pairs (key, value) added more than once, for depmod -w; the keys without the key
    /// prefix.
    [[nodiscard]] std::vector<std::pair<std::string_view, std::string_view>> duplicates() const;
    [[nodiscard]] std::string_view key_prefix() const { return key_prefix_; }

private:
    /// 32 bytes, not the 40 of two string_views: the alias index of a distribution's tree
    /// holds ~26,000 of them while its file is made.
    struct Entry {
        Entry(std::string_view k, std::string_view v, uint32_t prio, uint32_t order)
            : key_data(k.data()), value_data(v.data()), key_size(static_cast<uint32_t>(k.size())),
              value_size(static_cast<uint32_t>(v.size())), priority(prio), seq(order)
        {
        }
        [[nodiscard]] std::string_view key() const { return {key_data, key_size}; }
        [[nodiscard]] std::string_view value() const { return {value_data, value_size}; }

        const char* key_data;
        const char* value_data;
        uint32_t key_size;
        uint32_t value_size;
        uint32_t priority;
        uint32_t seq;
    };
    /// Character `pos` of the whole key: the key prefix, then the entry's own part.
    [[nodiscard]] unsigned char key_char(const Entry& e, size_t pos) const
    {
        const size_t shared = key_prefix_.size();
        return static_cast<unsigned char>(pos < shared ? key_prefix_[pos]
                                                       : e.key_data[pos - shared]);
    }
    [[nodiscard]] size_t key_size(const Entry& e) const { return key_prefix_.size() + e.key_size; }
    /// Characters [from, from + length) of the whole key.
    void append_key(OutputSink& out, const Entry& e, size_t from, size_t length) const;
    /// The length of the prefix of the node over entries [lo, hi) below `depth` characters.
    [[nodiscard]] size_t prefix_length(size_t lo, size_t hi, size_t depth, bool is_root) const;
    void sort_entries();
    uint32_t write_node(size_t lo, size_t hi, size_t depth, bool is_root, OutputSink& out);

    /// A node of the trie, for the parent-first layout, which must know the size of every
    /// subtree before it writes the node above it. Nodes are kept in pre-order: a node's
    /// children follow it, each after the whole subtree of the one before.
    struct Node {
        uint32_t lo;         ///< first entry under this node
        uint32_t values_end; ///< entries [lo, values_end) end here
        uint32_t hi;         ///< one past the last entry under this node
        uint32_t depth;      ///< key characters consumed above this node's prefix
        uint32_t prefix_len;
        uint32_t size;  ///< bytes of this node
        uint32_t total; ///< bytes of this node and its subtree
        uint32_t count; ///< nodes in its subtree, itself included
    };
    uint32_t plan_node(size_t lo, size_t hi, size_t depth, bool is_root);
    void write_parent_first(OutputSink& out);
    [[nodiscard]] uint32_t flags_of(const Node& node) const;

    struct Child {
        unsigned char c;
        uint32_t word;
    };
    std::vector<Entry> entries_;
    std::vector<Child> children_; ///< child words of the nodes being written
    std::vector<Node> nodes_;     ///< the planned trie (parent-first layout only)
    std::string_view key_prefix_;
    IndexLayout layout_;
    bool sorted_ = true;
};

} // namespace kmodd::depmod
