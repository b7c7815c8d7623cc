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
#include "tool_log.hpp"

namespace {

int dispatch(int argc, char** argv)
{
    // Invoked as the tool (a drop-in link), or as `kmodctl TOOL ...` (from the front).
    if (const auto* tool = kmodd::client::find_kmod_tool(kmodd::client::program_name(argv[0])))
        return tool->run(argc, argv);
    if (argc >= 2) {
        if (const auto* tool = kmodd::client::find_kmod_tool(argv[1]))
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
