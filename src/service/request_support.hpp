// SPDX-License-Identifier: LGPL-2.1-or-later
// What the module requests share: checking a name, finding its modules, and the errors.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "loader/resolver.hpp"
#include "service/module_service.hpp"
#include "service/request_error.hpp"

namespace kmodd::service {

/// A failed request of `kind` saying `message`.
[[nodiscard]] tl::unexpected<RequestError> fail(Failure kind, std::string message);

/// The lower layers write messages to be prefixed with context ("cannot load 'x': ...");
/// a request error is a sentence of its own: the first letter made upper case.
[[nodiscard]] std::string as_sentence(std::string message);

/// InvalidName for a name a user may not give, nothing for a valid one.
[[nodiscard]] std::optional<RequestError> check_name(const std::string& name);

/// "Module 'x' not found in RELEASE".
[[nodiscard]] std::string not_found_message(const IndexSnapshot& snapshot, const std::string& name);

/// NotFound, or Failed naming the file and the reason when the tree has the module but it
/// cannot be used.
[[nodiscard]] tl::unexpected<RequestError> not_found(const IndexSnapshot& snapshot,
                                                     const std::string& name);

/// The lookup's modules for `name` whatever the state of their files (an unload needs none:
/// a loaded module's file may be half-written by a build, or gone); NotFound when there are
/// none.
[[nodiscard]] RequestResult<std::vector<loader::Module*>>
find_indexed_modules(loader::Resolver& resolver, const IndexSnapshot& snapshot,
                     const std::string& name);

/// The lookup's modules for `name`; NotFound when there are none, or none that exists.
[[nodiscard]] RequestResult<std::vector<loader::Module*>>
find_modules(loader::Resolver& resolver, const IndexSnapshot& snapshot, const std::string& name);

} // namespace kmodd::service
