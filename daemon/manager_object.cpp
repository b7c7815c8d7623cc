// SPDX-License-Identifier: LGPL-2.1-or-later
// org.kmodd1.Manager on the bus: requests checked, authorized, handed on and answered.
#include "manager_object.hpp"

#include <fcntl.h>

#include <exception>
#include <memory>

#include <spdlog/spdlog.h>

#include "base/file.hpp"
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
    case service::Failure::SignatureRejected:
        return dbus::kErrorSignatureRejected;
    case service::Failure::VersionMismatch:
        return dbus::kErrorVersionMismatch;
    case service::Failure::UnknownSymbol:
        return dbus::kErrorUnknownSymbol;
    case service::Failure::BadParameter:
        return dbus::kErrorBadParameter;
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

std::map<std::string, sdbus::Variant> to_outcome_map(const service::LoadOutcome& outcome)
{
    std::map<std::string, sdbus::Variant> out;
    out.emplace("module", sdbus::Variant(outcome.module));
    out.emplace("params", sdbus::Variant(outcome.params));
    out.emplace("time_usec", sdbus::Variant(outcome.time_usec));
    out.emplace("loaded", sdbus::Variant(outcome.loaded));
    if (outcome.loaded) {
        out.emplace("inserted", sdbus::Variant(outcome.inserted));
        out.emplace("warnings", sdbus::Variant(outcome.warnings));
        return out;
    }
    out.emplace("error", sdbus::Variant(std::string(error_name(outcome.kind))));
    out.emplace("message", sdbus::Variant(outcome.message));
    out.emplace("cause", sdbus::Variant(outcome.cause));
    out.emplace("fix", sdbus::Variant(outcome.fix));
    if (!outcome.failed_module.empty()) {
        out.emplace("failed_module", sdbus::Variant(outcome.failed_module));
        out.emplace("file", sdbus::Variant(outcome.file));
        out.emplace("errno", sdbus::Variant(static_cast<int32_t>(outcome.code)));
        out.emplace("kernel_messages", sdbus::Variant(outcome.kernel_messages));
        out.emplace("diagnosis_usec", sdbus::Variant(outcome.diagnosis_usec));
    }
    return out;
}

std::map<std::string, sdbus::Variant> to_explanation_map(const service::Explanation& explanation)
{
    std::map<std::string, sdbus::Variant> out;
    out.emplace("name", sdbus::Variant(explanation.name));
    out.emplace("loaded", sdbus::Variant(explanation.loaded));
    out.emplace("builtin", sdbus::Variant(explanation.builtin));
    if (explanation.loaded) {
        out.emplace("origin", sdbus::Variant(std::string(origin_name(explanation.origin))));
        out.emplace("refcount", sdbus::Variant(explanation.refcount < 0
                                                   ? 0U
                                                   : static_cast<uint32_t>(explanation.refcount)));
        out.emplace("holders", sdbus::Variant(explanation.holders));
    }
    const loader::Provenance& provenance = explanation.provenance;
    if (provenance.usec != 0)
        out.emplace("since_usec", sdbus::Variant(provenance.usec));
    if (provenance.requester) {
        if (provenance.requester->uid >= 0)
            out.emplace("requested_by_uid",
                        sdbus::Variant(static_cast<uint32_t>(provenance.requester->uid)));
        if (!provenance.requester->bus_name.empty())
            out.emplace("requested_by_bus_name", sdbus::Variant(provenance.requester->bus_name));
        if (!provenance.requester->command.empty())
            out.emplace("requested_by_command", sdbus::Variant(provenance.requester->command));
    }
    if (provenance.device) {
        out.emplace("device_syspath", sdbus::Variant(provenance.device->syspath));
        out.emplace("device_modalias", sdbus::Variant(provenance.device->modalias));
    }
    if (explanation.origin == loader::Origin::Dependency) {
        std::vector<sdbus::Struct<std::string, std::string, bool>> users;
        for (const auto& user : explanation.needed_by)
            users.emplace_back(user.name, std::string(user.is_softdep ? "softdep" : "dependency"),
                               user.is_loaded);
        out.emplace("needed_by", sdbus::Variant(users));
    }
    if (explanation.loaded && explanation.origin == loader::Origin::External)
        out.emplace("loaded_before_start", sdbus::Variant(explanation.loaded_before_start));
    if (explanation.start_usec != 0)
        out.emplace("kmodd_started_usec", sdbus::Variant(explanation.start_usec));
    out.emplace("lines", sdbus::Variant(explanation.lines));
    return out;
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
    try {
        const pid_t pid = dbus::current_pid(getObject());
        if (auto comm = base::read_file(AT_FDCWD, "/proc/" + std::to_string(pid) + "/comm"))
            caller.command = std::string(base::trim(*comm));
    } catch (const sdbus::Error& error) {
        spdlog::debug("could not learn the pid of {}: {}", caller.sender, error.getMessage());
    }
    return caller;
}

