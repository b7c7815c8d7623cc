// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl: the command-line client of kmodd, and kmod-compatible tools run in-process.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

#include "commands.hpp"

namespace {

void usage(std::FILE* out)
{
    std::fputs("Usage: kmodctl COMMAND [ARGS...]\n"
               "\n"
               "Commands:\n"
               "  depmod [options] [version]   generate modules.dep and map files (as kmod's depmod)\n"
               "  modprobe [options] NAME...   load or unload modules (as kmod's modprobe)\n"
               "\n"
               "Invoked as 'depmod' or 'modprobe', kmodctl behaves as that command.\n",
               out);
}

int dispatch(int argc, char** argv)
{
    std::string_view self = argv[0];
    if (auto slash = self.rfind('/'); slash != std::string_view::npos)
        self.remove_prefix(slash + 1);
    if (self == "depmod")
        return kmodd::client::run_depmod(argc, argv);
    if (self == "modprobe")
        return kmodd::client::run_modprobe(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    std::string_view command = argv[1];
    if (command == "depmod")
        return kmodd::client::run_depmod(argc - 1, argv + 1);
    if (command == "modprobe")
        return kmodd::client::run_modprobe(argc - 1, argv + 1);
    if (command == "-h" || command == "--help" || command == "help") {
        usage(stdout);
        return 0;
    }
    std::fprintf(stderr, "kmodctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return dispatch(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kmodctl: %s\n", e.what());
    } catch (...) {
        std::fputs("kmodctl: unexpected error\n", stderr);
    }
    return 1;
}
