// SPDX-License-Identifier: LGPL-2.1-or-later
// Every difference between sdbus-c++ 1.2 (Debian 12) and 2.x (Debian 13) that kmodd meets, in
// one place: the rest of the code calls these and builds against either.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

// Set by dbus/CMakeLists.txt from the sdbus-c++ package found.
#ifndef KMODD_SDBUS_MAJOR
#error "KMODD_SDBUS_MAJOR is not set: link kmodd_dbus_generated"
#endif

namespace kmodd::dbus {

#if KMODD_SDBUS_MAJOR >= 2
// 2.x names things with strong types.
using ServiceName = sdbus::ServiceName;
using ObjectPath = sdbus::ObjectPath;
using InterfaceName = sdbus::InterfaceName;
using PropertyName = sdbus::PropertyName;
using ErrorName = sdbus::Error::Name;
#else
using ServiceName = std::string;
using ObjectPath = std::string;
using InterfaceName = std::string;
using PropertyName = std::string;
using ErrorName = std::string;
#endif

/// What Properties.GetAll returns and PropertiesChanged carries.
using PropertyMap = std::map<PropertyName, sdbus::Variant>;
using PropertyNames = std::vector<PropertyName>;

/// An sdbus::Error with a D-Bus error name and a message.
[[nodiscard]] inline sdbus::Error make_error(std::string_view name, std::string message)
{
    return sdbus::Error(ErrorName(std::string(name)), std::move(message));
}

/// Processes one pending message of the connection, for an external event loop; true when
/// there may be more.
inline bool process_pending(sdbus::IConnection& connection)
{
#if KMODD_SDBUS_MAJOR >= 2
    return connection.processPendingEvent();
#else
    return connection.processPendingRequest();
#endif
}

/// A proxy of `destination`'s object at `path`. Throws sdbus::Error.
[[nodiscard]] inline std::unique_ptr<sdbus::IProxy>
create_proxy(sdbus::IConnection& connection, std::string_view destination, std::string_view path)
{
    return sdbus::createProxy(connection, ServiceName(std::string(destination)),
                              ObjectPath(std::string(path)));
}

/// Makes the signal handlers registered on `proxy` with uponSignal() take effect (2.x does at
/// once).
inline void finish_registration([[maybe_unused]] sdbus::IProxy& proxy)
{
#if KMODD_SDBUS_MAJOR < 2
    proxy.finishRegistration();
#endif
}

/// Owns `name` on the bus. Throws sdbus::Error.
inline void request_name(sdbus::IConnection& connection, std::string_view name)
{
    connection.requestName(ServiceName(std::string(name)));
}

/// Emits PropertiesChanged for `names` of `interface`.
inline void emit_properties_changed(sdbus::IObject& object, std::string_view interface,
                                    const std::vector<std::string>& names)
{
    PropertyNames changed;
    for (const std::string& name : names)
        changed.emplace_back(name);
    object.emitPropertiesChangedSignal(InterfaceName(std::string(interface)), changed);
}

/// The unique name of who sent the method call a handler is processing; nullopt outside a
/// handler. (1.2 hands out a pointer to the message, 2.x the message.)
[[nodiscard]] inline std::optional<std::string> current_sender(sdbus::IObject& object)
{
#if KMODD_SDBUS_MAJOR >= 2
    return std::string(object.getCurrentlyProcessedMessage().getSender());
#else
    const sdbus::Message* call = object.getCurrentlyProcessedMessage();
    if (call == nullptr)
        return std::nullopt;
    return std::string(call->getSender());
#endif
}

/// The uid of who sent the method call a handler is processing. Throws sdbus::Error when the
/// bus cannot tell (or outside a handler).
[[nodiscard]] inline uid_t current_uid(sdbus::IObject& object)
{
#if KMODD_SDBUS_MAJOR >= 2
    return object.getCurrentlyProcessedMessage().getCredsUid();
#else
    const sdbus::Message* call = object.getCurrentlyProcessedMessage();
    if (call == nullptr)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed", "no method call is processed");
    return call->getCredsUid();
#endif
}

/// The pid of who sent the method call a handler is processing. Throws sdbus::Error when the
/// bus cannot tell.
[[nodiscard]] inline pid_t current_pid(sdbus::IObject& object)
{
#if KMODD_SDBUS_MAJOR >= 2
    return object.getCurrentlyProcessedMessage().getCredsPid();
#else
    const sdbus::Message* call = object.getCurrentlyProcessedMessage();
    if (call == nullptr)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed", "no method call is processed");
    return call->getCredsPid();
#endif
}

/// Wraps `handle(const sdbus::Error* error, Results... results)` (error null on success) as the
/// reply callback of an asynchronous call (2.x passes std::optional<sdbus::Error>).
template <class... Results, class Handle> [[nodiscard]] auto on_reply(Handle handle)
{
#if KMODD_SDBUS_MAJOR >= 2
    return [handle = std::move(handle)](std::optional<sdbus::Error> error, Results... results) {
        handle(error ? &*error : nullptr, std::move(results)...);
    };
#else
    return [handle = std::move(handle)](const sdbus::Error* error, Results... results) {
        handle(error, std::move(results)...);
    };
#endif
}

/// The base of a proxy of kmodd's object made of the generated interfaces.
template <class... Interfaces> class Proxy : public sdbus::ProxyInterfaces<Interfaces...> {
protected:
    Proxy(sdbus::IConnection& connection, std::string_view destination, std::string_view path)
        : sdbus::ProxyInterfaces<Interfaces...>(connection, ServiceName(std::string(destination)),
                                                ObjectPath(std::string(path)))
    {
    }
    ~Proxy() = default;
};

/// The base of an object made of generated adaptors.
template <class... Interfaces> class Adaptor : public sdbus::AdaptorInterfaces<Interfaces...> {
protected:
    Adaptor(sdbus::IConnection& connection, std::string_view path)
        : sdbus::AdaptorInterfaces<Interfaces...>(connection, ObjectPath(std::string(path)))
    {
    }
    ~Adaptor() = default;
};

} // namespace kmodd::dbus
