// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl unload MODULE`: asks kmodd to remove a module and the dependencies it loaded for it.
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_unload(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"unload", "MODULE", 1, 1, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        std::vector<std::string> removed =
            session.call_privileged("Unload", {session.operands()[0]}, Reply::Strings);
        if (session.json()) {
            print_json({{"removed", removed}});
            return;
        }
        for (const auto& module : removed)
            print_line(module);
    });
}

} // namespace kmodd::client