void ManagerObject::Load(sdbus::Result<std::vector<std::string>>&& result, std::string module,
                         std::string params)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        Caller caller = current_caller();
        loader::Requester requester;
        requester.uid =
            caller.uid == static_cast<uid_t>(-1) ? -1 : static_cast<int64_t>(caller.uid);
        requester.bus_name = caller.sender;
        requester.command = caller.command;
        when_authorized(authorizer_, caller, dbus::kActionLoad, "load " + base::quoted(module),
                        reply, [this, reply, module, params, requester] {
                            backend_.load(module, params, requester, answer_names(reply));
                        });
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
    guarded(reply, [&] { backend_.list_deps({}, std::move(module), answer_names(reply)); });
}

void ManagerObject::ListDepsForKernel(sdbus::Result<std::vector<std::string>>&& result,
                                      std::string release, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.list_deps(std::move(release), std::move(module), answer_names(reply));
    });
}

void ManagerObject::ListUsersForKernel(sdbus::Result<std::vector<std::string>>&& result,
                                       std::string release, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.list_users(std::move(release), std::move(module), answer_names(reply));
    });
}

void ManagerObject::PlanUnload(sdbus::Result<std::vector<std::string>>&& result, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] { backend_.plan_unload(std::move(module), answer_names(reply)); });
}

void ManagerObject::Explain(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                            std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.explain(std::move(module),
                         [reply](service::RequestResult<service::Explanation> done) {
                             if (done)
                                 reply->succeed(to_explanation_map(*done));
                             else
                                 reply->fail(error_name(done.error().kind), done.error().message);
                         });
    });
}

void ManagerObject::Diagnose(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                             std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.diagnose(std::move(module),
                          [reply](service::RequestResult<service::LoadOutcome> done) {
                              if (done)
                                  reply->succeed(to_outcome_map(*done));
                              else
                                  reply->fail(error_name(done.error().kind), done.error().message);
                          });
    });
}

void ManagerObject::ListHolders(sdbus::Result<std::vector<std::string>, std::vector<std::string>,
                                              std::vector<std::string>, std::string>&& result,
                                std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.holders(
            std::move(module), [reply](service::RequestResult<service::HolderReport> done) {
                if (done)
                    reply->succeed(done->holders, done->users, done->unload, done->unload_error);
                else
                    reply->fail(error_name(done.error().kind), done.error().message);
            });
    });
}

void ManagerObject::FindModules(sdbus::Result<std::vector<FoundRow>>&& result, std::string pattern)
{
    FindModulesForKernel(std::move(result), {}, std::move(pattern));
}

void ManagerObject::FindModulesForKernel(sdbus::Result<std::vector<FoundRow>>&& result,
                                         std::string release, std::string pattern)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.find_modules(
            std::move(release), std::move(pattern),
            [reply](service::RequestResult<std::vector<service::FoundModule>> done) {
                if (!done) {
                    reply->fail(error_name(done.error().kind), done.error().message);
                    return;
                }
                std::vector<FoundRow> rows;
                rows.reserve(done->size());
                for (const auto& found : *done)
                    rows.emplace_back(found.name, found.description, found.field, found.match);
                reply->succeed(rows);
            });
    });
}

std::vector<sdbus::Struct<std::string, uint32_t, std::string, std::string>> ManagerObject::Kernels()
{
    std::vector<sdbus::Struct<std::string, uint32_t, std::string, std::string>> rows;
    for (const auto& kernel : backend_.properties().kernels)
        rows.emplace_back(kernel.release, kernel.modules, kernel.state, kernel.problem);
    return rows;
}

std::string ManagerObject::RecordsProblem()
{
    return backend_.properties().records_problem;
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
    GetModuleInfoForKernel(std::move(result), {}, std::move(module));
}

void ManagerObject::GetModuleInfoForKernel(
    sdbus::Result<std::map<std::string, sdbus::Variant>>&& result, std::string release,
    std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        backend_.module_info(std::move(release), std::move(module),
                             [reply](service::RequestResult<service::ModuleDetails> done) {
                                 if (done)
                                     reply->succeed(to_info_map(*done));
                                 else
                                     reply->fail(error_name(done.error().kind),
                                                 done.error().message);
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

void ManagerObject::LinkModule(sdbus::Result<std::string, std::string>&& result, std::string file)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        when_authorized(
            authorizer_, current_caller(), dbus::kActionDevelop,
            "link " + base::quoted(file) + " into the module tree", reply, [this, reply, file] {
                backend_.link_module(file, [reply](service::RequestResult<service::DevLink> done) {
                    if (done)
                        reply->succeed(done->module, done->link);
                    else
                        reply->fail(error_name(done.error().kind), done.error().message);
                });
            });
    });
}

void ManagerObject::UnlinkModule(sdbus::Result<std::string>&& result, std::string module)
{
    auto reply = pending(std::move(result));
    guarded(reply, [&] {
        when_authorized(
            authorizer_, current_caller(), dbus::kActionDevelop,
            "unlink module " + base::quoted(module), reply, [this, reply, module] {
                backend_.unlink_module(module, [reply](service::RequestResult<std::string> done) {
                    if (done)
                        reply->succeed(*done);
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
