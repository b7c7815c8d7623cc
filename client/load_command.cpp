// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl load MODULE [PARAM=VALUE...]`: asks kmodd to load a module and what it needs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

namespace {

/// The parameters as one string, the way kmod's modprobe joins its command line: separated by
/// spaces, a value holding a space put in double quotes (as the kernel's parser takes it).
std::string join_parameters(const std::vector<std::string>& operands)
{
    std::string out;
    for (size_t i = 1; i < operands.size(); ++i) {
        const std::string& arg = operands[i];
        if (!out.empty())
            out += ' ';
        size_t eq = arg.find('=');
        bool quote = eq != std::string::npos && eq + 1 < arg.size() && arg[eq + 1] != '"' &&
                     arg[eq + 1] != '\'' && arg.find_first_of(" \t", eq + 1) != std::string::npos;
        if (quote)
            out += arg.substr(0, eq + 1) + '"' + arg.substr(eq + 1) + '"';
        else
            out += arg;
    }
    return out;
}

} // namespace

int run_load(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"load", "MODULE [PARAM=VALUE...]", 1, SIZE_MAX};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const auto& operands = session.operands();
        std::vector<std::string> inserted =
            session.manager().Load(operands[0], join_parameters(operands));
        if (session.json()) {
            print_json({{"inserted", inserted}});
            return;
        }
        for (const auto& module : inserted)
            print_line(module);
    });
}

} // namespace kmodd::client
