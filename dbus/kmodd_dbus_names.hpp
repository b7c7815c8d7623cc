// SPDX-License-Identifier: LGPL-2.1-or-later
// The names of kmodd's D-Bus API that introspection XML cannot carry: bus name, object path,
// error names, polkit actions and the values of ListLoaded's origin. The interface itself
// (methods, signals, properties) lives in org.kmodd1.Manager.xml; its name is repeated here
// and checked against the generated code by dbus_interface_test.
#pragma once

namespace kmodd::dbus {

/// The well-known name kmodd owns on the bus.
inline constexpr const char* kBusName = "org.kmodd1";
/// The one object kmodd exports.
inline constexpr const char* kObjectPath = "/org/kmodd1";
/// The interface of that object (== org::kmodd1::Manager_adaptor::INTERFACE_NAME).
inline constexpr const char* kInterfaceName = "org.kmodd1.Manager";

/// D-Bus error names; the error message is a sentence for a person that quotes the name.
inline constexpr const char* kErrorNotFound = "org.kmodd1.Error.NotFound";
inline constexpr const char* kErrorInUse = "org.kmodd1.Error.InUse";
inline constexpr const char* kErrorBlacklisted = "org.kmodd1.Error.Blacklisted";
inline constexpr const char* kErrorInvalidName = "org.kmodd1.Error.InvalidName";
inline constexpr const char* kErrorPermissionDenied = "org.kmodd1.Error.PermissionDenied";
inline constexpr const char* kErrorSignatureRejected = "org.kmodd1.Error.SignatureRejected";
inline constexpr const char* kErrorVersionMismatch = "org.kmodd1.Error.VersionMismatch";
inline constexpr const char* kErrorUnknownSymbol = "org.kmodd1.Error.UnknownSymbol";
inline constexpr const char* kErrorBadParameter = "org.kmodd1.Error.BadParameter";
inline constexpr const char* kErrorFailed = "org.kmodd1.Error.Failed";

/// polkit action ids (systemd/org.kmodd1.policy) checked for callers other than root.
inline constexpr const char* kActionLoad = "org.kmodd1.load";
inline constexpr const char* kActionUnload = "org.kmodd1.unload";
inline constexpr const char* kActionRebuild = "org.kmodd1.rebuild";
/// LinkModule and UnlinkModule: a developer's own module file made loadable.
inline constexpr const char* kActionDevelop = "org.kmodd1.develop";

/// The origin field of ListLoaded's structs.
inline constexpr const char* kOriginExplicit = "explicit";
inline constexpr const char* kOriginDependency = "dependency";
inline constexpr const char* kOriginAutoload = "autoload";
inline constexpr const char* kOriginExternal = "external";

} // namespace kmodd::dbus
