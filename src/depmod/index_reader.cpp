// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading kmod's binary indexes in place, every offset checked.
#include "depmod/index_reader.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/unique_fd.hpp"

#include "depmod/index_format.hpp"

namespace kmodd::depmod {

namespace {

using namespace index_format;

uint32_t get_u32(const char* p)
{
    return static_cast<uint32_t>(static_cast<unsigned char>(p[0])) << 24 |
           static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 16 |
           static_cast<uint32_t>(static_cast<unsigned char>(p[2])) << 8 |
           static_cast<uint32_t>(static_cast<unsigned char>(p[3]));
}

/// kmod works on C strings: whatever follows a NUL is not part of the key.
std::string_view until_nul(std::string_view s)
{
    const void* nul = std::memchr(s.data(), '\0', s.size());
    if (nul == nullptr)
        return s;
    return s.substr(0, static_cast<size_t>(static_cast<const char*>(nul) - s.data()));
}

bool is_wildcard(char c)
{
    return c == '*' || c == '?' || c == '[';
}

/// One node, parsed lazily: the prefix and the child table are located, the values only
/// counted.
struct Node {
    std::string_view prefix;
    const char* children = nullptr; ///< (last - first + 1) big-endian child words
    unsigned first = 1;
    unsigned last = 0;
    const char* values = nullptr; ///< the value entries, after the count
    uint32_t value_count = 0;
};

/// How many bytes one walk over the trie may still read. In a well-formed index every node is
/// read at most once per walk and nodes do not overlap, so a walk reads at most the file
/// (plus one unit per node); reading more means a corrupt file whose child words form loops
/// or share nodes, and the walk stops. This keeps every walk linear in the file size.
class Budget {
public:
    explicit Budget(size_t file_size) : left_(2 * file_size + 64) {}

    /// Takes `bytes` from the budget; false (for good) once it is exhausted.
    bool spend(size_t bytes)
    {
        if (exhausted_ || bytes > left_) {
            exhausted_ = true;
            return false;
        }
        left_ -= bytes;
        return true;
    }
    [[nodiscard]] bool is_exhausted() const { return exhausted_; }

private:
    size_t left_;
    bool exhausted_ = false;
};

/// The bytes of an index and how to read its nodes.
struct IndexBytes {
    const char* data = nullptr;
    size_t size = 0;
    uint32_t root = 0;

    /// Reads the node `word` points at. False for "no node" (offset 0), for a node that does
    /// not fit in the file, and when `budget` (if any) cannot pay for the bytes read.
    bool read_node(uint32_t word, Node& node, Budget* budget = nullptr) const
    {
        const size_t start = word & kOffsetMask;
        if (start == 0 || start > size)
            return false;
        size_t pos = start;
        node = Node{};
        bool fits = parse_node(word, pos, node);
        // A failed read may have scanned up to the end of the file.
        size_t read = fits ? pos - start : size - start;
        if (budget != nullptr && !budget->spend(read + 1))
            return false;
        return fits;
    }

    bool parse_node(uint32_t word, size_t& pos, Node& node) const
    {
        if ((word & kFlagPrefix) != 0) {
            const void* nul = std::memchr(data + pos, '\0', size - pos);
            if (nul == nullptr)
                return false;
            size_t len = static_cast<size_t>(static_cast<const char*>(nul) - (data + pos));
            node.prefix = std::string_view(data + pos, len);
            pos += len + 1;
        }
        if ((word & kFlagChildren) != 0) {
            if (size - pos < 2)
                return false;
            node.first = static_cast<unsigned char>(data[pos]);
            node.last = static_cast<unsigned char>(data[pos + 1]);
            if (node.last < node.first)
                return false;
            pos += 2;
            size_t bytes = 4 * size_t{node.last - node.first + 1};
            if (size - pos < bytes)
                return false;
            node.children = data + pos;
            pos += bytes;
        }
        if ((word & kFlagValues) != 0) {
            if (size - pos < 4)
                return false;
            node.value_count = get_u32(data + pos);
            pos += 4;
            node.values = data + pos;
        }
        return true;
    }

