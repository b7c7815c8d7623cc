// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmod`: kmod 30's multiplexer, `kmod list`, `kmod static-nodes` and `kmod help`.
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

namespace {

struct Subcommand {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* help;
};

int run_help(int argc, char** argv);

constexpr Subcommand kSubcommands[] = {
    {"help", run_help, "Show help message"},
    {"list", run_lsmod, "list currently loaded modules"},
    {"static-nodes", run_static_nodes,
     "outputs the static-node information installed with the currently running kernel"},
};

struct CompatName {
    const char* name;
    const char* help;
};

// The names kmodctl answers to as kmod's tools.
constexpr CompatName kCompatNames[] = {
    {"lsmod", "compat lsmod command"},       {"rmmod", "compat rmmod command"},
    {"insmod", "compat insmod command"},     {"modinfo", "compat modinfo command"},
    {"modprobe", "compat modprobe command"}, {"depmod", "compat depmod command"},
};

void print_help(const char* argv0)
{
    std::printf("kmod - Manage kernel modules: list, load, unload, etc\n"
                "Usage:\n"
                "\t%s [options] command [command_options]\n\n"
                "Options:\n"
                "\t-V, --version     show version\n"
                "\t-h, --help        show this help\n\n"
                "Commands:\n",
                program_name(argv0).c_str());
    for (const Subcommand& command : kSubcommands)
        std::printf("  %-12s %s\n", command.name, command.help);
    std::puts("\nkmod also handles gracefully if called from following symlinks:");
    for (const CompatName& compat : kCompatNames)
        std::printf("  %-12s %s\n", compat.name, compat.help);
}

int run_help(int /*argc*/, char** argv)
{
    print_help(argv[0]);
    return 0;
}

} // namespace

int run_kmod(int argc, char** argv)
{
    static const option kOptions[] = {{"help", no_argument, nullptr, 'h'},
                                      {"version", no_argument, nullptr, 'V'},
                                      {nullptr, 0, nullptr, 0}};
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+hV", kOptions, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'h':
            print_help(argv[0]);
            return 0;
        case 'V':
            std::puts("kmodctl " KMODD_VERSION);
            return 0;
        default:
            return 1;
        }
    }
    if (optind >= argc) {
        std::fputs("missing command\n", stderr);
        print_help(argv[0]);
        return 1;
    }
    const char* name = argv[optind];
    for (const Subcommand& command : kSubcommands) {
        if (std::strcmp(command.name, name) == 0)
            return command.run(argc - optind, argv + optind);
    }
    std::fprintf(stderr, "invalid command '%s'\n", name);
    print_help(argv[0]);
    return 1;
}

} // namespace kmodd::client
