// SPDX-License-Identifier: LGPL-2.1-or-later
// modprobe's resolution: a name or alias into kmod's load plan (insmod, install, builtin).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "depmod/index_reader.hpp"
#include "loader/modprobe_config.hpp"

namespace kmodd::loader {

/// A module as the resolver knows it. As in libkmod, a module found through an alias is a
/// different object from the same module found by name ("name\alias"): options given for
/// the alias apply to it, and the blacklist of aliases checks it.
struct Module {
    std::string name;                 ///< normalised module name
    std::optional<std::string> alias; ///< the alias it was found through, if any
    bool is_builtin_hint = false;     ///< found through a builtin index

    // Lazily filled from the module database.
    bool deps_known = false;
    std::optional<std::string> path; ///< absolute path of the module file, if in modules.dep
    std::vector<Module*> deps;       ///< hard dependencies, in load order

    // Filled lazily from the configuration.
    bool install_known = false;
    const std::string* install_command = nullptr;

    // Per probe: cleared at the start of each probe list; `ignore_command` persists, as in
    // libkmod, because it only ever depends on the module's own softdeps.
    bool visited = false;
    bool required = false;
    bool ignore_command = false;
};

/// One action of a load plan, in order.
struct ProbeStep {
    enum class Kind {
        Insert,  ///< insert `module->path` with `options`
        Install, ///< run `module->install_command` with $CMDLINE_OPTS = `options` via /bin/sh
        Builtin, ///< built into the kernel: nothing to do
        Missing, ///< neither a file nor built in (e.g. a config alias to an unknown module)
    };
    Kind kind = Kind::Insert;
    Module* module = nullptr;
    std::string options;
    bool is_target = false;   ///< the module that was asked for (not a dependency or softdep)
    bool is_required = false; ///< the target or a hard dependency: its failure fails the load
};

/// Flags of one probe (the kmod modprobe options that change the plan).
struct ProbeFlags {
    bool ignore_commands = false; ///< -i: no install command, no softdeps for the target
    bool use_blacklist = false;   ///< -b: a blacklisted target is skipped even by name
};

/// Turns "load X" into kmod modprobe's exact sequence of insmod/install/builtin steps,
/// reading the module database and modprobe.d configuration. Keeps its module objects for
/// its lifetime, like a libkmod context: make one per configuration/database generation.
class Resolver {
public:
    Resolver(const depmod::ModuleDatabase& database, const ModprobeConfig& config);

    /// kmod_module_new_from_lookup(): config aliases, modules.dep, symbol:, install/remove
    /// commands, modules.alias, modules.builtin, modules.builtin.alias — the first source
    /// with a result wins. `name` is normalised first; empty when nothing matches.
    [[nodiscard]] std::vector<Module*> lookup(std::string_view name);

    /// The module object for a module name (no alias), as libkmod's from_name.
    [[nodiscard]] Module* module_by_name(std::string_view name);

    /// The module in the file at `absolute_path`, as kmod's modprobe (31 on) takes an
    /// argument starting with '/' or "./": named after the file, inserted from that file,
    /// with the dependencies, options and commands of that name. A module object of its own,
    /// so the one found by name keeps the index's path. The file is not opened here.
    [[nodiscard]] Module* module_from_path(const std::string& absolute_path);

    /// The steps to load `target` with its dependencies and softdeps, in order, with options
    /// from the configuration (and `extra_options` for the target itself). A blacklisted
    /// target found through an alias (or by name with `flags.use_blacklist`) gives no steps.
    [[nodiscard]] std::vector<ProbeStep> probe_list(Module* target, const ProbeFlags& flags,
                                                    std::string_view extra_options);

    /// Whether `module` is blacklisted by the configuration.
    [[nodiscard]] bool is_blacklisted(const Module& module) const;
    /// Whether `module` is built into the kernel (modules.builtin).
    [[nodiscard]] bool is_builtin(const Module& module) const;
    /// Options from the configuration for `module` (by its name or the alias it came
    /// through), joined by spaces.
    [[nodiscard]] std::string options_for(const Module& module) const;
    /// The install command that applies to `module`, or nullptr.
    [[nodiscard]] const std::string* install_command_for(Module& module) const;
    /// The hard dependencies of `module`, in load order (deepest first).
    const std::vector<Module*>& dependencies(Module& module);

    /// A cycle through the modules.dep lines reachable from `module` (a hand-edited index;
    /// depmod never writes one), as names "a", "b", "a"; empty when there is none.
    [[nodiscard]] std::vector<std::string> find_dependency_cycle(Module& module);

    [[nodiscard]] const depmod::ModuleDatabase& database() const { return database_; }
    [[nodiscard]] const ModprobeConfig& config() const { return config_; }

private:
    Module* intern(std::string_view name, std::optional<std::string_view> alias);
    void visit(Module* module, bool required, bool ignore_command, std::vector<Module*>& list);
    void fill_softdep(Module* module, std::vector<Module*>& list);
    std::vector<Module*> lookup_softdeps(const std::vector<std::string>& names);

    const depmod::ModuleDatabase& database_;
    const ModprobeConfig& config_;
    std::unordered_map<std::string, std::unique_ptr<Module>> modules_; ///< by "name[\alias]"
    std::vector<Module*> probe_visited_;                               ///< to reset flags
};

/// Whether modprobe takes `argument` as a module file rather than a name: it starts with '/'
/// or "./" (kmod 31 on; "dir/x.ko" is a name, and not found).
[[nodiscard]] bool is_module_path_argument(std::string_view argument);

/// The longest alias a request may name: kmod's (PATH_MAX - 1).
inline constexpr size_t kMaxAliasLength = 4095;

/// True for a string a user may give as a module name or alias: not empty, not a path (a '/'
/// is allowed only after a ':', as in the modalias "dmi:...:bd04/01/2014:..."), no whitespace
/// or control characters, at most 55 bytes for a plain module name ([A-Za-z0-9_-] only) and
/// at most kMaxAliasLength for anything else. `why` receives the reason.
[[nodiscard]] bool is_valid_module_request(std::string_view text, std::string* why);

} // namespace kmodd::loader
