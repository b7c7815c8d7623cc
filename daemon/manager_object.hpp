// SPDX-License-Identifier: LGPL-2.1-or-later
// The org.kmodd1.Manager object: the generated adaptor over a ManagerBackend.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "authorizer.hpp"
#include "kmodd-adaptor.h"
#include "sdbus_compat.hpp"
#include "service/dev_links.hpp"
#include "service/module_service.hpp"

namespace kmodd::daemon {

/// The values behind org.kmodd1.Manager's properties.
struct ManagerProperties {
    std::string kernel_release;
    uint32_t module_count = 0;
    uint64_t index_generation = 0;
    uint64_t last_rebuild_usec = 0; ///< CLOCK_REALTIME, 0 = never
    uint64_t last_rebuild_duration_usec = 0;
    bool index_verified = true; ///< false while the start from the cache is being checked
    /// Kernels: every indexed release, sorted.
    struct Kernel {
        std::string release;
        uint32_t modules = 0;
        std::string state;   ///< "indexed", "checking" or "failed"
        std::string problem; ///< why it failed (empty otherwise)
    };
    std::vector<Kernel> kernels;
    /// Why the records of who loaded what could not be written ("" when they are).
    std::string records_problem;
};

/// A device waiting for a driver (ListWaitingDevices).
struct WaitingDevice {
    std::string syspath;
    std::string modalias;
};

/// What the D-Bus object asks of the daemon. Called on the loop thread; each `reply` must be
/// called exactly once, on the loop thread, possibly later.
class ManagerBackend {
public:
    template <class T> using Reply = std::function<void(service::RequestResult<T>)>;

    virtual ~ManagerBackend() = default;
    /// `requester`: who asked (recorded with the module).
    virtual void load(std::string module, std::string params, loader::Requester requester,
                      Reply<std::vector<std::string>> reply) = 0;
    virtual void unload(std::string module, Reply<std::vector<std::string>> reply) = 0;
    virtual void plan_unload(std::string module, Reply<std::vector<std::string>> reply) = 0;
    /// The read requests take a kernel release; empty means the one kmodd serves.
    virtual void list_deps(std::string release, std::string module,
                           Reply<std::vector<std::string>> reply) = 0;
    virtual void list_loaded(Reply<std::vector<service::LoadedEntry>> reply) = 0;
    virtual void module_info(std::string release, std::string module,
                             Reply<service::ModuleDetails> reply) = 0;
    virtual void explain(std::string module, Reply<service::Explanation> reply) = 0;
    virtual void diagnose(std::string module, Reply<service::LoadOutcome> reply) = 0;
    virtual void holders(std::string module, Reply<service::HolderReport> reply) = 0;
    virtual void list_users(std::string release, std::string module,
                            Reply<std::vector<std::string>> reply) = 0;
    virtual void find_modules(std::string release, std::string pattern,
                              Reply<std::vector<service::FoundModule>> reply) = 0;
    virtual void rebuild(std::string version, Reply<std::string> reply) = 0;
    /// LinkModule / UnlinkModule in the served release, the index rebuilt before the reply.
    virtual void link_module(std::string file, Reply<service::DevLink> reply) = 0;
    virtual void unlink_module(std::string module, Reply<std::string> reply) = 0;
    [[nodiscard]] virtual std::vector<WaitingDevice> waiting_devices() const = 0;
    [[nodiscard]] virtual const ManagerProperties& properties() const = 0;
};

/// The /org/kmodd1 object: turns D-Bus calls into backend requests and the backend's results
/// into replies, signals and property changes. Checks authorization for Load, Unload,
/// Rebuild, LinkModule and UnlinkModule before the backend sees them. Every handler catches every
/// exception (sdbus-c++ 1.2 only turns sdbus::Error into an error reply and terminates on anything
/// else) and every call is replied to exactly once. Loop thread only.
class ManagerObject final : public dbus::Adaptor<org::kmodd1::Manager_adaptor> {
public:
    /// FindModules' row: name, description, field, match.
    using FoundRow = sdbus::Struct<std::string, std::string, std::string, std::string>;

