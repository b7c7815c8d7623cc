// SPDX-License-Identifier: LGPL-2.1-or-later
// What the last depmod run published, kept beside the parse cache: enough to prove that the
// outputs on disk are what a run on the same inputs would write, so that such a run has
// nothing to do.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "depmod/outputs.hpp"
#include "index/diagnostic.hpp"
#include "index/module_index.hpp"
#include "index/parse_cache.hpp"

namespace kmodd::depmod {

/// The inputs and outputs of one published generation. The file format (native byte order
/// only) is a header (magic "kmoddOS\n", format version, byte-order mark, payload size, CRC-32
/// of the payload) and the fields below; every length is checked when read.
struct OutputState {
    /// The digest of every input but the module files: the options that change output bytes,
    /// the depmod.d configuration, the -E/-F symbols, modules.order and modules.builtin*, and
    /// kmodd's version (another release may write other bytes).
    uint64_t inputs = 0;
    /// index::ModuleIndex::files_digest() of the module files, and how many there were.
    uint64_t modules = 0;
    uint64_t module_count = 0;
    /// The realtime clock when the scan that took those files' identities began: a file changed
    /// shortly before it (index::ParseCache::kRacyMarginNs) may hide a change behind the same
    /// times, so it proves nothing.
    int64_t keys_since_ns = 0;
    /// OutputBuilder::symbols_digest() of the build that made the files: a build whose symbols
    /// have the same keeps modules.symbols and modules.symbols.bin. 0 for none.
    uint64_t symbols = 0;
    /// Each output file as published: name, size and content_digest() of its content.
    struct File {
        std::string name;
        uint64_t size = 0;
        uint64_t digest = 0;
        bool operator==(const File&) const = default;
        /// Whether the file of this name in the directory `dir_fd` holds these bytes (its
        /// size and content_digest()).
        [[nodiscard]] bool is_held_in(int dir_fd) const;
    };
    std::vector<File> files;
    /// What generating the outputs said (warnings a run on the same inputs says again).
    index::Diagnostics diagnostics;
    /// Module files changed since the parse cache's entry for them was written and proven to
    /// parse to what that entry holds (Depmod::outputs_are_current()), so that the cache was not
    /// rewritten: the file's key now, and the key of the cache's entry this holds for.
    struct Renewed {
        std::string path;
        index::CacheKey now;
        index::CacheKey cached;
        bool operator==(const Renewed&) const = default;
    };
    std::vector<Renewed> renewed;
    /// The directories of the tree as the last walk read them (index::WalkMemo): the next
    /// walk reads again only those that changed. Empty when that walk said anything.
    std::vector<index::DirListing> listings;
    /// How the build's aliases sorted (OutputBuilder::alias_order()), for the next build.
    AliasOrder alias_order;
    /// The resolved modules of the build, for a run in which only some modules' imports and
    /// aliases changed (Depmod's splice): kmod's array order, each module's direct
    /// dependencies, and the walk the files were found in. Empty when not recorded (a daemon's
    /// build, a run given files).
    struct Graph {
        /// A digest of the paths of the module files in the order the walk found them.
        uint64_t walk_digest = 0;
        /// Per module position, the index of its file in that order.
        std::vector<uint32_t> files;
        /// Per module position, where its direct dependencies begin in `deps`; then the total.
        std::vector<uint32_t> dep_starts;
        /// The direct dependencies (module positions), each module's in first-use order.
        std::vector<uint32_t> deps;
        bool operator==(const Graph&) const = default;
        [[nodiscard]] bool empty() const { return files.empty(); }
    };
    Graph graph;

    /// Whether every output file in `dir` holds the bytes this state recorded (size and digest).
    [[nodiscard]] bool describes_files_in(const std::string& dir) const;

    [[nodiscard]] std::string serialize() const;
    /// Errors: EINVAL for anything that is not an intact state file of this format version.
    [[nodiscard]] static base::Result<OutputState> parse(std::string_view bytes);
    /// Errors: ENOENT when there is none, the errno of reading, or parse()'s EINVAL.
    [[nodiscard]] static base::Result<OutputState> load(const std::string& path);
    /// Replaces `path` atomically (no fsync: a torn file fails its checksum, and then the
    /// next run does the work).
    [[nodiscard]] base::Result<void> save(const std::string& path) const;
};

/// The file named `name` among `files`; null when none is.
[[nodiscard]] const OutputState::File* find_file(const std::vector<OutputState::File>& files,
                                                 std::string_view name);

/// OutputState::Graph::walk_digest of module files found at `paths`, in this order.
[[nodiscard]] uint64_t walk_digest(std::span<const std::string_view> paths);

/// Where the state of the outputs lives: beside the parse cache `parse_cache`.
[[nodiscard]] std::string output_state_path(std::string_view parse_cache);

} // namespace kmodd::depmod
