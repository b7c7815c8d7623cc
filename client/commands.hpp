// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl's subcommands, one function each (one file each in client/).
#pragma once

#include <string_view>

namespace kmodd::client {

/// One of kmod's tools run in-process (kmod_tools.hpp names them): run(argc, argv) takes the
/// tool's own command line, argv[0] being the name it was invoked as.
struct KmodTool {
    std::string_view name;
    int (*run)(int argc, char** argv);
};

/// The tool called `name` (depmod, modprobe, lsmod, insmod, rmmod, modinfo, kmod); null for
/// any other name.
[[nodiscard]] const KmodTool* find_kmod_tool(std::string_view name);

/// `kmodctl depmod [options] [version]`, also run when the binary is invoked as `depmod`:
/// kmod's depmod command line, run in-process. Returns the exit status.
int run_depmod(int argc, char** argv);

/// `kmodctl modprobe [options] NAME...`, also run when invoked as `modprobe`: kmod's
/// modprobe command line, run in-process (the real kernel, or --sandbox-kernel DIR).
int run_modprobe(int argc, char** argv);

// kmod's other tools, run in-process with kmod 30's options, messages and exit statuses. Each
// takes its own command line (argv[0] is the name it was invoked as) and returns the status.

/// `lsmod` and `kmod list`: the loaded modules from /proc/modules and /sys/module.
int run_lsmod(int argc, char** argv);

/// `insmod FILE [ARGS...]`: one module file into the running kernel.
int run_insmod(int argc, char** argv);

/// `rmmod [-f] MODULE...`: modules out of the running kernel, after kmod's checks.
int run_rmmod(int argc, char** argv);

/// `kmod static-nodes [-f FORMAT] [-o FILE]`: the running kernel's modules.devname as device
/// nodes (human, tmpfiles or devname format).
int run_static_nodes(int argc, char** argv);

/// `modinfo [options] MODULE|FILE...`: a module's .modinfo, parameters and signature.
int run_modinfo(int argc, char** argv);

/// `kmod COMMAND`: help, list, static-nodes.
int run_kmod(int argc, char** argv);

/// `kmodctl check [options] FILE.ko|MODULE [PARAM[=VALUE]...]`: whether the module would
/// load into the running kernel, and if not why and how to fix it, without loading it. Takes
/// the whole command line (options may stand before or after the word check). Returns 0
/// when the load should succeed, 1 when it would fail, 2 on a usage error.
int run_check(int argc, char** argv);

// The commands below ask kmodd over D-Bus. Each takes kmodctl's whole command line (argv[0]
// included; `--bus system|session|ADDRESS` and `--json` may stand before or after the command
// word) and returns the exit status: 0, 1 when the call fails (one line on stderr, the D-Bus
// error's message), 2 on a usage error.

/// `kmodctl load MODULE [PARAM=VALUE...]`: Load; prints the modules inserted, one per line.
int run_load(int argc, char** argv);

/// `kmodctl unload [--dry-run] MODULE`: Unload (PlanUnload with --dry-run); prints the
/// modules removed (or that would be), one per line.
int run_unload(int argc, char** argv);

/// `kmodctl [--kernel VERSION] deps MODULE`: ListDeps; prints the load plan, one module per
/// line.
int run_deps(int argc, char** argv);

/// `kmodctl why MODULE`: Explain; prints why the module is loaded, one sentence per line.
int run_why(int argc, char** argv);

/// `kmodctl [--kernel VERSION] rdeps MODULE`: ListHolders (ListUsersForKernel with
/// --kernel); prints the holders, the index's users and what an unload would remove.
int run_rdeps(int argc, char** argv);

/// `kmodctl [--kernel VERSION] find PATTERN`: FindModules; one module per line.
int run_find(int argc, char** argv);

/// `kmodctl kernels`: the Kernels property, one release per line.
int run_kernels(int argc, char** argv);

/// `kmodctl list`: ListLoaded, printed as lsmod does with each module's origin appended.
int run_list(int argc, char** argv);

/// `kmodctl [--kernel VERSION] info MODULE`: GetModuleInfo, printed as modinfo does.
int run_info(int argc, char** argv);

/// `kmodctl status`: kmodd's properties and the devices waiting for a driver.
int run_status(int argc, char** argv);

/// `kmodctl rebuild [VERSION]`: Rebuild; prints nothing.
int run_rebuild(int argc, char** argv);

/// `kmodctl dev [--keep] [--force-holders] PATH.ko [PARAM=VALUE...]`: LinkModule, then Load;
/// Unload + Load each time the build writes the file anew (once it is a whole module and
/// quiet), printing the kernel's lines about the module as they come, until SIGINT or SIGTERM
/// (then Unload and UnlinkModule unless --keep; exit 0). `kmodctl dev --unlink MODULE`:
/// UnlinkModule only.
int run_dev(int argc, char** argv);

/// `kmodctl monitor`: prints kmodd's signals as they arrive until SIGINT or SIGTERM (exit 0).
int run_monitor(int argc, char** argv);

} // namespace kmodd::client
