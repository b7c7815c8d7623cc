// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl unload [--dry-run] MODULE`: asks kmodd to remove a module and the dependencies it
// loaded for it, or with --dry-run what that would remove.
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_unload(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"unload", "MODULE", 1, 1, true, false, {"--dry-run"}};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        // --dry-run: what would go (PlanUnload), which changes nothing and needs no privilege.
        std::vector<std::string> removed =
            session.has_flag("--dry-run")
                ? session.manager().PlanUnload(session.operands()[0])
                : session.call_privileged("Unload", {session.operands()[0]}, Reply::Strings);
        if (session.json()) {
            nlohmann::json out = {{"removed", removed}};
            if (session.has_flag("--dry-run"))
                out["dry_run"] = true;
            print_json(out);
            return;
        }
        for (const auto& module : removed)
            print_line(module);
    });
}

} // namespace kmodd::client
