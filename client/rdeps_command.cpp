// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl rdeps MODULE`: what needs a module: the loaded modules holding it, the modules of
// the index that depend on it, and what unloading it would remove (ListHolders; with
// --kernel, ListUsersForKernel: the index's users only).
#include <string>
#include <vector>

#include "base/strings.hpp"
#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

namespace {

/// "KEY: a b c", or "KEY:" alone for an empty list.
void print_list(const char* key, const std::vector<std::string>& names)
{
    std::string line = std::string(key) + ":";
    if (!names.empty())
        line += " " + base::join(names, " ");
    print_line(line);
}

} // namespace

int run_rdeps(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"rdeps", "MODULE", 1, 1, false, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const std::string& module = session.operands()[0];
        if (!session.kernel().empty()) {
            std::vector<std::string> users =
                session.manager().ListUsersForKernel(session.kernel(), module);
            if (session.json())
                print_json({{"users", users}});
            else
                print_list("users", users);
            return;
        }
        auto [holders, users, unload, unload_error] = session.manager().ListHolders(module);
        if (session.json()) {
            print_json({{"holders", holders},
                        {"users", users},
                        {"unload", unload},
                        {"unload_error", unload_error}});
            return;
        }
        print_list("holders", holders);
        print_list("users", users);
        if (unload_error.empty())
            print_list("unload", unload);
        else
            print_line("unload: (not possible) " + unload_error);
    });
}

} // namespace kmodd::client
