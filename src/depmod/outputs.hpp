// SPDX-License-Identifier: LGPL-2.1-or-later
// The files depmod writes, generated in memory from the module index.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "depmod/index_writer.hpp"
#include "depmod/kmod_format.hpp"
#include "depmod/output_sink.hpp"
#include "index/diagnostic.hpp"
#include "index/module_index.hpp"

namespace kmodd::depmod {

/// One file depmod writes, with its content.
struct OutputFile {
    std::string name;
    std::string content;
    bool is_binary = false;
};

/// The kernel's own lists of built-in modules, read from the module dir; nullopt when the
/// file is missing (kmod then warns and publishes an empty index).
struct BuiltinInputs {
    std::optional<std::string> modules_builtin;         ///< modules.builtin
    std::optional<std::string> modules_builtin_modinfo; ///< modules.builtin.modinfo
};

/// The order of a build's alias index, kept between runs so that the next run's first build
/// sorts only the aliases of modules that changed (3.5 ms for all 26,000 on amd64). An alias
/// is named by its id: the first id of its module plus its ordinal among the module's aliases.
struct AliasOrder {
    std::vector<uint32_t> starts;      ///< per module position, its first id; then the total
    std::vector<uint64_t> module_keys; ///< per module position, a digest of its file's key
    std::vector<uint32_t> sorted;      ///< every id, as the index sorts the aliases
    bool operator==(const AliasOrder&) const = default;
};

/// What modules.dep and its index print of each module position: its path as modules.dep
/// prints it (index::Candidate::output_path()) and its name.
struct DepNames {
    std::vector<std::string_view> paths;
    std::vector<std::string_view> names;
    /// Those of `resolution`'s modules.
    [[nodiscard]] static DepNames of(const index::Resolution& resolution);
};

/// What AliasOrder::module_keys holds for a module whose file has `key`.
[[nodiscard]] uint64_t alias_order_key(const index::FileKey& key);

/// Produces the files kmod's depmod writes, in its order: modules.dep, .dep.bin, .alias,
/// .alias.bin, .softdep, .weakdep (kmod 33 on), .symbols, .symbols.bin, .builtin.bin,
/// .builtin.alias.bin, .devname; the binary ones laid out as the release of `format` does
/// (see KmodFormat). Problems with single entries (an unmatched bracket in an alias, a devname
/// without major/minor, a non-ASCII string) are reported and the entry is left out.
///
/// What depends on one module only (its alias keys, its line of modules.devname, ...) is kept
/// between builds, keyed by the parsed module, and the sorted alias index is updated rather
/// than rebuilt: after one module changes, a build costs little more than writing the bytes.
/// The text lines of modules.alias and modules.softdep are not kept: they are made again
/// from the parsed modules, which hold the aliases anyway.
class OutputBuilder {
public:
    /// `warn_dups` reports (key, value) pairs inserted twice into an index (depmod -w).
    [[nodiscard]] std::vector<OutputFile> build(const index::Resolution& resolution,
                                                const BuiltinInputs& builtin, bool warn_dups,
                                                KmodFormat format, index::Diagnostics& diagnostics);
    /// The sink a file's bytes go to: called for each file as it is made (in the order made,
    /// not kmod's), from both threads of a parallel build (set_parallel).
    using SinkOpener = std::function<std::unique_ptr<OutputSink>(const char* name, bool is_binary)>;
    /// Asked, for a file the build need not make, whether the file `name` on disk holds what
    /// the last published build made (and is then taken as made); false when it does not.
    using Keeper = std::function<bool(const char* name)>;
    /// build(), writing each file into the sink `open` gives for it as it is made, then
    /// finishing the sink and dropping it: a build never holds a whole file beyond what it
    /// needs to make the next (modules.dep, for modules.dep.bin), nor all of them (~5 MB on
    /// amd64).
    /// With `keep`, files made from the same inputs as the last published build's
    /// (expect_symbols()) are kept as they are on disk instead of made again.
    void build_each(const index::Resolution& resolution, const BuiltinInputs& builtin,
                    bool warn_dups, KmodFormat format, index::Diagnostics& diagnostics,
                    const SinkOpener& open, const Keeper& keep = nullptr);
    /// Makes modules.dep and modules.dep.bin alone from the dependencies and ranks of
    /// `resolution`'s modules (their files unused) and `names`: for Depmod's splice, which
    /// makes no other file from them.
    void build_dep_files(const index::Resolution& resolution, const DepNames& names, bool warn_dups,
                         KmodFormat format, index::Diagnostics& diagnostics,
                         const SinkOpener& open) const;
    /// Says that the file `name` was `size` bytes when last made (by another run: the files on
    /// disk): the next build makes it in a buffer of about that size. A build notes the sizes
    /// of what it makes itself.
    void expect_size(const std::string& name, size_t size) { expected_sizes_[name] = size; }
    /// Says how the aliases of the last published build sorted: the next first build takes
    /// that order for the modules whose file and alias count are the same, sorts the others'
    /// aliases and merges them in. Only the sort's work depends on it: a result that is not
    /// sorted (a module changed within its key, a damaged order) is sorted again.
    void expect_alias_order(AliasOrder order) { expected_order_ = std::move(order); }
    /// How the aliases of the last build sorted.
    [[nodiscard]] AliasOrder alias_order() const;
    /// Says that the last published build's modules.symbols and modules.symbols.bin were made
    /// from symbols whose symbols_digest() was `digest`: a build_each() with a keeper whose
    /// symbols have it again keeps the two files instead of making them (5 ms on amd64).
    void expect_symbols(uint64_t digest) { expected_symbols_ = digest; }
    /// The digest of what the last build made modules.symbols and modules.symbols.bin from
    /// (every exported symbol's name, module name and module position, in the text's order);
    /// 0 when a name is not 7-bit ASCII (the build reported it, which a kept file would not).
    [[nodiscard]] uint64_t symbols_digest() const { return symbols_digest_; }
    /// Whether a build makes its files on two threads: faster, but it holds two at a time and
    /// the temporaries of both (~2 MB more on amd64). For one-shot runs; a daemon keeps the
    /// peak low.
    void set_parallel(bool parallel) { parallel_ = parallel; }

private:
    /// What few modules have: kept apart so that the common fragment stays small.
    struct Rare {
        std::vector<std::string> normalized_keys;      ///< alias keys normalisation changed
        std::string devname_line;                      ///< its line of modules.devname, if any
        index::Diagnostics notes;                      ///< unmatched brackets in its aliases
        std::optional<index::Diagnostic> devname_note; ///< a devname without major:minor
    };
    /// What one module contributes, computed once per parsed file.
    struct Fragment {
        /// The aliases (keys of alias_entries_ point into it) and the cache key.
        std::shared_ptr<const index::ParsedModule> parsed;
        std::unique_ptr<Rare> rare; ///< null when it has nothing rare
        uint32_t position = 0;      ///< in the current build
        uint64_t build = 0;         ///< last build that used it
    };
    /// 24 bytes (a string_view would make it 32): there is one per alias of every module.
    struct AliasEntry {
        AliasEntry(std::string_view alias_key, const Fragment* owner, uint32_t alias_ordinal)
            : key_data(alias_key.data()), key_size(static_cast<uint32_t>(alias_key.size())),
              ordinal(alias_ordinal), fragment(owner)
        {
        }
        [[nodiscard]] std::string_view key() const { return {key_data, key_size}; }

