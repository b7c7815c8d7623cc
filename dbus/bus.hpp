// SPDX-License-Identifier: LGPL-2.1-or-later
// Which bus kmodd and kmodctl talk on (--bus system|session|ADDRESS), and opening it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace sdbus {
class IConnection;
}

namespace kmodd::dbus {

/// The value of --bus: the system bus, the session bus, or a D-Bus address.
struct BusChoice {
    enum class Kind { System, Session, Address };
    Kind kind = Kind::System;
    std::string address; ///< Kind::Address only

    /// Parses "system", "session" or an address (TRANSPORT:KEY=VALUE,...; sd-bus checks the
    /// rest when connecting). Errors: EINVAL for anything else, with the value quoted.
    [[nodiscard]] static base::Result<BusChoice> parse(std::string_view value);
    /// "the system bus", "the session bus", "the bus at unix:path=...".
    [[nodiscard]] std::string describe() const;

    friend bool operator==(const BusChoice&, const BusChoice&) = default;
};

/// Connects to the chosen bus. Throws sdbus::Error when the bus cannot be reached.
[[nodiscard]] std::unique_ptr<sdbus::IConnection> open_bus(const BusChoice& bus);

} // namespace kmodd::dbus
