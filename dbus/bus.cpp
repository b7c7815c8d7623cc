// SPDX-License-Identifier: LGPL-2.1-or-later
// Parsing --bus and connecting to the bus it names.
#include "bus.hpp"

#include <cerrno>

#include <sdbus-c++/sdbus-c++.h>

namespace kmodd::dbus {

base::Result<BusChoice> BusChoice::parse(std::string_view value)
{
    if (value == "system")
        return BusChoice{Kind::System, {}};
    if (value == "session")
        return BusChoice{Kind::Session, {}};
    auto colon = value.find(':');
    if (colon == std::string_view::npos || colon == 0)
        return base::make_error(EINVAL, "unknown bus '" + std::string(value) +
                                            "': use system, session or a D-Bus address such as "
                                            "unix:path=/run/dbus/system_bus_socket");
    return BusChoice{Kind::Address, std::string(value)};
}

std::string BusChoice::describe() const
{
    switch (kind) {
    case Kind::System:
        return "the system bus";
    case Kind::Session:
        return "the session bus";
    case Kind::Address:
        break;
    }
    return "the bus at " + address;
}

std::unique_ptr<sdbus::IConnection> open_bus(const BusChoice& bus)
{
    switch (bus.kind) {
    case BusChoice::Kind::System:
        return sdbus::createSystemBusConnection();
    case BusChoice::Kind::Session:
        return sdbus::createSessionBusConnection();
    case BusChoice::Kind::Address:
        break;
    }
    return sdbus::createSessionBusConnectionWithAddress(bus.address);
}

} // namespace kmodd::dbus
