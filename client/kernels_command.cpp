// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl kernels`: every installed kernel release kmodd indexes, with its module count and
// index state (the Kernels property).
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_kernels(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"kernels", "", 0, 0};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        using Row = sdbus::Struct<std::string, std::uint32_t, std::string, std::string>;
        std::vector<Row> rows = session.manager().Kernels();
        std::string serving;
        try {
            serving = session.manager().KernelRelease();
        } catch (const sdbus::Error&) {
            // An older kmodd: no mark for the served release.
        }
        if (session.json()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& row : rows)
                out.push_back({{"release", row.get<0>()},
                               {"modules", row.get<1>()},
                               {"state", row.get<2>()},
                               {"problem", row.get<3>()},
                               {"served", row.get<0>() == serving}});
            print_json(out);
            return;
        }
        print_line("RELEASE                          MODULES  STATE");
        for (const auto& row : rows) {
            char line[512];
            std::snprintf(line, sizeof line, "%-32s %7u  %s%s", row.get<0>().c_str(), row.get<1>(),
                          row.get<2>().c_str(), row.get<0>() == serving ? " (served)" : "");
            print_line(line);
            if (!row.get<3>().empty())
                print_line("  " + row.get<3>());
        }
    });
}

} // namespace kmodd::client
