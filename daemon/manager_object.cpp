// SPDX-License-Identifier: LGPL-2.1-or-later
// org.kmodd1.Manager on the bus: requests checked, authorized, handed on and answered.
#include "manager_object.hpp"

#include <exception>
#include <memory>

#include <spdlog/spdlog.h>

#include "base/strings.hpp"
#include "kmodd_dbus_names.hpp"

namespace kmodd::daemon {

namespace {

/// One method call waiting for its reply, shared by the callbacks that may give it. The
/// first reply wins; later ones (which would be a bug) are dropped with a log line.
template <class... Out> class PendingReply {
public:
    explicit PendingReply(sdbus::Result<Out...>&& result) : result_(std::move(result)) {}

    void succeed(const Out&... out)
    {
        if (take())
            send([&] { result_.returnResults(out...); });
    }

    void fail(const char* name, const std::string& message)
    {
        if (take())
            send([&] { result_.returnError(dbus::make_error(name, message)); });
    }

private:
    bool take()
    {
        if (is_replied_) {
            spdlog::error("a method call was answered twice; the second answer is dropped");
            return false;
        }
        is_replied_ = true;
        return true;
    }

    template <class F> static void send(F&& action)
    {
        try {
            action();
        } catch (const std::exception& error) {
            // The caller may have left the bus: nothing to answer any more.
            spdlog::debug("could not send a reply: {}", error.what());
        }
    }

    sdbus::Result<Out...> result_;
    bool is_replied_ = false;
};

template <class... Out>
std::shared_ptr<PendingReply<Out...>> pending(sdbus::Result<Out...>&& result)
{
    return std::make_shared<PendingReply<Out...>>(std::move(result));
}

/// Runs `body`; whatever it throws becomes the error reply of `reply` (if not yet replied).
template <class... Out, class F>
void guarded(const std::shared_ptr<PendingReply<Out...>>& reply, F&& body) noexcept
{
    try {
        body();
    } catch (const sdbus::Error& error) {
        reply->fail(dbus::kErrorFailed, error.getMessage());
    } catch (const std::exception& error) {
        spdlog::error("a request failed unexpectedly: {}", error.what());
        reply->fail(dbus::kErrorFailed, std::string("Internal error: ") + error.what());
    } catch (...) {
        spdlog::error("a request failed unexpectedly");
        reply->fail(dbus::kErrorFailed, "Internal error.");
    }
}

/// ListLoaded's origin strings, as the interface XML defines them.
const char* origin_name(loader::Origin origin)
{
    switch (origin) {
    case loader::Origin::Explicit:
        return dbus::kOriginExplicit;
    case loader::Origin::Dependency:
        return dbus::kOriginDependency;
    case loader::Origin::Autoload:
        return dbus::kOriginAutoload;
    case loader::Origin::External:
        break;
    }
    return dbus::kOriginExternal;
}

/// The backend's callback that answers `reply` with a list of names or the failure.
auto answer_names(std::shared_ptr<PendingReply<std::vector<std::string>>> reply)
{
    return [reply = std::move(reply)](service::RequestResult<std::vector<std::string>> done) {
        if (done)
            reply->succeed(*done);
        else
            reply->fail(error_name(done.error().kind), done.error().message);
    };
}

/// Asks `authorizer` whether `caller` may do `action`; runs `then` if so, else answers
/// `reply` with PermissionDenied. `then` runs guarded: a throw becomes the error reply.
template <class... Out, class F>
void when_authorized(Authorizer& authorizer, const Caller& caller, const char* action,
                     const std::string& what, const std::shared_ptr<PendingReply<Out...>>& reply,
                     F then)
{
    authorizer.check(caller, action, what,
                     [reply, then = std::move(then)](std::optional<std::string> denial) {
                         guarded(reply, [&] {
                             if (denial)
                                 reply->fail(dbus::kErrorPermissionDenied, *denial);
                             else
                                 then();
                         });
                     });
}

} // namespace

const char* error_name(service::Failure failure)
{
    switch (failure) {
    case service::Failure::InvalidName:
        return dbus::kErrorInvalidName;
    case service::Failure::NotFound:
        return dbus::kErrorNotFound;
    case service::Failure::InUse:
        return dbus::kErrorInUse;
    case service::Failure::Blacklisted:
        return dbus::kErrorBlacklisted;
    case service::Failure::PermissionDenied:
        return dbus::kErrorPermissionDenied;
    case service::Failure::Failed:
        break;
    }
    return dbus::kErrorFailed;
}

std::map<std::string, sdbus::Variant> to_info_map(const service::ModuleDetails& details)
{
    std::map<std::string, sdbus::Variant> info;
    auto put_string = [&](const char* key, const std::string& value) {
        if (!value.empty())
            info.emplace(key, sdbus::Variant(value));
    };
    auto put_list = [&](const char* key, const std::vector<std::string>& values) {
        if (!values.empty())
            info.emplace(key, sdbus::Variant(values));
    };
    put_string("name", details.name);
    put_string("path", details.path);
    info.emplace("builtin", sdbus::Variant(details.builtin));
    put_string("version", details.version);
    put_string("description", details.description);
    put_list("authors", details.authors);
    put_string("license", details.license);
    put_list("aliases", details.aliases);
    // depends is listed even when empty: "needs nothing" is an answer modinfo gives too.
    if (!details.builtin)
        info.emplace("depends", sdbus::Variant(details.depends));
    put_list("softdeps", details.softdeps);
    put_list("firmware", details.firmware);
    put_string("vermagic", details.vermagic);
    put_string("srcversion", details.srcversion);
    if (details.intree)
        info.emplace("intree", sdbus::Variant(true));
    put_string("signer", details.signer);
    if (!details.parameters.empty()) {
        std::vector<sdbus::Struct<std::string, std::string, std::string>> parameters;
        for (const auto& parameter : details.parameters)
            parameters.emplace_back(parameter.name, parameter.type, parameter.description);
        info.emplace("parameters", sdbus::Variant(parameters));
    }
    return info;
}

ManagerObject::ManagerObject(sdbus::IConnection& bus, ManagerBackend& backend,
                             Authorizer& authorizer)
    : Adaptor(bus, dbus::kObjectPath), backend_(backend), authorizer_(authorizer)
{
    registerAdaptor();
}

ManagerObject::~ManagerObject()
{
    unregisterAdaptor();
}

void ManagerObject::properties_changed(const std::vector<std::string>& names)
{
    try {
        dbus::emit_properties_changed(getObject(), dbus::kInterfaceName, names);
    } catch (const std::exception& error) {
        spdlog::warn("could not emit PropertiesChanged: {}", error.what());
    }
}

Caller ManagerObject::current_caller()
{
    Caller caller;
    std::optional<std::string> sender = dbus::current_sender(getObject());
    if (!sender)
        return caller;
    caller.sender = std::move(*sender);
    try {
        caller.uid = dbus::current_uid(getObject());
    } catch (const sdbus::Error& error) {
        spdlog::warn("could not learn the uid of {}: {}", caller.sender, error.getMessage());
    }
    return caller;
}

void ManagerObject::Load(sdbus::Result<std::vector<std::string>>&& result, std::string module,
                         std::string params)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        when_authorized(
            authorizer_, current_caller(), dbus::kActionLoad, "load " + base::quoted(module), reply,
            [this, reply, module, params] { backend_.load(module, params, answer_names(reply)); });
    });
}

