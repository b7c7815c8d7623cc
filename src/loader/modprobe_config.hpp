// SPDX-License-Identifier: LGPL-2.1-or-later
// modprobe.d configuration: aliases, options, install/remove commands, blacklist, softdeps.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "index/diagnostic.hpp"

namespace kmodd::loader {

/// modprobe.d configuration with kmod 30's rules (plus kmod 33's `weakdep`): module names
/// and patterns in directives are normalised like kmod's underscores() ('-' -> '_' outside
/// [...], nothing truncated at '.'); patterns are fnmatch(3) globs, matched with flags 0.
/// Every list keeps config order: files in load order, lines in file order, then the kernel
/// command line.
struct ModprobeConfig {
    struct Alias {
        std::string pattern; ///< normalised alias pattern
        std::string module;  ///< normalised module name
    };
    struct Options {
        std::string name; ///< module name or alias, normalised
        /// The rest of the line, raw: everything after the one blank that ends the name,
        /// so further leading blanks and trailing blanks are kept; tabs are made spaces.
        std::string options;
    };
    struct Command {
        std::string pattern; ///< normalised glob
        /// The rest of the line, raw (leading blanks and tabs kept); run through /bin/sh.
        std::string command;
    };
    struct SoftDep {
        std::string pattern;          ///< normalised glob
        std::vector<std::string> pre; ///< names or aliases, as written
        std::vector<std::string> post;
    };
    struct WeakDep {
        std::string pattern;              ///< normalised glob
        std::vector<std::string> modules; ///< names or aliases, as written
    };

    std::vector<Alias> aliases;
    std::vector<Options> options;
    std::vector<Command> install_commands;
    std::vector<Command> remove_commands;
    /// Module names from `blacklist` lines (normalised) and from `modprobe.blacklist=` on the
    /// kernel command line (kept as written, empty pieces included: kmod 30 does not
    /// normalise those, so 'a-b' there never matches module a_b).
    std::vector<std::string> blacklist;
    std::vector<SoftDep> softdeps;
    std::vector<WeakDep> weakdeps;

    /// kmod's default directories, highest precedence first: /etc/modprobe.d,
    /// /run/modprobe.d, /usr/local/lib/modprobe.d, /lib/modprobe.d.
    static std::vector<std::string> default_paths();

    /// Loads `paths` (`-C` replaces the list): a directory contributes its entries named
    /// `*.conf` not starting with '.' (kmod 30 also reads `*.alias`; kmod >= 33 and we do
    /// not); a path that is not a directory is taken as is under its basename; a missing path
    /// is skipped. All files are sorted by basename (strcmp) across the paths; for a basename
    /// the first one listed wins. `<module_dir>/modules.softdep` and `modules.weakdep` (the
    /// latter read by kmod >= 33 only) enter that list first, under those basenames (so they
    /// win a tie and are parsed where their names sort, e.g. between a.conf and z.conf); empty
    /// `module_dir`: neither. Unreadable
    /// files are skipped. Then the kernel command line text `cmdline` is parsed (e.g.
    /// /proc/cmdline's content; empty for none). Problems go to `diagnostics`.
    static ModprobeConfig load(const std::vector<std::string>& paths, const std::string& module_dir,
                               std::string_view cmdline, index::Diagnostics& diagnostics);

    /// Parses one file's text as kmod does: a backslash joins the next line (before any other
    /// character it is dropped), a line starting with '#' is a comment ('#' elsewhere is
    /// text), words are split on blanks. Errors, with kmod's wording: "<filename> line <n>:
    /// ignoring bad line starting with '<word>'" (unknown directive, missing argument, name
    /// with an unmatched bracket) and "<filename>: command include|config is deprecated and
    /// not parsed anymore". softdep and weakdep lists split on any whitespace; like kmod,
    /// when such a list starts with exactly one blank (two blanks after the pattern), that
    /// blank sticks to the first word, so `softdep m  pre: a` has no pre names.
    void parse(std::string_view text, std::string_view filename, index::Diagnostics& diagnostics);

    /// Parses a kernel command line with kmod's state machine: `mod.param[=value]` ->
    /// options of `mod` (normalised) `param[=value]`; `modprobe.blacklist=a,b` -> blacklist
    /// entries; values may be quoted (`m.p="a b"`), and a bootloader-quoted `"m.p=a b"` reads
    /// as `m.p="a b"`; other words (no '.', '=' before '.', a quote or a second '.' before
    /// '=', spaces outside a quoted value) are ignored. Only the first 4095 bytes count.
    /// Module names with an unmatched bracket are reported as errors (second overload).
    void parse_kernel_cmdline(std::string_view cmdline);
    void parse_kernel_cmdline(std::string_view cmdline, index::Diagnostics& diagnostics);

    /// Module names of every config alias whose pattern matches `name` (as given: kmod
    /// matches the normalised request), in config order.
    [[nodiscard]] std::vector<std::string> modules_for_alias(std::string_view name) const;
    /// The options of every `options` line whose name is exactly `name` or, when not empty,
    /// exactly `alias` (kmod: the module's name and the alias it was found by), in config
    /// order, empty ones skipped, joined by single spaces.
    [[nodiscard]] std::string options_for(std::string_view name, std::string_view alias = {}) const;
    /// The first install (remove) command whose pattern matches `name`, or nullptr.
    [[nodiscard]] const Command* install_command_for(std::string_view name) const;
    [[nodiscard]] const Command* remove_command_for(std::string_view name) const;
    /// Whether `name` is exactly one of the blacklist entries.
    [[nodiscard]] bool is_blacklisted(std::string_view name) const;
    /// The first softdep whose pattern matches `name`, or nullptr.
    [[nodiscard]] const SoftDep* softdep_for(std::string_view name) const;
    /// The first weakdep whose pattern matches `name`, or nullptr.
    [[nodiscard]] const WeakDep* weakdep_for(std::string_view name) const;

    /// The configuration part of `modprobe -c`, byte for byte as kmod prints it: blacklist,
    /// install, remove, alias, options, softdep, weakdep lines, each list in config order.
    /// Like kmod 30, a softdep prints "pre: a b" and "post: c" with no space between them
    /// (kmod prints the span from the first to the last pre name of the line, so it also
    /// lists post names written between pre names; we print the pre names only). modprobe -c
    /// goes on with "\n# End of configuration files. Dumping indexes now:\n\n".
    [[nodiscard]] std::string dump() const;
};

} // namespace kmodd::loader