    ManagerObject(sdbus::IConnection& bus, ManagerBackend& backend, Authorizer& authorizer);
    ~ManagerObject();
    ManagerObject(const ManagerObject&) = delete;
    ManagerObject& operator=(const ManagerObject&) = delete;

    /// Emits PropertiesChanged for `names` (e.g. {"ModuleCount", "IndexGeneration"}).
    void properties_changed(const std::vector<std::string>& names);
    void module_loaded(const std::string& module) { emitModuleLoaded(module); }
    void module_unloaded(const std::string& module) { emitModuleUnloaded(module); }
    void index_rebuilt(const std::string& version, uint32_t modules, uint64_t duration_usec)
    {
        emitIndexRebuilt(version, modules, duration_usec);
    }
    void device_autoloaded(const std::string& syspath, const std::string& modalias,
                           const std::vector<std::string>& modules)
    {
        emitDeviceAutoloaded(syspath, modalias, modules);
    }

private:
    void Load(sdbus::Result<std::vector<std::string>>&& result, std::string module,
              std::string params) override;
    void Unload(sdbus::Result<std::vector<std::string>>&& result, std::string module) override;
    void ListDeps(sdbus::Result<std::vector<std::string>>&& result, std::string module) override;
    void ListLoaded(
        sdbus::Result<std::vector<sdbus::Struct<std::string, uint64_t, uint32_t,
                                                std::vector<std::string>, std::string>>>&& result)
        override;
    void GetModuleInfo(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                       std::string module) override;
    void Explain(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                 std::string module) override;
    void Diagnose(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                  std::string module) override;
    void ListHolders(sdbus::Result<std::vector<std::string>, std::vector<std::string>,
                                   std::vector<std::string>, std::string>&& result,
                     std::string module) override;
    void PlanUnload(sdbus::Result<std::vector<std::string>>&& result, std::string module) override;
    void FindModules(sdbus::Result<std::vector<FoundRow>>&& result, std::string pattern) override;
    void ListDepsForKernel(sdbus::Result<std::vector<std::string>>&& result, std::string release,
                           std::string module) override;
    void GetModuleInfoForKernel(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                                std::string release, std::string module) override;
    void ListUsersForKernel(sdbus::Result<std::vector<std::string>>&& result, std::string release,
                            std::string module) override;
    void FindModulesForKernel(sdbus::Result<std::vector<FoundRow>>&& result, std::string release,
                              std::string pattern) override;
    std::vector<sdbus::Struct<std::string, uint32_t, std::string, std::string>> Kernels() override;
    std::string RecordsProblem() override;
    void Rebuild(sdbus::Result<>&& result, std::string version) override;
    void LinkModule(sdbus::Result<std::string, std::string>&& result, std::string file) override;
    void UnlinkModule(sdbus::Result<std::string>&& result, std::string module) override;
    void ListWaitingDevices(
        sdbus::Result<std::vector<sdbus::Struct<std::string, std::string>>>&& result) override;

    std::string KernelRelease() override { return backend_.properties().kernel_release; }
    uint32_t ModuleCount() override { return backend_.properties().module_count; }
    uint64_t IndexGeneration() override { return backend_.properties().index_generation; }
    uint64_t LastRebuildUSec() override { return backend_.properties().last_rebuild_usec; }
    uint64_t LastRebuildDurationUSec() override
    {
        return backend_.properties().last_rebuild_duration_usec;
    }
    bool IndexVerified() override { return backend_.properties().index_verified; }

    [[nodiscard]] Caller current_caller();

    ManagerBackend& backend_;
    Authorizer& authorizer_;
};

/// The D-Bus error name of a failure category (org.kmodd1.Error.*).
[[nodiscard]] const char* error_name(service::Failure failure);

/// Explain's a{sv}: only the keys that are known.
[[nodiscard]] std::map<std::string, sdbus::Variant>
to_explanation_map(const service::Explanation& explanation);

/// Diagnose's a{sv}: a failure's keys only when the load failed.
[[nodiscard]] std::map<std::string, sdbus::Variant>
to_outcome_map(const service::LoadOutcome& outcome);

/// GetModuleInfo's a{sv}: only the keys the module has.
[[nodiscard]] std::map<std::string, sdbus::Variant>
to_info_map(const service::ModuleDetails& details);

} // namespace kmodd::daemon
