// SPDX-License-Identifier: LGPL-2.1-or-later
// The output state file: writing it, and reading it with every length checked.
#include "depmod/output_state.hpp"

#include <fcntl.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/byte_io.hpp"
#include "base/digest.hpp"
#include "base/file.hpp"
#include "base/strings.hpp"
#include "depmod/output_sink.hpp"

namespace kmodd::depmod {

namespace {

constexpr char kMagic[8] = {'k', 'm', 'o', 'd', 'd', 'O', 'S', '\n'};
constexpr uint32_t kFormatVersion =
    6; // 2: keys_since_ns, 3: renewed, 4: listings, 5: symbols, alias order, 6: graph
constexpr uint32_t kByteOrderMark = 0x01020304;
// magic, version, byte-order mark, payload size, CRC-32 of the payload (+ 4 bytes padding)
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 + 4 + 4;

uint32_t checksum(std::string_view payload)
{
    return static_cast<uint32_t>(
        ::crc32_z(0L, reinterpret_cast<const Bytef*>(payload.data()), payload.size()));
}

base::Unexpected invalid(const std::string& what)
{
    return base::make_error(EINVAL, what);
}

void put_file_key(std::string& out, const index::FileKey& key)
{
    base::put_value(out, static_cast<uint64_t>(key.dev));
    base::put_value(out, static_cast<uint64_t>(key.ino));
    base::put_value(out, static_cast<int64_t>(key.size));
    base::put_value(out, key.mtime_ns);
    base::put_value(out, key.ctime_ns);
}

bool get_file_key(base::ByteReader& in, index::FileKey& key)
{
    uint64_t dev = 0, ino = 0;
    int64_t size = 0;
    if (!in.get(dev) || !in.get(ino) || !in.get(size) || !in.get(key.mtime_ns) ||
        !in.get(key.ctime_ns))
        return false;
    key.dev = static_cast<dev_t>(dev);
    key.ino = static_cast<ino_t>(ino);
    key.size = static_cast<off_t>(size);
    return true;
}

template <typename T> void put_array(std::string& out, const std::vector<T>& values)
{
    base::put_value(out, static_cast<uint32_t>(values.size()));
    if (!values.empty()) // an empty vector may have no data pointer
        out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

template <typename T> bool get_array(base::ByteReader& in, std::vector<T>& values)
{
    uint32_t count = 0;
    std::string_view bytes;
    if (!in.get_count(count, sizeof(T)) || !in.get_bytes(bytes, size_t{count} * sizeof(T)))
        return false;
    values.resize(count);
    if (count > 0) // an empty vector may have no data pointer
        std::memcpy(values.data(), bytes.data(), bytes.size());
    return true;
}

/// An alias order is none at all, or ids counted from 0 by each module's first.
bool is_well_formed(const AliasOrder& order)
{
    if (order.starts.empty())
        return order.module_keys.empty() && order.sorted.empty();
    if (order.starts.size() != order.module_keys.size() + 1 || order.starts[0] != 0 ||
        order.starts.back() != order.sorted.size())
        return false;
    return std::is_sorted(order.starts.begin(), order.starts.end());
}

/// A graph is none at all, or one whose every module names a file of the `files` the state
/// counts (once), and whose every dependency a module of it.
bool is_well_formed(const OutputState::Graph& graph, uint64_t files)
{
    if (graph.files.empty())
        return graph.dep_starts.empty() && graph.deps.empty();
    const size_t modules = graph.files.size();
    if (modules > files || graph.dep_starts.size() != modules + 1 || graph.dep_starts[0] != 0 ||
        graph.dep_starts.back() != graph.deps.size() ||
        !std::is_sorted(graph.dep_starts.begin(), graph.dep_starts.end()))
        return false;
    std::vector<uint32_t> sorted = graph.files;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.back() >= files || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        return false;
    return std::all_of(graph.deps.begin(), graph.deps.end(),
                       [&](uint32_t dep) { return dep < modules; });
}

/// A name a walk could have read from a directory: one path component.
bool is_entry_name(std::string_view name)
{
    return !name.empty() && name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

} // namespace

const OutputState::File* find_file(const std::vector<OutputState::File>& files,
                                   std::string_view name)
{
    auto it = std::find_if(files.begin(), files.end(),
                           [&](const OutputState::File& f) { return f.name == name; });
    return it == files.end() ? nullptr : &*it;
}

uint64_t walk_digest(std::span<const std::string_view> paths)
{
    base::Digest64 digest;
    for (std::string_view path : paths)
        digest.update(path);
    return digest.update(uint64_t{paths.size()}).value();
}

std::string output_state_path(std::string_view parse_cache)
{
    const size_t slash = parse_cache.rfind('/');
    std::string path(slash == std::string_view::npos ? "" : parse_cache.substr(0, slash + 1));
    return path + "outputs.state";
}

bool OutputState::File::is_held_in(int dir_fd) const
{
    auto content = base::MappedFile::open(dir_fd, name);
    return content && content->bytes().size() == size && content_digest(content->bytes()) == digest;
}

bool OutputState::describes_files_in(const std::string& dir) const
{
    auto dir_fd = base::open_directory(AT_FDCWD, dir);
    return dir_fd && std::all_of(files.begin(), files.end(),
                                 [&](const File& file) { return file.is_held_in(dir_fd->get()); });
}

std::string OutputState::serialize() const
{
    std::string payload;
    base::put_value(payload, inputs);
    base::put_value(payload, modules);
    base::put_value(payload, module_count);
    base::put_value(payload, keys_since_ns);
    base::put_value(payload, symbols);
    base::put_value(payload, static_cast<uint32_t>(files.size()));
    for (const File& file : files) {
        base::put_string(payload, file.name);
        base::put_value(payload, file.size);
        base::put_value(payload, file.digest);
    }
    base::put_value(payload, static_cast<uint32_t>(diagnostics.size()));
    for (const index::Diagnostic& diagnostic : diagnostics) {
        base::put_value(payload, static_cast<uint8_t>(diagnostic.level));
        base::put_string(payload, diagnostic.message);
    }
    base::put_value(payload, static_cast<uint32_t>(renewed.size()));
    for (const Renewed& file : renewed) {
        base::put_string(payload, file.path);
        index::append_cache_key(payload, file.now);
        index::append_cache_key(payload, file.cached);
    }
    base::put_value(payload, static_cast<uint32_t>(listings.size()));
    for (const index::DirListing& listing : listings) {
        base::put_string(payload, listing.path);
        put_file_key(payload, listing.key);
        base::put_value(payload, static_cast<uint32_t>(listing.entries.size()));
        for (const index::DirListing::Entry& entry : listing.entries) {
            base::put_string(payload, entry.name);
            base::put_value(payload, entry.type);
            base::put_value(payload, static_cast<uint8_t>(entry.is_dir));
        }
    }
    put_array(payload, alias_order.starts);
    put_array(payload, alias_order.module_keys);
    put_array(payload, alias_order.sorted);
    base::put_value(payload, graph.walk_digest);
    put_array(payload, graph.files);
    put_array(payload, graph.dep_starts);
    put_array(payload, graph.deps);
    std::string out(kMagic, sizeof kMagic);
    base::put_value(out, kFormatVersion);
    base::put_value(out, kByteOrderMark);
    base::put_value(out, static_cast<uint64_t>(payload.size()));
    base::put_value(out, checksum(payload));
    base::put_value(out, uint32_t{0});
    return out + payload;
}

base::Result<OutputState> OutputState::parse(std::string_view bytes)
{
    if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
        return invalid("not a kmodd output state");
    base::ByteReader header(bytes.substr(sizeof kMagic, kHeaderSize - sizeof kMagic));
    uint32_t version = 0, mark = 0, crc = 0, padding = 0;
    uint64_t size = 0;
    header.get(version);
    header.get(mark);
    header.get(size);
    header.get(crc);
    header.get(padding);
    if (mark != kByteOrderMark || padding != 0)
        return invalid(padding != 0 ? "damaged header"
                                    : "written on a machine of the other byte order");
    if (version != kFormatVersion)
        return invalid("format version " + std::to_string(version) + ", this kmodd reads " +
                       std::to_string(kFormatVersion));
    const std::string_view payload = bytes.substr(kHeaderSize);
    if (size != payload.size())
        return invalid("truncated or extended");
    if (checksum(payload) != crc)
        return invalid("checksum mismatch");

    OutputState state;
    base::ByteReader in(payload);
    uint32_t count = 0;
    if (!in.get(state.inputs) || !in.get(state.modules) || !in.get(state.module_count) ||
        !in.get(state.keys_since_ns) || !in.get(state.symbols) || !in.get_count(count, 20))
        return invalid("malformed");
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view name;
        File file;
        if (!in.get_string(name) || !in.get(file.size) || !in.get(file.digest))
            return invalid("malformed output entry");
        file.name = std::string(name);
        state.files.push_back(std::move(file));
    }
    if (!in.get_count(count, 5))
        return invalid("malformed");
    for (uint32_t i = 0; i < count; ++i) {
        uint8_t level = 0;
        std::string_view message;
        if (!in.get(level) || level > static_cast<uint8_t>(index::Diagnostic::Level::Error) ||
            !in.get_string(message))
            return invalid("malformed message");
        state.diagnostics.push_back(
            {static_cast<index::Diagnostic::Level>(level), std::string(message)});
    }
    // Each: a path (4 bytes and more) and two keys (44 bytes each and more).
    if (!in.get_count(count, 92))
        return invalid("malformed");
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view path;
        Renewed file;
        if (!in.get_string(path) || !index::read_cache_key(in, file.now) ||
            !index::read_cache_key(in, file.cached))
            return invalid("malformed renewed entry");
        file.path = std::string(path);
        state.renewed.push_back(std::move(file));
    }
    // Each listing: a path (4 bytes and more), a key (40 bytes) and an entry count; each
    // entry a name (5 bytes and more) and two bytes.
    if (!in.get_count(count, 48))
        return invalid("malformed");
    state.listings.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        std::string_view path;
        index::DirListing listing;
        uint32_t entries = 0;
        if (!in.get_string(path) || !path.starts_with('/') || !get_file_key(in, listing.key) ||
            !in.get_count(entries, 7))
            return invalid("malformed directory listing");
        listing.path = std::string(path);
        listing.entries.resize(entries);
        for (index::DirListing::Entry& entry : listing.entries) {
            std::string_view name;
            uint8_t is_dir = 0;
            if (!in.get_string(name) || !is_entry_name(name) || !in.get(entry.type) ||
                !in.get(is_dir) || is_dir > 1)
                return invalid("malformed directory entry");
            entry.name = std::string(name);
            entry.is_dir = is_dir == 1;
        }
        state.listings.push_back(std::move(listing));
    }
    if (!get_array(in, state.alias_order.starts) || !get_array(in, state.alias_order.module_keys) ||
        !get_array(in, state.alias_order.sorted) || !is_well_formed(state.alias_order))
        return invalid("malformed alias order");
    if (!in.get(state.graph.walk_digest) || !get_array(in, state.graph.files) ||
        !get_array(in, state.graph.dep_starts) || !get_array(in, state.graph.deps) ||
        !is_well_formed(state.graph, state.module_count))
        return invalid("malformed module graph");
    if (in.left() != 0)
        return invalid("bytes after the last field");
    return state;
}

base::Result<OutputState> OutputState::load(const std::string& path)
{
    auto bytes = base::read_file(AT_FDCWD, path);
    if (!bytes)
        return tl::unexpected(bytes.error());
    auto state = parse(*bytes);
    if (!state)
        return base::make_error(state.error().code,
                                base::quoted(path) + ": " + state.error().message);
    return state;
}

base::Result<void> OutputState::save(const std::string& path) const
{
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    auto dir_fd = base::open_directory(AT_FDCWD, dir);
    if (!dir_fd)
        return tl::unexpected(dir_fd.error());
    return base::publish_file(dir_fd->get(), name, serialize(), false);
}

} // namespace kmodd::depmod
