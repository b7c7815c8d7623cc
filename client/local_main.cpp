// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl-local: kmod's tools run in-process (depmod, modprobe, lsmod, insmod, rmmod,
// modinfo, kmod), without the D-Bus libraries kmodctl-tools maps. The front execs it for
// `kmodctl depmod ...` and the like, and the drop-ins (depmod, modprobe, ...) link to it: a
// depmod run that finds nothing to do is over in a few milliseconds, and mapping sdbus-c++,
// libsystemd and what they need took ~2.5 ms of them (see docs/ARCHITECTURE.md).
#include <sys/prctl.h>

#include <cstdio>
#include <exception>
#include <string_view>

#include "commands.hpp"

namespace {

struct Tool {
    std::string_view name;
    int (*run)(int argc, char** argv);
};

// The same names and functions as kmodctl-tools' (main.cpp).
constexpr Tool kKmodTools[] = {
    {"depmod", kmodd::client::run_depmod}, {"modprobe", kmodd::client::run_modprobe},
    {"lsmod", kmodd::client::run_lsmod},   {"insmod", kmodd::client::run_insmod},
    {"rmmod", kmodd::client::run_rmmod},   {"modinfo", kmodd::client::run_modinfo},
    {"kmod", kmodd::client::run_kmod},
};

const Tool* find_tool(std::string_view name)
{
    for (const Tool& tool : kKmodTools) {
        if (tool.name == name)
            return &tool;
    }
    return nullptr;
}

int dispatch(int argc, char** argv)
{
    std::string_view self = argv[0];
    if (auto slash = self.rfind('/'); slash != std::string_view::npos)
        self.remove_prefix(slash + 1);
    // Invoked as the tool (a drop-in link), or as `kmodctl TOOL ...` (from the front).
    if (const Tool* tool = find_tool(self))
        return tool->run(argc, argv);
    if (argc >= 2) {
        if (const Tool* tool = find_tool(argv[1]))
            return tool->run(argc - 1, argv + 1);
    }
    std::fputs("Usage: kmodctl-local depmod|modprobe|lsmod|insmod|rmmod|modinfo|kmod [ARGS...]\n"
               "kmod's tools, as kmodctl runs them; kmodctl itself has every other command.\n",
               stderr);
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    // As kmodctl-tools: the process is named as the user called it, not after this file.
    char name[16] = {};
    if (::prctl(PR_GET_NAME, name) == 0 && std::string_view(name) == "kmodctl-local")
        ::prctl(PR_SET_NAME, "kmodctl");
    if (argc < 1)
        return 2;
    try {
        return dispatch(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kmodctl: %s\n", e.what());
    } catch (...) {
        std::fputs("kmodctl: unexpected error\n", stderr);
    }
    return 1;
}
