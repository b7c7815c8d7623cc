// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl load MODULE [PARAM=VALUE...]`: asks kmodd to load a module and what it needs.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"
#include "loader/parameters.hpp"

namespace kmodd::client {

int run_load(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"load", "MODULE [PARAM=VALUE...]", 1, SIZE_MAX, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const auto& operands = session.operands();
        std::vector<std::string> inserted = session.call_privileged(
            "Load", {operands[0], loader::join_parameters(std::span(operands).subspan(1))},
            Reply::Strings);
        if (session.json()) {
            print_json({{"inserted", inserted}});
            return;
        }
        for (const auto& module : inserted)
            print_line(module);
    });
}

} // namespace kmodd::client