    /// The word of the child under edge `c`, 0 when there is none.
    static uint32_t child_word(const Node& node, unsigned c)
    {
        if (node.children == nullptr || c < node.first || c > node.last)
            return 0;
        return get_u32(node.children + 4 * size_t{c - node.first});
    }

    /// Calls `visit` with the node's values in file order; stops at the first value that
    /// does not fit in the file or that `budget` (if any) cannot pay for.
    template <typename Visit>
    void for_each_value(const Node& node, Visit&& visit, Budget* budget = nullptr) const
    {
        const char* p = node.values;
        const char* end = data + size;
        for (uint32_t i = 0; i < node.value_count; ++i) {
            if (end - p < 5)
                return;
            uint32_t priority = get_u32(p);
            const char* text = p + 4;
            const void* nul = std::memchr(text, '\0', static_cast<size_t>(end - text));
            size_t len = nul == nullptr ? static_cast<size_t>(end - text)
                                        : static_cast<size_t>(static_cast<const char*>(nul) - text);
            if (budget != nullptr && !budget->spend(4 + len + 1))
                return;
            if (nul == nullptr)
                return;
            visit(IndexReader::Value{std::string_view(text, len), priority});
            p = text + len + 1;
        }
    }
};

/// The state of one wildcard search (kmod's index_mm_searchwild and its helpers), with an
/// explicit stack instead of recursion so a deep or looping corrupt file cannot overflow
/// the call stack.
class WildcardSearch {
public:
    WildcardSearch(const IndexBytes& storage, std::string_view text)
        : storage_(storage), text_(text), subject_(text), budget_(storage.size)
    {
    }

    std::vector<IndexReader::Value> run()
    {
        descend();
        // kmod's add_value keeps the list sorted by priority and puts a value before the
        // others of its priority, so among equal priorities the last one added comes first.
        std::reverse(out_.begin(), out_.end());
        std::stable_sort(out_.begin(), out_.end(),
                         [](const IndexReader::Value& a, const IndexReader::Value& b) {
                             return a.priority < b.priority;
                         });
        return std::move(out_);
    }

private:
    /// What the pattern up to a node says about the keys below it (see extend_shape).
    struct Shape {
        size_t run_start = 0; ///< where the run of plain characters at the end begins
        bool is_plain = true;
    };

    struct Frame {
        Node node;
        unsigned next_child;
        size_t pattern_mark; ///< pattern_ length to restore when the node is done
        Shape shape;
    };

    /// Follows `text_` down the trie literally until a key reaches a wildcard character.
    void descend()
    {
        uint32_t word = storage_.root;
        size_t i = 0;
        Node node;
        while (storage_.read_node(word, node, &budget_)) {
            const std::string_view prefix = node.prefix;
            for (size_t j = 0; j < prefix.size(); ++j) {
                if (is_wildcard(prefix[j])) {
                    pattern_.clear();
                    match_subtree(node, j, i + j);
                    return;
                }
                if (i + j >= text_.size() || prefix[j] != text_[i + j])
                    return;
            }
            i += prefix.size();

            for (char wildcard : {'*', '?', '['}) {
                uint32_t word_of_child =
                    IndexBytes::child_word(node, static_cast<unsigned>(wildcard));
                Node child;
                if (word_of_child == 0 || !storage_.read_node(word_of_child, child, &budget_))
                    continue;
                pattern_.assign(1, wildcard);
                match_subtree(child, 0, i);
            }
            if (budget_.is_exhausted())
                return;

            if (i == text_.size()) {
                add_values(node);
                return;
            }
            // kmod passes the key's (signed) char as the edge: bytes >= 0x80 never match.
            auto c = static_cast<unsigned char>(text_[i]);
            if (c >= 0x80)
                return;
            word = IndexBytes::child_word(node, c);
            ++i;
        }
    }