        const char* key_data; ///< the alias in `fragment`, or its normalised form in Rare
        uint32_t key_size;
        uint32_t ordinal; ///< position among the module's aliases
        const Fragment* fragment;
    };

    /// The order of the alias index: by key, then module position, then (kmod inserts in
    /// .modinfo order, and the last of equal priority comes first) ordinal, backwards.
    static bool alias_before(const AliasEntry& a, const AliasEntry& b);
    void make_fragment(const index::Candidate& file, Fragment& fragment,
                       std::vector<AliasEntry>& fresh) const;
    void update_alias_entries(std::vector<AliasEntry> fresh, bool removed_any);
    /// The entries of a first build (`fresh`, in module order) in the order expected_order_
    /// gives, with those of changed modules merged in; false when that order does not name
    /// every entry once. The result is sorted when the modules kept their aliases.
    bool sort_as_expected(std::vector<AliasEntry>& fresh) const;
    /// modules.dep, and where each of its lines ends (at its newline).
    std::string make_dep_text(const index::Resolution& resolution, const DepNames& names,
                              std::vector<uint32_t>& line_ends) const;
    static void make_dep_bin(const DepNames& names, std::string_view dep_text,
                             const std::vector<uint32_t>& line_ends, bool warn_dups,
                             IndexLayout layout, index::Diagnostics& diagnostics, OutputSink& out);
    /// The text files made from .modinfo entries: modules.alias into `alias_out`, the few
    /// lines of modules.softdep and modules.weakdep into strings. Its aliases' problems are
    /// the fragments' (Rare::notes).
    static void make_text_lists(const std::vector<index::Resolution::Module>& modules,
                                OutputSink& alias_out, std::string& softdep_text,
                                std::string& weakdep_text);
    void make_alias_bin(const std::vector<index::Resolution::Module>& modules, bool warn_dups,
                        IndexLayout layout, index::Diagnostics& diagnostics, OutputSink& out) const;
    static void make_symbols_bin(const index::Resolution& resolution, bool warn_dups,
                                 IndexLayout layout, index::Diagnostics& diagnostics,
                                 OutputSink& out);
    static void make_symbols_text(const index::Resolution& resolution, OutputSink& out);
    /// The size of the file `name` when last made (expect_size()); 0 when not known.
    [[nodiscard]] size_t expected_size(const std::string& name) const;

    std::unordered_map<const index::ParsedModule*, Fragment> fragments_;
    std::vector<AliasEntry> alias_entries_; ///< sorted as the alias index stores them
    uint64_t build_ = 0;
    std::unordered_map<std::string, size_t> expected_sizes_; ///< by file name
    bool parallel_ = false;
    uint64_t expected_symbols_ = 0; ///< expect_symbols()
    uint64_t symbols_digest_ = 0;   ///< symbols_digest()
    AliasOrder expected_order_;     ///< expect_alias_order()
    /// Per module position of the last build, a digest of its file's key (AliasOrder).
    std::vector<uint64_t> module_keys_;
};

} // namespace kmodd::depmod
