// SPDX-License-Identifier: LGPL-2.1-or-later
// Loading and unloading modules with their dependencies, refcount-aware, through sys::Kernel.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "loader/resolver.hpp"
#include "loader/state_store.hpp"
#include "sys/kernel.hpp"

namespace kmodd::loader {

/// How an error about a module file given by path begins, worded as kmod's modprobe.
inline constexpr std::string_view kModuleFileError = "Failed to get module from path ";

/// A module file named on modprobe's command line (is_module_path_argument).
struct ModuleFile {
    Module* module = nullptr;     ///< Resolver::module_from_path() of its absolute path
    bool is_regular_file = false; ///< only a regular file can be inserted
};

/// The module in the file `argument` names, made absolute against the working directory as
/// kmod does ("./x.ko" is "<cwd>/./x.ko"). Errors: stat's errno, with a message that starts
/// with kModuleFileError.
[[nodiscard]] base::Result<ModuleFile> find_module_file(Resolver& resolver,
                                                        const std::string& argument);

/// Runs an install or remove command through /bin/sh as modprobe does: $CMDLINE_OPTS in the
/// command is replaced by `options`, MODPROBE_MODULE is set to `module` in its environment.
/// Errors: EINVAL when the command exits non-zero (the message has its status).
using CommandRunner = std::function<base::Result<void>(
    const std::string& command, const std::string& module, const std::string& options)>;

/// The environment variable through which nested install/remove commands count their depth.
inline constexpr const char* kCommandDepthVariable = "KMODD_COMMAND_DEPTH";
/// How many install/remove commands this process runs inside of (0 when none).
[[nodiscard]] int command_depth();
/// Deeper than this, an install/remove command is taken to be part of a loop.
inline constexpr int kMaxCommandDepth = 8;

/// The default CommandRunner: fork + /bin/sh -c, waited for.
[[nodiscard]] base::Result<void> run_shell_command(const std::string& command,
                                                   const std::string& module,
                                                   const std::string& options);

struct LoadRequest {
    std::string name;             ///< module name or alias
    std::string params;           ///< module parameters for the requested module only
    bool first_time = false;      ///< fail when the module is already loaded (--first-time)
    bool ignore_commands = false; ///< -i
    bool use_blacklist = false;   ///< -b
    bool dry_run = false;         ///< plan only: nothing is inserted, no command runs
    /// modprobe -f, --force-vermagic, --force-modversion: every module inserted asks the
    /// kernel to skip those checks.
    sys::ForceFlags force{};
    /// A `name` starting with '/' or "./" is a module file (modprobe's command line, as kmod
    /// 31 on; not a D-Bus request). Relative paths are taken from the working directory.
    bool name_may_be_path = false;
    /// How the target is recorded in the StateStore: Explicit (a user asked) or Autoload (a
    /// device's modalias). An autoload request never claims a module that is loaded
    /// already. Dependency is not a valid value here.
    Origin origin = Origin::Explicit;
    /// Who or what asked, for the target's record (its time is the load's when 0).
    Provenance provenance{};
};

/// The insertion that failed in the last load: which module, its file and parameters, the
/// kernel's errno and its log lines about it (the facts a diagnosis starts from).
struct InsertFailure {
    std::string module;
    std::string path;
    std::string params;
    int code = 0;
    std::vector<std::string> kernel_messages; ///< sys::Kernel::insert_messages()
};

struct LoadReport {
    std::vector<std::string> inserted; ///< modules inserted (or installed) in this call, in order
    std::vector<ProbeStep> steps;      ///< the steps taken (or, in a dry run, planned)
    bool blacklisted = false;          ///< the request resolved only to blacklisted modules
};

struct UnloadRequest {
    std::string name;
    bool first_time = false;      ///< fail when the module is not loaded
    bool ignore_commands = false; ///< -i: no remove command
    bool dry_run = false;
    /// modprobe -r --remove-holders: the modules holding it are unloaded first, each with
    /// its own holders, as requests of their own.
    bool remove_holders = false;
    /// modprobe -r --wait MSEC: no in-use check; the kernel is asked again while it answers
    /// that the module is in use, with growing pauses (1, 2, 4... ms), for up to this long.
    unsigned wait_ms = 0;
    /// modprobe -r -f: the module itself is removed with O_TRUNC (which only a kernel with
    /// CONFIG_MODULE_FORCE_UNLOAD honours); the in-use checks stay.
    bool force = false;
    /// With dry_run: also report what the cascade would take with the module (kmodd's
    /// unload plan). modprobe -r -n names only the module, as kmod does.
    bool plan_cascade = false;
};

struct UnloadReport {
    std::vector<std::string> removed; ///< in removal order
};

/// Executes load plans against a kernel, refcount-aware. With a StateStore it remembers who
/// loaded what: unloading removes the module, then each of its dependencies and softdeps
/// that kmodd loaded only as a dependency and that nobody uses any more; a module a user
/// asked for, or that kmodd did not load, stays. Without a StateStore it behaves like kmod's
/// modprobe -r: every dependency left unused is removed.
///
/// Errors (Error::code): EINVAL invalid name, ENOENT not found / unknown symbol, EBUSY in use
/// (the message names the holders), EEXIST already loaded with first_time, EPERM, and the
/// kernel's own. A failed load removes again what it inserted, and says so. When a name
/// matches several modules, each is loaded on its own: one failing takes back only what it
/// inserted, the others are still tried and stay (the error then names them).
class Loader {
public:
    Loader(Resolver& resolver, sys::Kernel& kernel, StateStore* state,
           CommandRunner run_command = run_shell_command);

