// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl info MODULE`: a module's information as modinfo prints it (GetModuleInfo, or
// GetModuleInfoForKernel with --kernel).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/strings.hpp"
#include "bus_client.hpp"
#include "commands.hpp"

namespace kmodd::client {

namespace {

using Info = std::map<std::string, sdbus::Variant>;
using Parameter = sdbus::Struct<std::string, std::string, std::string>; // name, type, description

/// modinfo's layout: the key and a colon, padded to 16 columns, then the value.
void print_field(const std::string& key, const std::string& value)
{
    std::string line = key + ':';
    line.append(line.size() < 16 ? 16 - line.size() : 1, ' ');
    print_line(line + value);
}

/// Removes `key` from `info` and returns its value when it has type T; leaves it otherwise
/// (it is then printed as an unknown key).
template <typename T> std::optional<T> take(Info& info, const std::string& key)
{
    auto it = info.find(key);
    if (it == info.end() || !it->second.containsValueOfType<T>())
        return std::nullopt;
    T value = it->second.get<T>();
    info.erase(it);
    return value;
}

/// modinfo's parm line: `name:description (type)`, `name:type` without a description.
std::string format_parameter(const Parameter& parameter)
{
    const auto& [name, type, description] =
        static_cast<const std::tuple<std::string, std::string, std::string>&>(parameter);
    if (description.empty())
        return name + ':' + type;
    if (type.empty())
        return name + ':' + description;
    return name + ':' + description + " (" + type + ')';
}

void print_text(Info info)
{
    auto text = [&](const char* key, const char* label) {
        if (auto value = take<std::string>(info, key))
            print_field(label, *value);
    };
    auto list = [&](const char* key, const char* label) {
        if (auto values = take<std::vector<std::string>>(info, key)) {
            for (const auto& value : *values)
                print_field(label, value);
        }
    };

    auto builtin = take<bool>(info, "builtin");
    if (auto path = take<std::string>(info, "path"))
        print_field("filename", *path);
    else if (builtin.value_or(false))
        print_field("filename", "(builtin)");
    text("version", "version");
    text("description", "description");
    list("authors", "author");
    text("license", "license");
    text("srcversion", "srcversion");
    list("aliases", "alias");
    list("softdeps", "softdep");
    list("firmware", "firmware");
    // modinfo prints the dependencies as one comma-separated line, as .modinfo holds them.
    if (auto depends = take<std::vector<std::string>>(info, "depends"))
        print_field("depends", base::join(*depends, ","));
    if (take<bool>(info, "intree").value_or(false))
        print_field("intree", "Y");
    text("name", "name");
    text("vermagic", "vermagic");
    text("signer", "signer");
    auto parameters = take<std::vector<Parameter>>(info, "parameters");

    // Keys this kmodctl does not know yet, under their own names.
    for (const auto& [key, value] : info) {
        if (value.containsValueOfType<std::vector<std::string>>()) {
            for (const auto& element : value.get<std::vector<std::string>>())
                print_field(key, element);
        } else if (value.containsValueOfType<bool>()) {
            print_field(key, value.get<bool>() ? "Y" : "N");
        } else {
            print_field(key, variant_to_text(value));
        }
    }
    if (parameters) {
        for (const auto& parameter : *parameters)
            print_field("parm", format_parameter(parameter));
    }
}

nlohmann::json to_json(const Info& info)
{
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : info) {
        if (key == "parameters" && value.containsValueOfType<std::vector<Parameter>>()) {
            nlohmann::json parameters = nlohmann::json::array();
            for (const auto& parameter : value.get<std::vector<Parameter>>())
                parameters.push_back({{"name", parameter.get<0>()},
                                      {"type", parameter.get<1>()},
                                      {"description", parameter.get<2>()}});
            out[key] = std::move(parameters);
        } else if (auto converted = variant_to_json(value)) {
            out[key] = std::move(*converted);
        }
    }
    return out;
}

} // namespace

int run_info(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{"info", "MODULE", 1, 1, false, true};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const std::string& module = session.operands()[0];
        Info info = session.kernel().empty()
                        ? session.manager().GetModuleInfo(module)
                        : session.manager().GetModuleInfoForKernel(session.kernel(), module);
        if (session.json())
            print_json(to_json(info));
        else
            print_text(std::move(info));
    });
}

} // namespace kmodd::client
