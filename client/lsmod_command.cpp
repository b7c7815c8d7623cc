// SPDX-License-Identifier: LGPL-2.1-or-later
// `lsmod` and `kmod list`: the loaded modules as kmod 30's lsmod prints them.
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "sys/module_sysfs.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

int run_lsmod(int argc, char** argv)
{
    if (argc != 1) {
        std::fprintf(stderr, "Usage: %s\n", argv[0]);
        return 1;
    }
    // `kmod list` speaks as kmod.
    std::string self = program_name(argv[0]);
    if (self == "list")
        self = "kmod";
    const sys::ModuleSysfs sysfs;
    auto names = sysfs.loaded_names();
    if (!names) {
        const char* reason = std::strerror(names.error().code);
        std::fprintf(stderr, "%s: ERROR: could not open /proc/modules: %s\n", self.c_str(), reason);
        std::fprintf(stderr, "Error: could not get list of modules: %s\n", reason);
        return 1;
    }
    std::puts("Module                  Size  Used by");
    for (const std::string& name : *names) {
        // kmod reads the count before the size; a module leaving in between shows as -2.
        std::string complaint;
        const long users = sysfs.refcount(name, &complaint);
        if (!complaint.empty())
            std::fprintf(stderr, "%s: ERROR: %s\n", self.c_str(), complaint.c_str());
        const long size = sysfs.size(name);
        std::printf("%-19s %8ld  %d", name.c_str(), size, static_cast<int>(users));
        auto holders = sysfs.holders(name);
        if (!holders) {
            std::fflush(stdout);
            std::fprintf(stderr, "%s: ERROR: %s\n", self.c_str(), holders.error().message.c_str());
        } else {
            const char* separator = " ";
            for (const std::string& holder : *holders) {
                std::fputs(separator, stdout);
                std::fputs(holder.c_str(), stdout);
                separator = ",";
            }
        }
        std::putchar('\n');
    }
    return 0;
}

} // namespace kmodd::client