    /// kmod's index_mm_searchwild_all: every key of the subtree of `start` (whose prefix
    /// counts from `prefix_from`), children first in edge order, then the node itself, is
    /// matched with fnmatch against the rest of the text from `text_from`.
    void match_subtree(const Node& start, size_t prefix_from, size_t text_from)
    {
        const char* subject = subject_.c_str() + text_from;
        const std::string_view rest = text_.substr(text_from);
        stack_.clear();
        if (stack_.capacity() == 0)
            stack_.reserve(32);
        Frame first{start, start.first, pattern_.size(), Shape{}};
        pattern_.append(start.prefix.substr(prefix_from));
        if (!extend_shape(first.shape, 0, rest)) {
            pattern_.resize(first.pattern_mark);
            return;
        }
        stack_.push_back(first);
        while (!stack_.empty() && !budget_.is_exhausted()) {
            Frame& frame = stack_.back();
            if (frame.node.children != nullptr && frame.next_child <= frame.node.last) {
                unsigned c = frame.next_child++;
                uint32_t word = IndexBytes::child_word(frame.node, c);
                Node child;
                if (word == 0 || !storage_.read_node(word, child, &budget_))
                    continue;
                size_t mark = pattern_.size();
                pattern_.push_back(static_cast<char>(c));
                pattern_.append(child.prefix);
                Shape shape = frame.shape;
                if (!extend_shape(shape, mark, rest)) {
                    pattern_.resize(mark);
                    continue;
                }
                stack_.push_back({child, child.first, mark, shape});
                continue;
            }
            if (frame.node.value_count > 0 && ::fnmatch(pattern_.c_str(), subject, 0) == 0)
                add_values(frame.node);
            pattern_.resize(frame.pattern_mark);
            stack_.pop_back();
        }
    }

    /// Scans pattern_ from `from` on and tells whether a key that starts with pattern_ can
    /// match `rest` at all: every run of plain characters between wildcards must then occur
    /// in `rest`, including the run still open at the end (the keys below only lengthen it).
    /// fnmatch still decides every key; this only skips subtrees it would reject all of.
    /// Brackets and backslashes end the shortcut (a '*' inside "[...]" is no wildcard).
    bool extend_shape(Shape& shape, size_t from, std::string_view rest) const
    {
        if (!shape.is_plain)
            return true;
        auto occurs = [&](size_t begin, size_t end) {
            return end == begin ||
                   rest.find(std::string_view(pattern_).substr(begin, end - begin)) !=
                       std::string_view::npos;
        };
        for (size_t p = from; p < pattern_.size(); ++p) {
            char c = pattern_[p];
            if (c == '[' || c == '\\') {
                shape.is_plain = false;
                return true;
            }
            if (c == '*' || c == '?') {
                if (!occurs(shape.run_start, p))
                    return false;
                shape.run_start = p + 1;
            }
        }
        return occurs(shape.run_start, pattern_.size());
    }

    void add_values(const Node& node)
    {
        storage_.for_each_value(
            node, [this](const IndexReader::Value& v) { out_.push_back(v); }, &budget_);
    }

    const IndexBytes& storage_;
    std::string_view text_;
    std::string subject_; ///< text_ NUL-terminated, for fnmatch
    std::string pattern_;
    std::vector<Frame> stack_;
    std::vector<IndexReader::Value> out_;
    Budget budget_;
};

/// Checks the header of `storage` and sets its root. EBADMSG when it is not a kmod index.
base::Result<void> parse_header(IndexBytes& storage)
{
    if (storage.size < kHeaderSize)
        return base::make_error(EBADMSG, "not a kmod index: shorter than its header");
    uint32_t magic = get_u32(storage.data);
    uint32_t version = get_u32(storage.data + 4);
    uint32_t root = get_u32(storage.data + 8);
    if (magic != kMagic)
        return base::make_error(EBADMSG, "not a kmod index: bad magic");
    if (version >> 16 != kVersionMajor)
        return base::make_error(EBADMSG, "unsupported kmod index version " +
                                             std::to_string(version >> 16) + "." +
                                             std::to_string(version & 0xFFFF));
    uint32_t offset = root & kOffsetMask;
    if (offset < kHeaderSize || offset > storage.size)
        return base::make_error(EBADMSG, "corrupt kmod index: root node out of range");
    storage.root = root;
    return {};
}

} // namespace

struct IndexReader::Storage : IndexBytes {
    Storage() = default;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage()
    {
        if (map != nullptr)
            ::munmap(map, map_size);
    }