void ManagerObject::Unload(sdbus::Result<std::vector<std::string>>&& result, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        when_authorized(authorizer_, current_caller(), dbus::kActionUnload,
                        "unload " + base::quoted(module), reply,
                        [this, reply, module] { backend_.unload(module, answer_names(reply)); });
    });
}

void ManagerObject::ListDeps(sdbus::Result<std::vector<std::string>>&& result, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] { backend_.list_deps(std::move(module), answer_names(reply)); });
}

void ManagerObject::ListLoaded(
    sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, uint32_t,
                                            std::vector<std::string>, std::string>>>&& result)
{
    using Row =
        sdbus::Struct<std::string, uint64_t, uint32_t, std::vector<std::string>, std::string>;
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.list_loaded([reply](
                                 service::RequestResult<std::vector<service::LoadedEntry>> done) {
            if (!done) {
                reply->fail(error_name(done.error().kind), done.error().message);
                return;
            }
            std::vector<Row> rows;
            rows.reserve(done->size());
            for (const auto& entry : *done) {
                const char* origin = origin_name(entry.origin);
                // A kernel without module unloading has no refcount: 0, as lsmod shows.
                uint32_t refcount = entry.refcount < 0 ? 0U : static_cast<uint32_t>(entry.refcount);
                rows.emplace_back(entry.name, entry.size, refcount, entry.holders,
                                  std::string(origin));
            }
            reply->succeed(rows);
        });
    });
}

void ManagerObject::GetModuleInfo(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                                  std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.module_info(
            std::move(module), [reply](service::RequestResult<service::ModuleDetails> done) {
                if (done)
                    reply->succeed(to_info_map(*done));
                else
                    reply->fail(error_name(done.error().kind), done.error().message);
            });
    });
}

void ManagerObject::Rebuild(sdbus::Result<>&& result, std::string version)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        std::string what = version.empty() ? std::string("rebuild the module index")
                                           : "rebuild the module index of " + base::quoted(version);
        when_authorized(
            authorizer_, current_caller(), dbus::kActionRebuild, what, reply,
            [this, reply, version] {
                backend_.rebuild(version, [reply](service::RequestResult<std::string> done) {
                    if (done)
                        reply->succeed();
                    else
                        reply->fail(error_name(done.error().kind), done.error().message);
                });
            });
    });
}

void ManagerObject::ListWaitingDevices(
    sdbus::Result<std::vector<sdbus::Struct<std::string, std::string>>>&& result)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        std::vector<sdbus::Struct<std::string, std::string>> rows;
        for (const auto& device : backend_.waiting_devices())
            rows.emplace_back(device.syspath, device.modalias);
        reply->succeed(rows);
    });
}

} // namespace kmodd::daemon
