// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl rebuild [VERSION]`: asks kmodd for a full rebuild of a release's module index.
#include <string>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_rebuild(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"rebuild", "[VERSION]", 0, 1, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        // The reply comes when the new index is published; there is nothing to print.
        (void)session.call_privileged(
            "Rebuild", {session.operands().empty() ? std::string() : session.operands()[0]},
            Reply::Nothing);
    });
}

} // namespace kmodd::client
