// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl deps MODULE`: the modules a load of MODULE involves, in load order (ListDeps, or
// ListDepsForKernel with --kernel).
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_deps(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"deps", "MODULE", 1, 1, false, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const std::string& module = session.operands()[0];
        std::vector<std::string> modules =
            session.kernel().empty()
                ? session.manager().ListDeps(module)
                : session.manager().ListDepsForKernel(session.kernel(), module);
        if (session.json()) {
            print_json({{"modules", modules}});
            return;
        }
        for (const auto& name : modules)
            print_line(name);
    });
}

} // namespace kmodd::client
