// SPDX-License-Identifier: LGPL-2.1-or-later
// Name checks, lookups and error sentences shared by the module requests.
#include "service/request_support.hpp"

#include <algorithm>
#include <cerrno>

#include "base/strings.hpp"

namespace kmodd::service {

using base::quoted;

namespace {

/// A module the lookup named that can be neither inserted, installed nor found built in
/// (a modprobe.d alias to a module the tree does not have).
bool is_missing(loader::Resolver& resolver, loader::Module& module)
{
    if (resolver.install_command_for(module) != nullptr)
        return false;
    resolver.dependencies(module);
    return !module.path && !resolver.is_builtin(module);
}

} // namespace

tl::unexpected<RequestError> fail(Failure kind, std::string message)
{
    return tl::unexpected(RequestError{kind, std::move(message)});
}

std::string as_sentence(std::string message)
{
    if (!message.empty() && message[0] >= 'a' && message[0] <= 'z')
        message[0] = static_cast<char>(message[0] - 'a' + 'A');
    return message;
}

std::optional<RequestError> check_name(const std::string& name)
{
    std::string why;
    if (loader::is_valid_module_request(name, &why))
        return std::nullopt;
    return RequestError{Failure::InvalidName, "Invalid module name " + quoted(name) + ": " + why};
}

std::string not_found_message(const IndexSnapshot& snapshot, const std::string& name)
{
    const std::string& where =
        snapshot.release().empty() ? snapshot.database().module_dir() : snapshot.release();
    return "Module " + quoted(name) + " not found in " + where;
}

tl::unexpected<RequestError> not_found(const IndexSnapshot& snapshot, const std::string& name)
{
    std::string normalised = name;
    std::replace(normalised.begin(), normalised.end(), '-', '_');
    if (auto it = snapshot.unusable().find(normalised); it != snapshot.unusable().end())
        return tl::unexpected(RequestError{
            Failure::Failed, "Module " + quoted(name) + " cannot be used: " + it->second, ENOEXEC});
    return fail(Failure::NotFound, not_found_message(snapshot, name));
}

RequestResult<std::vector<loader::Module*>> find_indexed_modules(loader::Resolver& resolver,
                                                                 const IndexSnapshot& snapshot,
                                                                 const std::string& name)
{
    std::vector<loader::Module*> modules = resolver.lookup(name);
    if (modules.empty())
        return not_found(snapshot, name);
    return modules;
}

RequestResult<std::vector<loader::Module*>>
find_modules(loader::Resolver& resolver, const IndexSnapshot& snapshot, const std::string& name)
{
    std::vector<loader::Module*> modules = resolver.lookup(name);
    bool has_any = std::any_of(modules.begin(), modules.end(),
                               [&](loader::Module* m) { return !is_missing(resolver, *m); });
    if (!has_any)
        return not_found(snapshot, name);
    // Listed in the index as kmod lists it, without dependencies, but not a module: say why
    // rather than hand the file to the kernel.
    for (loader::Module* module : modules) {
        if (auto it = snapshot.unusable().find(module->name); it != snapshot.unusable().end())
            return tl::unexpected(RequestError{
                Failure::Failed,
                "Module " + quoted(module->name) + " cannot be used: " + it->second, ENOEXEC});
    }
    return modules;
}

} // namespace kmodd::service
