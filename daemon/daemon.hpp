// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd: the watchers, the index, the workers and the bus object wired together.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "authorizer.hpp"
#include "event_loop.hpp"
#include "manager_object.hpp"
#include "options.hpp"
#include "report_log.hpp"
#include "service/autoloader.hpp"
#include "service/changes.hpp"
#include "service/config_watcher.hpp"
#include "service/index_publisher.hpp"
#include "service/module_service.hpp"
#include "service/tree_watcher.hpp"
#include "service/watch_loop.hpp"
#include "sys/devices.hpp"
#include "worker.hpp"

namespace sdbus {
class IConnection;
}

namespace kmodd::daemon {

/// kmodd: the module trees watched and indexed, the Manager object on the bus, requests
/// carried out. Threads: the loop (everything bus-facing, the watcher, the properties), the
/// index worker (IndexService: rebuilds), the kernel worker (loads and unloads, one at a
/// time) and the reader worker (module files read for GetModuleInfo). Requests read an
/// immutable IndexSnapshot of the served release, replaced after each rebuild.
class Daemon final : public ManagerBackend {
public:
    /// Sets everything up: the kernel (real or sandbox), the records of who loaded what, the
    /// watches, a first index of every kernel version (written where the files on disk are
    /// missing or stale), the bus connection, the object and the bus name. Blocks SIGTERM
    /// and SIGINT (they end run()). Errors say what could not be set up.
    [[nodiscard]] static base::Result<std::unique_ptr<Daemon>> create(DaemonOptions options);

