// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl find PATTERN`: modules whose name, alias or description matches (FindModules, or
// FindModulesForKernel with --kernel).
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_find(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"find", "PATTERN", 1, 1, false, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const std::string& pattern = session.operands()[0];
        auto rows = session.kernel().empty()
                        ? session.manager().FindModules(pattern)
                        : session.manager().FindModulesForKernel(session.kernel(), pattern);
        if (session.json()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& row : rows)
                out.push_back({{"name", row.get<0>()},
                               {"description", row.get<1>()},
                               {"field", row.get<2>()},
                               {"match", row.get<3>()}});
            print_json(out);
            return;
        }
        // NAME  DESCRIPTION, and what matched when it was not the name or the description.
        for (const auto& row : rows) {
            std::string line = row.get<0>();
            if (!row.get<1>().empty())
                line += "  " + row.get<1>();
            if (row.get<2>() == "alias")
                line += "  [alias " + row.get<3>() + "]";
            print_line(line);
        }
    });
}

} // namespace kmodd::client