    /// Loads `request.name` with its dependencies. `on_step` sees each step before it runs.
    [[nodiscard]] base::Result<LoadReport>
    load(const LoadRequest& request, const std::function<void(const ProbeStep&)>& on_step = {});

    /// Unloads `request.name` and what was loaded only for it. A dry run changes nothing and
    /// reports the module; with plan_cascade also what the cascade would take with it, in
    /// order (from the kernel's holders and refcounts as they are now and the records).
    [[nodiscard]] base::Result<UnloadReport> unload(const UnloadRequest& request);

    /// True when the kernel has `module` live, or it is built in.
    [[nodiscard]] bool is_in_kernel(const Module& module) const;

    /// The insertion that failed in the last load() call, if one did (not an install
    /// command's failure or a missing file).
    [[nodiscard]] const std::optional<InsertFailure>& insert_failure() const
    {
        return insert_failure_;
    }

private:
    base::Result<void> run_step(const ProbeStep& step, const LoadRequest& request,
                                LoadReport& report);
    base::Result<std::vector<Module*>> find_modules(const std::string& name,
                                                    bool may_be_path = false);
    /// Removes report.inserted[from...] again, last first, and drops them from the report.
    void roll_back(LoadReport& report, size_t from = 0);
    /// Removes `name` from the kernel (forced with request.force), asking again while it is in
    /// use for up to request.wait_ms.
    base::Result<void> remove_waiting(const std::string& name, const UnloadRequest& request);
    /// Appends to `removed` what unloading the modules already in it would take with them
    /// from `candidates`, without changing anything.
    void simulate_cascade(const std::vector<std::string>& candidates,
                          std::vector<std::string>& removed) const;
    /// Records who needs what after a load (in memory at least: see StateStore::unsaved()).
    void record_plan(const Module& target, const std::vector<ProbeStep>& steps,
                     const LoadReport& report, const LoadRequest& request);
    bool is_still_needed(const std::string& module, const std::string& leaving);

    Resolver& resolver_;
    sys::Kernel& kernel_;
    StateStore* state_;
    CommandRunner run_command_;
    std::optional<InsertFailure> insert_failure_;
};

} // namespace kmodd::loader
