// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading kmod's binary indexes, and the module database modprobe consults.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace kmodd::depmod {

/// One of kmod's binary indexes (modules.*.bin), read in place: every offset is checked, so a
/// corrupt or truncated file gives no result (or an error when opened), never a crash: a node
/// that lies outside the file counts as absent, and a walk that reads more bytes than a
/// well-formed file of that size could make it read (loops or shared nodes in a corrupt
/// file) stops, so every operation is linear in the file size. Copies share the bytes; the
/// string_views handed out stay valid while any copy of the reader exists.
class IndexReader {
public:
    struct Value {
        std::string_view text;
        uint32_t priority = 0;
    };

    /// Maps `path` read-only. Errors: the errno of open/mmap; EBADMSG for a file that is not
    /// a kmod index (magic 0xB007F457, major version 2) or whose root is out of range.
    [[nodiscard]] static base::Result<IndexReader> open(const std::string& path);

    /// Reads an index that is already in memory (e.g. the engine's outputs); keeps a copy.
    [[nodiscard]] static base::Result<IndexReader> from_bytes(std::string bytes);

    /// kmod's index_mm_search(): the first value stored under exactly `key` (the lowest
    /// priority; among equal ones the value added last by depmod). `key` ends at a NUL.
    [[nodiscard]] std::optional<std::string_view> lookup(std::string_view key) const;

    /// kmod's index_mm_searchwild(): the values of every stored key that, read as an fnmatch(3)
    /// pattern, matches `text` (keys without wildcards must be equal), ordered as libkmod
    /// orders them: by priority, and among equal priorities the value kmod 30's add_value
    /// inserted last comes first (kmod collects, along the path of `text`, the subtrees under
    /// '*', '?' and '[' edges in post-order, then the values of the key equal to `text`).
    /// As in kmod, the trie is followed literally up to the first wildcard character of a
    /// key and only the rest of the key is given to fnmatch(rest, rest of text, 0), so a
    /// backslash before that character does not escape it. `text` ends at a NUL.
    [[nodiscard]] std::vector<Value> search_wildcard(std::string_view text) const;

    /// Every (key, value) in key order, as kmod's index_mm_dump() (used by modprobe -c); the
    /// values of one key in file order. `key` is valid during the call only.
    void dump(const std::function<void(std::string_view key, const Value&)>& visit) const;

private:
    struct Storage;
    explicit IndexReader(std::shared_ptr<const Storage> storage);
    std::shared_ptr<const Storage> storage_;
};

/// The indexes of one module directory, the way modprobe consults them. Each index is the
/// .bin file when present, else the text file depmod also writes (modules.dep,
/// modules.alias, modules.symbols, modules.builtin), turned into the same trie with the line
/// number as priority (so results keep file order; the first of duplicate keys wins). kmod
/// 30's libkmod itself has no text fallback: without the .bin it finds nothing.
/// A .bin that exists but is not an index (depmod writes a 0-byte modules.builtin.bin when
/// modules.builtin is missing) makes that index empty, as libkmod sees it, without touching
/// the others. modules.builtin.alias.bin has no text counterpart.
/// Lookups normalise their argument as kmod_module_new_from_lookup() does ('-' -> '_'
/// outside [...]; an unmatched bracket finds nothing), so normalised input is fine too.
class ModuleDatabase {
public:
    /// Opens `<module_dir>/modules.*`. Errors: ENOENT (with the path) when neither
    /// modules.dep.bin nor modules.dep exists; the error of modules.dep.bin (EBADMSG, EACCES,
    /// ...) when it exists but cannot be read; other indexes may be missing.
    [[nodiscard]] static base::Result<ModuleDatabase> open(const std::string& module_dir);

    /// A database over index contents held in memory, keyed by file name
    /// ("modules.dep.bin", ...), e.g. what the depmod engine just generated.
    [[nodiscard]] static base::Result<ModuleDatabase>
    from_files(std::string module_dir,
               const std::vector<std::pair<std::string, std::string>>& files);

    [[nodiscard]] const std::string& module_dir() const { return module_dir_; }

    /// The modules.dep line of module `name` (normalised): "kernel/a/b.ko: dep1.ko dep2.ko".
    [[nodiscard]] std::optional<std::string> dependency_line(std::string_view name) const;
    /// Module names whose alias patterns match `alias` (modules.alias), priority order, one
    /// entry per matching pattern as libkmod lists them (a module can appear twice).
    [[nodiscard]] std::vector<std::string> modules_for_alias(std::string_view alias) const;
    /// The module that exports `symbol`, given without the "symbol:" prefix: the first module
    /// libkmod lists for the key "symbol:<symbol>" of modules.symbols, if any.
    [[nodiscard]] std::optional<std::string> module_for_symbol(std::string_view symbol) const;
    /// Whether `name` is built into the kernel (modules.builtin).
    [[nodiscard]] bool is_builtin(std::string_view name) const;
    /// Built-in module names whose aliases match `alias` (modules.builtin.alias.bin), in
    /// libkmod's order.
    [[nodiscard]] std::vector<std::string> builtin_modules_for_alias(std::string_view alias) const;

    /// Every modules.dep entry in key order: the module name and its line ("path: deps").
    void for_each_module(
        const std::function<void(std::string_view name, std::string_view line)>& visit) const;
    /// Every alias pattern of modules.alias in key order, with each module it names.
    void for_each_alias(
        const std::function<void(std::string_view alias, std::string_view module)>& visit) const;
    /// Every built-in module name (modules.builtin) in key order.
    void for_each_builtin(const std::function<void(std::string_view name)>& visit) const;

private:
    struct Indexes;
    std::string module_dir_;
    std::shared_ptr<const Indexes> indexes_;
};

} // namespace kmodd::depmod
