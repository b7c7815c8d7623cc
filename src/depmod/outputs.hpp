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
    /// build(), writing each file into the sink `open` gives for it as it is made, then
    /// finishing the sink and dropping it: a build never holds a whole file beyond what it
    /// needs to make the next (modules.dep, for modules.dep.bin), nor all of them (~5 MB on
    /// amd64).
    void build_each(const index::Resolution& resolution, const BuiltinInputs& builtin,
                    bool warn_dups, KmodFormat format, index::Diagnostics& diagnostics,
                    const SinkOpener& open);
    /// Says that the file `name` was `size` bytes when last made (by another run: the files on
    /// disk): the next build makes it in a buffer of about that size. A build notes the sizes
    /// of what it makes itself.
    void expect_size(const std::string& name, size_t size) { expected_sizes_[name] = size; }
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

    void make_fragment(const index::Candidate& file, Fragment& fragment,
                       std::vector<AliasEntry>& fresh) const;
    void update_alias_entries(std::vector<AliasEntry> fresh, bool removed_any);
    /// modules.dep, and where each of its lines ends (at its newline).
    std::string make_dep_text(const index::Resolution& resolution,
                              std::vector<uint32_t>& line_ends) const;
    static void make_dep_bin(const index::Resolution& resolution, std::string_view dep_text,
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
};

} // namespace kmodd::depmod