    std::string owned;
    void* map = nullptr;
    size_t map_size = 0;
};

IndexReader::IndexReader(std::shared_ptr<const Storage> storage) : storage_(std::move(storage)) {}

base::Result<IndexReader> IndexReader::open(const std::string& path)
{
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_valid())
        return base::errno_error(errno, "'" + path + "'");
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return base::errno_error(errno, "'" + path + "'");
    if (!S_ISREG(st.st_mode))
        return base::make_error(EBADMSG, "'" + path + "': not a kmod index: not a regular file");
    auto storage = std::make_shared<Storage>();
    if (st.st_size > 0) {
        auto size = static_cast<size_t>(st.st_size);
        void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (map == MAP_FAILED)
            return base::errno_error(errno, "'" + path + "': mmap");
        storage->map = map;
        storage->map_size = size;
        storage->data = static_cast<const char*>(map);
        storage->size = size;
    }
    if (auto ok = parse_header(*storage); !ok)
        return base::Unexpected(ok.error().with_context("'" + path + "'"));
    return IndexReader(std::move(storage));
}

base::Result<IndexReader> IndexReader::from_bytes(std::string bytes)
{
    auto storage = std::make_shared<Storage>();
    storage->owned = std::move(bytes);
    storage->data = storage->owned.data();
    storage->size = storage->owned.size();
    if (auto ok = parse_header(*storage); !ok)
        return base::Unexpected(ok.error());
    return IndexReader(std::move(storage));
}

std::optional<std::string_view> IndexReader::lookup(std::string_view key) const
{
    key = until_nul(key);
    const IndexBytes& s = *storage_;
    uint32_t word = s.root;
    size_t i = 0;
    Node node;
    // Each step consumes at least one character of the key, so no budget is needed.
    while (s.read_node(word, node)) {
        if (key.size() - i < node.prefix.size() ||
            key.compare(i, node.prefix.size(), node.prefix) != 0)
            return std::nullopt;
        i += node.prefix.size();
        if (i == key.size()) {
            std::optional<std::string_view> first;
            if (node.value_count > 0) {
                node.value_count = 1;
                s.for_each_value(node, [&first](const Value& v) { first = v.text; });
            }
            return first;
        }
        auto c = static_cast<unsigned char>(key[i]);
        if (c >= 0x80)
            return std::nullopt;
        word = IndexBytes::child_word(node, c);
        ++i;
    }
    return std::nullopt;
}

std::vector<IndexReader::Value> IndexReader::search_wildcard(std::string_view text) const
{
    return WildcardSearch(*storage_, until_nul(text)).run();
}

void IndexReader::dump(const std::function<void(std::string_view key, const Value&)>& visit) const
{
    const IndexBytes& s = *storage_;
    struct Frame {
        Node node;
        unsigned next_child;
        size_t key_mark;
    };
    Budget budget(s.size);
    Node root;
    if (!s.read_node(s.root, root, &budget))
        return;
    std::string key(root.prefix);
    auto visit_values = [&](const Node& node) {
        s.for_each_value(
            node, [&](const Value& v) { visit(key, v); }, &budget);
    };
    visit_values(root);
    std::vector<Frame> stack;
    stack.push_back({root, root.first, 0});
    while (!stack.empty() && !budget.is_exhausted()) {
        Frame& frame = stack.back();
        if (frame.node.children == nullptr || frame.next_child > frame.node.last) {
            key.resize(frame.key_mark);
            stack.pop_back();
            continue;
        }
        unsigned c = frame.next_child++;
        uint32_t word = IndexBytes::child_word(frame.node, c);
        Node child;
        if (word == 0 || !s.read_node(word, child, &budget))
            continue;
        size_t mark = key.size();
        key.push_back(static_cast<char>(c));
        key.append(child.prefix);
        visit_values(child);
        stack.push_back({child, child.first, mark});
    }
}

} // namespace kmodd::depmod
