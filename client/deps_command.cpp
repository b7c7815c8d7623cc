// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl deps MODULE`: the modules a load of MODULE involves, in load order (ListDeps).
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_deps(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"deps", "MODULE", 1, 1};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        std::vector<std::string> modules = session.manager().ListDeps(session.operands()[0]);
        if (session.json()) {
            print_json({{"modules", modules}});
            return;
        }
        for (const auto& module : modules)
            print_line(module);
    });
}

} // namespace kmodd::client
