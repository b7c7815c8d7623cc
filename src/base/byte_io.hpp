// SPDX-License-Identifier: LGPL-2.1-or-later
// Native-endian binary records for kmodd's own files (caches, state): appending fixed-size
// values and length-prefixed strings, and reading them back with every length checked.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace kmodd::base {

/// Appends `value`'s bytes to `out`.
template <typename T> void put_value(std::string& out, T value)
{
    static_assert(std::is_trivially_copyable_v<T>);
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    out.append(bytes, sizeof(T));
}

/// Appends `text` with a 32-bit length before it.
inline void put_string(std::string& out, std::string_view text)
{
    put_value(out, static_cast<uint32_t>(text.size()));
    out.append(text);
}

/// Reads what put_value() and put_string() wrote; every read fails (false) rather than go past
/// the end.
class ByteReader {
public:
    explicit ByteReader(std::string_view bytes) : rest_(bytes) {}

    template <typename T> bool get(T& value)
    {
        static_assert(std::is_trivially_copyable_v<T>);
        if (rest_.size() < sizeof(T))
            return false;
        std::memcpy(&value, rest_.data(), sizeof(T));
        rest_.remove_prefix(sizeof(T));
        return true;
    }
    bool get_string(std::string_view& text)
    {
        uint32_t size = 0;
        if (!get(size) || rest_.size() < size)
            return false;
        text = rest_.substr(0, size);
        rest_.remove_prefix(size);
        return true;
    }
    /// The next `size` bytes as they are.
    bool get_bytes(std::string_view& bytes, size_t size)
    {
        if (rest_.size() < size)
            return false;
        bytes = rest_.substr(0, size);
        rest_.remove_prefix(size);
        return true;
    }
    /// A count of items each at least `min_bytes_each` long: fails when the bytes left could
    /// not hold that many (so a hostile count cannot make the caller reserve memory).
    bool get_count(uint32_t& count, size_t min_bytes_each)
    {
        return get(count) && count <= rest_.size() / min_bytes_each;
    }
    [[nodiscard]] size_t left() const { return rest_.size(); }
    [[nodiscard]] const char* position() const { return rest_.data(); }

private:
    std::string_view rest_;
};

} // namespace kmodd::base
