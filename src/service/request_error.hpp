// SPDX-License-Identifier: LGPL-2.1-or-later
// How a request to the daemon's core fails: one category a client can act on, one sentence.
#pragma once

#include <string>

#include <tl/expected.hpp>

namespace kmodd::service {

/// Why a request failed, in the categories a client can act on (the D-Bus layer turns them
/// into org.kmodd1.Error.* names).
enum class Failure {
    InvalidName,      ///< the name or the parameters are malformed
    NotFound,         ///< no module, alias or kernel release by that name (or: not loaded)
    InUse,            ///< the module has holders or references
    Blacklisted,      ///< modprobe.d or the kernel command line forbids it
    PermissionDenied, ///< the caller may not do this (used by front-ends; not produced here)
    // A load the kernel refused, by cause (load_diagnosis.hpp); the message gives the cause
    // and its fix.
    SignatureRejected, ///< EKEYREJECTED: unsigned or signed with a key the kernel does not hold
    VersionMismatch,   ///< ENOEXEC: vermagic or a symbol version differs from the kernel's
    UnknownSymbol,     ///< ENOENT: a symbol the module needs is not there
    BadParameter,      ///< EINVAL: a parameter value the module refuses
    Failed,            ///< anything else; the message has the kernel's or the file's reason
};

/// A failed request: the category and one sentence for a person that quotes the name.
struct RequestError {
    Failure kind = Failure::Failed;
    std::string message;
    int code = 0; ///< the errno behind a Failed request (the kernel's ENODEV...), else 0
};

template <class T> using RequestResult = tl::expected<T, RequestError>;

} // namespace kmodd::service
