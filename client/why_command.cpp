// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl why MODULE`: why a module is loaded, as far as kmodd knows (Explain).
#include <map>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

int run_why(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"why", "MODULE", 1, 1};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        std::map<std::string, sdbus::Variant> explanation =
            session.manager().Explain(session.operands()[0]);
        if (session.json()) {
            print_json(dict_to_json(explanation));
            return;
        }
        auto lines = explanation.find("lines");
        if (lines == explanation.end() ||
            !lines->second.containsValueOfType<std::vector<std::string>>())
            throw CommandError("kmodd's answer has no explanation for a person (try --json)");
        for (const auto& line : lines->second.get<std::vector<std::string>>())
            print_line(line);
    });
}

} // namespace kmodd::client
