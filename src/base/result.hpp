// SPDX-License-Identifier: LGPL-2.1-or-later
// Result<T> and Error: how every library of src/ reports an expected failure.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace kmodd::base {

/// An expected failure: an errno-style code (positive, 0 when none applies) and a sentence
/// that names what failed. Context is prepended on the way up with `with_context`.
struct Error {
    int code = 0;
    std::string message;

    /// Returns a copy whose message reads "<context>: <message>".
    [[nodiscard]] Error with_context(const std::string& context) const
    {
        return Error{code, context + ": " + message};
    }
};

template <typename T> using Result = tl::expected<T, Error>;

/// The failure side of a Result: `return Unexpected(error);` (tl::unexpected, as
/// std::unexpected would be).
using Unexpected = tl::unexpected<Error>;

[[nodiscard]] inline Unexpected make_error(int code, std::string message)
{
    return Unexpected(Error{code, std::move(message)});
}

/// An error carrying `code` whose message is "<what>: <strerror(code)>".
[[nodiscard]] Unexpected errno_error(int code, const std::string& what);

/// Adds context to the error of a failed result, passes a success through.
template <typename T>
[[nodiscard]] Result<T> with_context(Result<T> result, const std::string& context)
{
    if (!result)
        return Unexpected(result.error().with_context(context));
    return result;
}

} // namespace kmodd::base
