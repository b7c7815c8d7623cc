// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl: the command-line client of kmodd, and kmod-compatible tools run in-process.
#include <sys/prctl.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "bus_client.hpp"
#include "commands.hpp"
#include "tool_log.hpp"

namespace {

void usage(std::FILE* out)
{
    std::fputs(
        "Usage: kmodctl [--bus system|session|ADDRESS] [--kernel VERSION] COMMAND [ARGS...]\n"
        "               [--json] [--no-ask-password]\n"
        "\n"
        "Commands that ask kmodd over D-Bus:\n"
        "  load MODULE [PARAM=VALUE...]  load a module (or alias) and what it needs; prints\n"
        "                                the modules inserted, one per line\n"
        "  unload [--dry-run] MODULE     unload a module and the dependencies kmodd loaded\n"
        "                                for it; prints the modules removed (--dry-run: what\n"
        "                                would be removed, changing nothing)\n"
        "  deps MODULE                   print the modules a load involves, in load order\n"
        "  why MODULE                    say why a module is loaded: who asked for it, what\n"
        "                                it was loaded for, or what kmodd cannot know\n"
        "  rdeps MODULE                  print what needs a module: the loaded modules\n"
        "                                holding it, the modules whose index entry needs it,\n"
        "                                and what unloading it would remove\n"
        "  find PATTERN                  search modules by name, alias or description (a\n"
        "                                glob with * ? [ ], else a substring; any case)\n"
        "  kernels                       list the installed kernel releases kmodd indexes\n"
        "  list                          list the loaded modules as lsmod does; each line\n"
        "                                ends in two spaces and who loaded the module:\n"
        "                                [explicit], [dependency] or [external]\n"
        "  info MODULE                   show a module's information as modinfo does\n"
        "  status                        show kmodd's kernel release, index and the devices\n"
        "                                waiting for a driver\n"
        "  rebuild [VERSION]             rebuild the module index of VERSION (default: the\n"
        "                                release kmodd serves)\n"
        "  monitor                       print kmodd's signals as they arrive, one line each,\n"
        "                                until SIGINT or SIGTERM\n"
        "  dev [--keep] [--force-holders] PATH.ko [PARAM=VALUE...]\n"
        "                                develop a module: link the file into the running\n"
        "                                kernel's tree, load it, and load it again each time\n"
        "                                the build rewrites it, showing the kernel's lines\n"
        "                                about it; Ctrl-C unloads and unlinks it (--keep:\n"
        "                                leave both); --force-holders unloads the modules\n"
        "                                using it for a reload and loads them back\n"
        "  dev --unlink MODULE           remove a link that dev --keep left\n"
        "\n"
        "Commands run in-process, without kmodd:\n"
        "  depmod [options] [version]    generate modules.dep and map files (as kmod's depmod)\n"
        "  modprobe [options] NAME...    load or unload modules (as kmod's modprobe)\n"
        "  lsmod                         list the loaded modules (as kmod's lsmod)\n"
        "  insmod FILE [ARGS...]         insert one module file (as kmod's insmod)\n"
        "  rmmod [options] MODULE...     remove modules (as kmod's rmmod)\n"
        "  modinfo [options] MODULE...   show modules' information (as kmod's modinfo)\n"
        "  kmod list|static-nodes|help   kmod's own commands (as kmod)\n"
        "  check FILE.ko|MODULE [PARAM=VALUE...]\n"
        "                                say whether the module would load into the running\n"
        "                                kernel and, if not, why and how to fix it (vermagic,\n"
        "                                signature, symbols, parameters), loading nothing\n"
        "\n"
        "Options of the D-Bus commands (before or after the command):\n"
        "  --bus system|session|ADDRESS  the bus kmodd is on (default: system); ADDRESS is a\n"
        "                                D-Bus address such as unix:path=/run/kmodd/bus\n"
        "  --kernel VERSION              deps, info, rdeps, find: ask about the index of\n"
        "                                another installed kernel release\n"
        "  --json                        print one line of JSON instead of text (monitor:\n"
        "                                one JSON object per signal and line)\n"
        "  --no-ask-password             load, unload, rebuild, dev: do not ask for a password\n"
        "                                when polkit wants one (by default kmodctl runs\n"
        "                                pkttyagent when stdin is a terminal)\n"
        "  -h, --help                    show the command's usage\n"
        "  -V, --version                 show kmodctl's version\n"
        "\n"
        "Invoked as 'depmod', 'modprobe', 'lsmod', 'insmod', 'rmmod', 'modinfo' or 'kmod',\n"
        "kmodctl behaves as that command.\n"
        "Exit status: 0 on success, 1 on failure, 2 on a usage error, 4 when the caller\n"
        "is not allowed to (root or polkit's consent is needed to load, unload, rebuild,\n"
        "dev).\n",
        out);
}

struct Command {
    std::string_view name;
    int (*run)(int argc, char** argv);
};

constexpr Command kBusCommands[] = {
    {"load", kmodd::client::run_load},       {"unload", kmodd::client::run_unload},
    {"deps", kmodd::client::run_deps},       {"list", kmodd::client::run_list},
    {"info", kmodd::client::run_info},       {"status", kmodd::client::run_status},
    {"rebuild", kmodd::client::run_rebuild}, {"monitor", kmodd::client::run_monitor},
    {"why", kmodd::client::run_why},         {"rdeps", kmodd::client::run_rdeps},
    {"find", kmodd::client::run_find},       {"kernels", kmodd::client::run_kernels},
    {"dev", kmodd::client::run_dev},
};

int dispatch(int argc, char** argv)
{
    // kmod's tools, run in-process: under their own names, or as `kmodctl NAME ...`.
    if (const auto* tool = kmodd::client::find_kmod_tool(kmodd::client::program_name(argv[0])))
        return tool->run(argc, argv);

    bool has_global_options = false;
    int index = kmodd::client::find_command(argc, argv, &has_global_options);
    if (index >= argc) {
        usage(stderr);
        return 2;
    }
    std::string_view command = argv[index];
    if (command == "-h" || command == "--help" || command == "help") {
        usage(stdout);
        return 0;
    }
    if (command == "-V" || command == "--version") {
        std::puts("kmodctl " KMODD_VERSION);
        return 0;
    }
    if (command == "check")
        return kmodd::client::run_check(argc, argv);
    for (const auto& bus_command : kBusCommands) {
        if (command == bus_command.name)
            return bus_command.run(argc, argv);
    }
    if (const auto* tool = kmodd::client::find_kmod_tool(command)) {
        if (has_global_options) {
            std::fprintf(stderr,
                         "kmodctl: --bus, --kernel, --json and --no-ask-password apply to the "
                         "D-Bus commands, "
                         "not to '%s'\n",
                         argv[index]);
            return 2;
        }
        return tool->run(argc - index, argv + index);
    }
    std::fprintf(stderr, "kmodctl: unknown command '%s'\n", argv[index]);
    usage(stderr);
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    // Run by the front (front.cpp) the process is named after this file; kmodd records the
    // name of whoever asks (Explain: "because kmodctl (uid 0) asked"), which is kmodctl.
    char name[16] = {};
    if (::prctl(PR_GET_NAME, name) == 0 && std::string_view(name) == "kmodctl-tools")
        ::prctl(PR_SET_NAME, "kmodctl");
    try {
        return dispatch(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kmodctl: %s\n", e.what());
    } catch (...) {
        std::fputs("kmodctl: unexpected error\n", stderr);
    }
    return 1;
}