    ~Daemon() override;
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Serves until SIGTERM or SIGINT. Tells systemd READY=1 first (and WATCHDOG=1 every
    /// half WATCHDOG_USEC when asked for). Errors: the loop failed.
    [[nodiscard]] base::Result<void> run();

    // ManagerBackend (loop thread)
    void load(std::string module, std::string params, loader::Requester requester,
              Reply<std::vector<std::string>> reply) override;
    void unload(std::string module, Reply<std::vector<std::string>> reply) override;
    void plan_unload(std::string module, Reply<std::vector<std::string>> reply) override;
    void list_deps(std::string release, std::string module,
                   Reply<std::vector<std::string>> reply) override;
    void list_loaded(Reply<std::vector<service::LoadedEntry>> reply) override;
    void module_info(std::string release, std::string module,
                     Reply<service::ModuleDetails> reply) override;
    void explain(std::string module, Reply<service::Explanation> reply) override;
    void diagnose(std::string module, Reply<service::LoadOutcome> reply) override;
    void holders(std::string module, Reply<service::HolderReport> reply) override;
    void list_users(std::string release, std::string module,
                    Reply<std::vector<std::string>> reply) override;
    void find_modules(std::string release, std::string pattern,
                      Reply<std::vector<service::FoundModule>> reply) override;
    void rebuild(std::string version, Reply<std::string> reply) override;
    void link_module(std::string file, Reply<service::DevLink> reply) override;
    void unlink_module(std::string module, Reply<std::string> reply) override;
    [[nodiscard]] std::vector<WaitingDevice> waiting_devices() const override;
    [[nodiscard]] const ManagerProperties& properties() const override { return properties_; }

private:
    /// A Rebuild call waiting for the index worker.
    struct ForcedRebuild {
        std::string version;
        Reply<std::string> reply;
    };

    explicit Daemon(DaemonOptions options);
    base::Result<void> set_up();
    base::Result<void> set_up_kernel();
    base::Result<void> set_up_bus();
    void index_start();
    /// Publishes the index files kmodd published before, when its output state proves them
    /// unchanged (IndexPublisher::open_published()); false when it cannot.
    bool index_start_published();
    /// Indexes every tree on the index worker, as index_start(), after index_start_published():
    /// finish_verification() publishes what differs and marks the index verified.
    void verify_start();
    void finish_verification(service::Publication publication, std::chrono::microseconds took);

    void on_watch_ready();
    void on_signal();
    void start_batch();
    void finish_batch(service::Publication publication, std::vector<ForcedRebuild> forced);
    /// Runs `request` now or, when changes seen in the module trees are not indexed yet, once
    /// the batch that indexes them is published: a module file copied in just before a Load
    /// is found. The wait is bounded: at most the running batch and the next one. Should kmodd
    /// stop first, `refuse` runs instead (it answers the caller that kmodd is stopping).
    void when_index_current(std::function<void()> request, std::function<void()> refuse);
    /// The answer to a call kmodd stops before doing: "kmodd is stopping: <what>; <advice>".
    static service::RequestError stopping(std::string_view what,
                                          std::string_view advice = "ask again once it runs again");
    /// At stop: answers every request when_index_current() parked, and every Rebuild held for
    /// the next batch, that kmodd is stopping.
    void refuse_waiting_requests();
    /// After LinkModule (`is_linked`) or UnlinkModule: calls `done` once the served index has
    /// (has not) module `module` at `relative`, rebuilding the release when the watcher's
    /// batch did not do it.
    void after_dev_link(std::string module, std::string relative, bool is_linked,
                        std::function<void(service::RequestResult<std::string>)> done);
    /// Runs the requests when_index_current() parked whose batch is published (all of them
    /// when nothing is pending any more).
    void run_requests_waiting_for_index();
    /// Makes `snapshot` the one requests read (null: none), and asks again for the devices
    /// waiting for a driver.
    void publish(std::shared_ptr<const service::IndexSnapshot> snapshot);
    /// A load or unload on the kernel worker; ModuleLoaded/ModuleUnloaded for what it did.
    using ChangeWork = std::function<service::RequestResult<std::vector<std::string>>(
        const service::IndexSnapshot&)>;
    void change_kernel(bool is_load, ChangeWork work, Reply<std::vector<std::string>> reply);
    /// After a load or unload (loop thread): the RecordsProblem property and the log follow
    /// whether the records of who loaded what were written (each failure said once).
    void note_records();
    template <class T>
    [[nodiscard]] bool check_index(const std::shared_ptr<const service::IndexSnapshot>& snapshot,
                                   const Reply<T>& reply) const;
    /// The snapshot of `release` (empty: the served one): the published one, or for another
    /// indexed release its index files opened on first use and kept until it changes.
    /// Errors: InvalidName, NotFound (no index for it), Failed (its files cannot be read).
    [[nodiscard]] service::RequestResult<std::shared_ptr<const service::IndexSnapshot>>
    snapshot_for(const std::string& release);
    /// Runs `work` on `worker` with the snapshot of `release` once the index is current,
    /// and answers `reply` on the loop with its result.
    template <class T>
    void read_on(Worker& worker, std::string release, Reply<T> reply,
                 std::function<service::RequestResult<T>(const service::IndexSnapshot&)> work);
    /// Updates the Kernels property from a publication's reports (loop thread, or the index
    /// worker before the loop runs); `is_complete`: the reports name every release, so one
    /// not named is gone.
    void note_kernels(const std::vector<service::VersionReport>& reports,
                      const std::shared_ptr<const service::IndexSnapshot>& snapshot,
                      bool is_complete);
    void notify_status();

    // modprobe.d: read again when it changes (kmod reads it on every call).
    void watch_modprobe_config();
    void on_modprobe_config_changed();
    void reload_modprobe_config();

    // Autoloading (loop thread).
    base::Result<void> set_up_autoload();
    void on_devices_ready();
    void coldplug();
    void request_loads(std::vector<service::AutoloadRequest> requests);

    DaemonOptions options_;
    std::string release_;
    /// Set by SIGTERM/SIGINT: kernel changes not begun yet are refused.
    std::atomic<bool> is_stopping_{false};
    /// Written on the index worker while set_up() waits for it (the loop is not running
    /// yet), then on the loop thread only.
    ManagerProperties properties_;
    ReportLog reports_; ///< the same as properties_

    /// Loop thread: other releases' snapshots opened by snapshot_for(), and the descriptions
    /// read for FindModules, per release.
    std::map<std::string, std::shared_ptr<const service::IndexSnapshot>> other_snapshots_;
    std::map<std::string, std::shared_ptr<service::DescriptionCache>> descriptions_;

    std::unique_ptr<sys::Kernel> kernel_;
    std::optional<loader::StateStore> state_;
    std::unique_ptr<service::ModuleService> modules_;
    std::unique_ptr<service::IndexPublisher> publisher_; ///< apply/start: index worker only
    std::unique_ptr<service::TreeWatcher> watcher_;
    std::unique_ptr<service::WatchLoop> watch_loop_;
    std::unique_ptr<service::ConfigWatcher> config_watcher_; ///< null: modprobe.d unwatched
    bool is_config_reload_queued_ = false;                   ///< loop thread
    bool is_config_reload_again_ = false;                    ///< loop thread
    std::unique_ptr<sys::DeviceMonitor> devices_;            ///< null: no uevents
    std::unique_ptr<service::Autoloader> autoloader_;        ///< null: autoloading off

    std::unique_ptr<sdbus::IConnection> bus_;
    std::unique_ptr<Authorizer> authorizer_;
    std::unique_ptr<ManagerObject> object_;
    std::unique_ptr<EventLoop> loop_;
    base::UniqueFd signal_fd_;

    // Loop thread: the batch in progress and what waits for the next one.
    bool is_batch_running_ = false;
    service::ChangeSet held_changes_;
    std::vector<ForcedRebuild> held_rebuilds_;
    uint64_t batches_started_ = 0;
    uint64_t batches_finished_ = 0;
    /// A request parked by when_index_current() until batch number `batch` is published.
    struct WaitingRequest {
        uint64_t batch;
        std::function<void()> run;
        std::function<void()> refuse;
    };
    std::vector<WaitingRequest> waiting_for_index_;

    // Last: destroyed first, so no task runs against members already gone.
    std::unique_ptr<Worker> index_worker_;
    std::unique_ptr<Worker> kernel_worker_;
    std::unique_ptr<Worker> reader_worker_;
};

} // namespace kmodd::daemon
