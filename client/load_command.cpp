// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl load MODULE [PARAM=VALUE...]`: asks kmodd to load a module and what it needs, and
// says what did not go as asked (Diagnose's warnings; with --json its whole outcome).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bus_client.hpp"
#include "commands.hpp"
#include "loader/parameters.hpp"

namespace kmodd::client {
namespace {

/// Diagnose's outcome of the load of `module` as JSON; nothing from a kmodd that does not
/// answer it (an older one) or has no outcome.
std::optional<nlohmann::json> outcome_of(BusSession& session, const std::string& module)
{
    try {
        return dict_to_json(session.manager().Diagnose(module));
    } catch (const sdbus::Error&) {
        return std::nullopt;
    }
}

} // namespace

int run_load(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"load", "MODULE [PARAM=VALUE...]", 1, SIZE_MAX, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const auto& operands = session.operands();
        const bool has_params = operands.size() > 1;
        std::vector<std::string> inserted;
        try {
            inserted = session.call_privileged(
                "Load", {operands[0], loader::join_parameters(std::span(operands).subspan(1))},
                Reply::Strings);
        } catch (const sdbus::Error& error) {
            // The error line goes to stderr as for every command; --json adds the parts.
            if (session.json()) {
                nlohmann::json out = {{"error", error.getName()}, {"message", error.getMessage()}};
                if (auto outcome = outcome_of(session, operands[0]))
                    out["diagnosis"] = std::move(*outcome);
                print_json(out);
            }
            throw;
        }
        // Only a load with parameters (one the module does not have) or one that inserted
        // nothing (a file whose module has another name) can have warnings.
        std::optional<nlohmann::json> outcome;
        if (session.json() || has_params || inserted.empty())
            outcome = outcome_of(session, operands[0]);
        if (session.json()) {
            nlohmann::json out = {{"inserted", inserted}};
            if (outcome)
                out["diagnosis"] = std::move(*outcome);
            print_json(out);
            return;
        }
        for (const auto& module : inserted)
            print_line(module);
        if (outcome && outcome->contains("warnings") && (*outcome)["warnings"].is_array()) {
            for (const auto& warning : (*outcome)["warnings"]) {
                if (warning.is_string())
                    std::fprintf(stderr, "kmodctl: warning: %s\n",
                                 warning.get<std::string>().c_str());
            }
        }
    });
}

} // namespace kmodd::client
