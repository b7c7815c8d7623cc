// SPDX-License-Identifier: LGPL-2.1-or-later
// Writing kmod's binary indexes (modules.*.bin).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kmodd::depmod {

/// Builds one of kmod's binary index files (modules.*.bin): a radix trie over the keys,
/// big-endian u32 words, magic 0xB007F457, version 2.1, nodes written in post-order (each
/// node after its children, the root last) as kmod 30's depmod does, so the bytes match.
/// Values of one key are ordered by priority, and among equal priorities the one added last
/// comes first. Keys and values are borrowed: they must outlive serialize().
class IndexWriter {
public:
    void reserve(size_t entries) { entries_.reserve(entries); }

    /// Adds `value` under `key`. Both must be 7-bit ASCII without NUL (the format stores
    /// children in a 128-entry range and strings NUL-terminated); returns false otherwise.
    bool add(std::string_view key, std::string_view value, uint32_t priority);

    /// Like add(), for callers that add entries already in the final order (keys ascending,
    /// then the order values must have in the file): serialize() then does not sort. Do not
    /// mix with add().
    bool add_in_order(std::string_view key, std::string_view value, uint32_t priority);

    /// The file content.
    [[nodiscard]] std::string serialize();

    /// Pairs (key, value) added more than once, for depmod -w.
    [[nodiscard]] std::vector<std::pair<std::string_view, std::string_view>> duplicates() const;

private:
    struct Entry {
        std::string_view key;
        std::string_view value;
        uint32_t priority;
        uint32_t seq;
    };
    uint32_t write_node(size_t lo, size_t hi, size_t depth, bool is_root, std::string& out);

    struct Child {
        unsigned char c;
        uint32_t word;
    };
    std::vector<Entry> entries_;
    std::vector<Child> children_; ///< child words of the nodes being written
    bool sorted_ = true;
};

} // namespace kmodd::depmod
