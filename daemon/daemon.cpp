// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's wiring: set-up, the index batches, module requests, modprobe.d and autoload glue.
#include "daemon.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <system_error>

#include <sdbus-c++/sdbus-c++.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "kmodd_dbus_names.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/resolver.hpp"
#include "loader/sandbox_support.hpp"

namespace kmodd::daemon {

namespace {

using Clock = std::chrono::steady_clock;
using service::Failure;
using service::RequestError;
using Action = service::VersionReport::Action;
using service::IndexPublisher;

uint64_t realtime_usec()
{
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

std::string running_release()
{
    utsname names{};
    if (::uname(&names) != 0)
        return {};
    return names.release;
}

void log(service::Severity severity, const std::string& message)
{
    if (message.empty())
        return;
    switch (severity) {
    case service::Severity::Debug:
        spdlog::debug("{}", message);
        break;
    case service::Severity::Info:
        spdlog::info("{}", message);
        break;
    case service::Severity::Warning:
        spdlog::warn("{}", message);
        break;
    }
}

RequestError no_index(const std::string& release)
{
    return RequestError{Failure::NotFound,
                        "No module index for kernel release '" + release + "' (is it installed?)."};
}

} // namespace

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon()
{
    // Workers first: their last tasks may still read the services below.
    index_worker_.reset();
    kernel_worker_.reset();
    reader_worker_.reset();
}

base::Result<std::unique_ptr<Daemon>> Daemon::create(DaemonOptions options)
{
    std::unique_ptr<Daemon> daemon(new Daemon(std::move(options)));
    if (auto done = daemon->set_up(); !done)
        return base::Unexpected(done.error());
    return daemon;
}

base::Result<void> Daemon::set_up()
{
    // Blocked before any thread starts, so every thread inherits the mask and the signals
    // arrive only through the signalfd.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (::pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0)
        return base::errno_error(errno, "pthread_sigmask");
    signal_fd_ = base::UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (signal_fd_.get() < 0)
        return base::errno_error(errno, "signalfd");

    release_ = options_.kernel_release.empty() ? running_release() : options_.kernel_release;
    properties_.kernel_release = release_;

    if (auto done = set_up_kernel(); !done)
        return done;

    IndexPublisher::Settings settings;
    settings.index.base_dir = options_.base_dir();
    settings.index.config_paths = options_.depmod_config;
    settings.index.durable = options_.durable;
    settings.release = release_;
    settings.modprobe_config = options_.modprobe_config;
    settings.cmdline_path = options_.cmdline_path;
    publisher_ = std::make_unique<IndexPublisher>(std::move(settings));

    // Watching starts before the first index, so that nothing changed meanwhile is missed.
    service::TreeWatcher::Settings watch_settings;
    watch_settings.modules_dir = options_.modules_dir;
    auto watcher = service::TreeWatcher::create(watch_settings);
    if (!watcher)
        return base::Unexpected(watcher.error().with_context("cannot watch '" + options_.modules_dir + "'"));
    watcher_ = std::move(*watcher);
    service::Debouncer::Settings debounce{options_.debounce, options_.max_delay};
    auto watch_loop = service::WatchLoop::create(*watcher_, debounce);
    if (!watch_loop)
        return base::Unexpected(watch_loop.error());
    watch_loop_ = std::move(*watch_loop);

    // On the index worker, which does every later rebuild too: glibc keeps one arena per
    // thread, and each would keep a rebuild's freed temporaries for reuse.
    index_worker_ = std::make_unique<Worker>("kmodd-index");
    std::promise<void> started;
    index_worker_->post([this, &started] {
        index_start();
        started.set_value();
    });
    started.get_future().wait();

    if (auto done = set_up_bus(); !done)
        return done;

    kernel_worker_ = std::make_unique<Worker>("kmodd-kernel");
    reader_worker_ = std::make_unique<Worker>("kmodd-reader");
    watch_modprobe_config();
    return set_up_autoload();
}

base::Result<void> Daemon::set_up_kernel()
{
    if (options_.sandbox_dir.empty()) {
        kernel_ = loader::make_system_kernel();
    } else {
        // The sandbox refuses a module needing a symbol that only modules provide and that
        // no loaded module exports: which symbols those are comes from the current index.
        auto is_module_symbol = [this](const std::string& symbol) {
            auto current = publisher_->current();
            return current && current->database().module_for_symbol(symbol).has_value();
        };
        auto kernel = sys::make_sandbox_kernel(options_.sandbox_dir, loader::make_module_inspector(),
                                               is_module_symbol);
        if (!kernel)
            return base::Unexpected(kernel.error().with_context("sandbox kernel"));
        kernel_ = std::move(*kernel);
    }
    std::error_code error;
    std::filesystem::create_directories(options_.state_path(), error);
    if (error)
        return base::make_error(error.value(), "cannot create the state directory '" +
                                                   options_.state_path() + "': " + error.message());
    auto state = loader::StateStore::open(options_.state_path());
    if (!state)
        return base::Unexpected(state.error());
    state_.emplace(std::move(*state));
    modules_ = std::make_unique<service::ModuleService>(*kernel_, &*state_);
    return {};
}

void Daemon::index_start()
{
    auto started = Clock::now();
    service::Publication publication = publisher_->start();
    auto duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    watcher_->set_hints(publication.hints);
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    reports_.note(publication.reports);
    if (publication.snapshot_error)
        spdlog::warn("{}", publication.snapshot_error->message);

    const auto& current = publication.snapshot;
    publish(current);
    properties_.index_generation = current ? 1 : 0;
    properties_.last_rebuild_usec = current ? realtime_usec() : 0;
    properties_.last_rebuild_duration_usec = static_cast<uint64_t>(duration.count());
    for (const auto& report : publication.reports) {
        if (report.version == release_)
            properties_.module_count = IndexPublisher::usable_count(report, current);
    }
    if (!current)
        spdlog::warn("kernel release '{}' has no modules under '{}'; requests will find nothing "
                     "until it appears",
                     release_, options_.modules_dir);
}

base::Result<void> Daemon::set_up_bus()
{
    try {
        bus_ = dbus::open_bus(options_.bus);
        auto policy = options_.bus.kind == dbus::BusChoice::Kind::System
                          ? Authorizer::Policy::Polkit
                          : Authorizer::Policy::SameUser;
        authorizer_ = std::make_unique<Authorizer>(*bus_, policy);
        object_ = std::make_unique<ManagerObject>(*bus_, *this, *authorizer_);
        // The name last: a client that sees it finds the object ready and the index built.
        bus_->requestName(dbus::kBusName);
    } catch (const sdbus::Error& error) {
        return base::make_error(ECONNREFUSED, "cannot serve " + std::string(dbus::kBusName) +
                                                  " on the bus: " + error.getMessage());
    }
    auto loop = EventLoop::create(bus_.get());
    if (!loop)
        return base::Unexpected(loop.error());
    loop_ = std::move(*loop);
    if (auto added = loop_->add(watch_loop_->fd(), EPOLLIN, [this](uint32_t) { on_watch_ready(); });
        !added)
        return added;
    if (auto added = loop_->add(signal_fd_.get(), EPOLLIN, [this](uint32_t) { on_signal(); }); !added)
        return added;
    return {};
}

base::Result<void> Daemon::run()
{
    uint64_t watchdog_usec = 0;
    if (::sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
        auto done = loop_->every(std::chrono::microseconds(watchdog_usec / 2),
                                 [] { ::sd_notify(0, "WATCHDOG=1"); });
        if (!done)
            return done;
    }
    if (autoloader_)
        loop_->post([this] { coldplug(); });
    spdlog::info("serving {} on {}: kernel release '{}', {} modules", dbus::kBusName,
                 options_.bus.describe(), release_, properties_.module_count);
    ::sd_notify(0, "READY=1");
    notify_status();
    auto ran = loop_->run();
    ::sd_notify(0, "STOPPING=1");
    return ran;
}

void Daemon::notify_status()
{
    std::string status = "Serving " + release_ + ": " + std::to_string(properties_.module_count) +
                         " modules, index generation " +
                         std::to_string(properties_.index_generation);
    ::sd_notify(0, ("STATUS=" + status).c_str());
}

void Daemon::on_signal()
{
    signalfd_siginfo info{};
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
        spdlog::info("stopping on signal {}", info.ssi_signo);
        loop_->stop();
    }
}

// ---- the index ------------------------------------------------------------------------------

void Daemon::on_watch_ready()
{
    auto changes = watch_loop_->dispatch();
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    if (!changes) {
        spdlog::error("watching '{}': {}", options_.modules_dir, changes.error().message);
        return;
    }
    if (changes->empty())
        return;
    if (changes->rescan_all)
        spdlog::warn("change events were lost (inotify queue overflow): rescanning every tree");
    held_changes_.merge(*changes);
    if (!is_batch_running_)
        start_batch();
}

void Daemon::start_batch()
{
    service::ChangeSet changes = std::move(held_changes_);
    held_changes_ = {};
    std::vector<ForcedRebuild> forced = std::move(held_rebuilds_);
    held_rebuilds_.clear();
    std::vector<std::string> forced_versions;
    for (const auto& rebuild : forced)
        forced_versions.push_back(rebuild.version);
    is_batch_running_ = true;
    // The shared_ptr carries the replies through the worker (std::function needs copies).
    auto carried = std::make_shared<std::vector<ForcedRebuild>>(std::move(forced));
    index_worker_->post([this, changes = std::move(changes), forced_versions, carried]() mutable {
        service::Publication publication = publisher_->apply(changes, forced_versions);
        loop_->post([this, publication = std::move(publication), carried]() mutable {
            finish_batch(std::move(publication), std::move(*carried));
        });
    });
}

void Daemon::finish_batch(service::Publication publication, std::vector<ForcedRebuild> forced)
{
    is_batch_running_ = false;
    watcher_->set_hints(publication.hints);
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    reports_.note(publication.reports);
    if (publication.snapshot_error)
        spdlog::error("{}", publication.snapshot_error->message);

    std::vector<std::string> changed;
    for (const auto& report : publication.reports) {
        if (report.action == Action::Written) {
            // For the served release the count leaves out unusable files, as ModuleCount does.
            uint32_t modules = report.version == release_
                                   ? IndexPublisher::usable_count(report, publication.snapshot)
                                   : static_cast<uint32_t>(report.modules);
            object_->index_rebuilt(report.version, modules,
                                   static_cast<uint64_t>(report.stats.duration.count()));
        }
        if (report.version != release_)
            continue;
        if (report.action == Action::Written) {
            properties_.module_count = IndexPublisher::usable_count(report, publication.snapshot);
            properties_.index_generation += 1;
            properties_.last_rebuild_usec = realtime_usec();
            properties_.last_rebuild_duration_usec =
                static_cast<uint64_t>(report.stats.duration.count());
            changed = {"ModuleCount", "IndexGeneration", "LastRebuildUSec",
                       "LastRebuildDurationUSec"};
        } else if (report.action == Action::Removed) {
            properties_.module_count = 0;
            changed = {"ModuleCount"};
        }
    }
    if (publication.snapshot || publication.is_release_gone)
        publish(publication.snapshot);
    if (!changed.empty()) {
        object_->properties_changed(changed);
        notify_status();
    }

    for (auto& rebuild : forced) {
        bool is_found = false;
        for (const auto& report : publication.reports) {
            if (report.version != rebuild.version)
                continue;
            is_found = true;
            if (report.action == Action::Failed)
                rebuild.reply(tl::unexpected(RequestError{
                    Failure::Failed, "Rebuilding the index of '" + rebuild.version +
                                         "' failed: " + report.error.message}));
            else
                rebuild.reply(rebuild.version);
        }
        if (!is_found)
            rebuild.reply(tl::unexpected(RequestError{
                Failure::NotFound, "No kernel release '" + rebuild.version + "' under '" +
                                       options_.modules_dir + "'."}));
    }

    if (!held_changes_.empty() || !held_rebuilds_.empty())
        start_batch();
}

void Daemon::publish(std::shared_ptr<const service::IndexSnapshot> snapshot)
{
    if (snapshot) {
        for (const auto& diagnostic : snapshot->diagnostics())
            spdlog::debug("modprobe.d: {}", diagnostic.message);
    }
    bool is_new = snapshot != nullptr;
    publisher_->publish(std::move(snapshot));
    // A module that appeared (or a new alias, a lifted blacklist) may serve a waiting device.
    if (is_new && autoloader_)
        request_loads(autoloader_->on_index_changed());
}

void Daemon::rebuild(std::string version, Reply<std::string> reply)
{
    if (version.empty())
        version = release_;
    if (!service::is_kernel_release_name(version)) {
        reply(tl::unexpected(RequestError{Failure::InvalidName,
                                          "'" + version + "' is not a kernel release."}));
        return;
    }
    held_rebuilds_.push_back({std::move(version), std::move(reply)});
    if (!is_batch_running_)
        start_batch();
}

// ---- module requests ------------------------------------------------------------------------

template <class T>
bool Daemon::check_index(const std::shared_ptr<const service::IndexSnapshot>& snapshot,
                         const Reply<T>& reply) const
{
    if (snapshot)
        return true;
    reply(tl::unexpected(no_index(release_)));
    return false;
}

void Daemon::change_kernel(bool is_load, ChangeWork work, Reply<std::vector<std::string>> reply)
{
    auto current = publisher_->current();
    if (!check_index(current, reply))
        return;
    kernel_worker_->post([this, is_load, current, work = std::move(work), reply = std::move(reply)] {
        auto result = work(*current);
        loop_->post([this, is_load, result = std::move(result), reply] {
            if (result) {
                for (const auto& module : *result) {
                    if (is_load)
                        object_->module_loaded(module);
                    else
                        object_->module_unloaded(module);
                }
                if (!result->empty())
                    spdlog::info("{} {}", is_load ? "loaded" : "unloaded", fmt::join(*result, ", "));
            }
            reply(result);
        });
    });
}

void Daemon::load(std::string module, std::string params, Reply<std::vector<std::string>> reply)
{
    change_kernel(
        true,
        [this, module = std::move(module), params = std::move(params)](
            const service::IndexSnapshot& current) { return modules_->load(current, module, params); },
        std::move(reply));
}

void Daemon::unload(std::string module, Reply<std::vector<std::string>> reply)
{
    change_kernel(
        false,
        [this, module = std::move(module)](const service::IndexSnapshot& current) {
            return modules_->unload(current, module);
        },
        std::move(reply));
}

void Daemon::list_deps(std::string module, Reply<std::vector<std::string>> reply)
{
    auto current = publisher_->current();
    if (!check_index(current, reply))
        return;
    // On the loop: a lookup in the mapped index takes microseconds.
    auto plan = modules_->list_deps(*current, module);
    if (plan) {
        // modprobe -D names a module again where a softdep leads back to it; a client wants
        // each module once, at its first place (which is still a valid load order).
        std::set<std::string> seen;
        std::erase_if(*plan, [&](const std::string& name) { return !seen.insert(name).second; });
    }
    reply(std::move(plan));
}

void Daemon::list_loaded(Reply<std::vector<service::LoadedEntry>> reply)
{
    reply(modules_->list_loaded());
}

void Daemon::module_info(std::string module, Reply<service::ModuleDetails> reply)
{
    auto current = publisher_->current();
    if (!check_index(current, reply))
        return;
    // Off the loop: a compressed module file takes a while to expand.
    reader_worker_->post([this, current, module = std::move(module), reply = std::move(reply)] {
        auto result = modules_->module_info(*current, module);
        loop_->post([result = std::move(result), reply] { reply(result); });
    });
}

// ---- modprobe.d -----------------------------------------------------------------------------

void Daemon::watch_modprobe_config()
{
    auto watcher = service::ConfigWatcher::create(options_.modprobe_config.empty()
                                                      ? loader::ModprobeConfig::default_paths()
                                                      : options_.modprobe_config);
    if (!watcher) {
        spdlog::warn("cannot watch modprobe.d ({}): changes there count after the next rebuild",
                     watcher.error().message);
        return;
    }
    config_watcher_ = std::move(*watcher);
    if (auto added = loop_->add(config_watcher_->fd(), EPOLLIN,
                                [this](uint32_t) { on_modprobe_config_changed(); });
        !added)
        spdlog::warn("cannot watch modprobe.d: {}", added.error().message);
}

void Daemon::on_modprobe_config_changed()
{
    auto changed = config_watcher_->read_changes();
    if (!changed)
        spdlog::warn("watching modprobe.d: {}", changed.error().message);
    else if (*changed)
        reload_modprobe_config();
}

void Daemon::reload_modprobe_config()
{
    if (is_config_reload_queued_) {
        // The queued reload may have read the files already: read them once more after it.
        is_config_reload_again_ = true;
        return;
    }
    is_config_reload_queued_ = true;
    // On the index worker, in turn with rebuilds, so the snapshot published last has read
    // the newest configuration.
    index_worker_->post([this] {
        auto fresh = publisher_->reread_config();
        loop_->post([this, fresh = std::move(fresh)] {
            is_config_reload_queued_ = false;
            if (std::exchange(is_config_reload_again_, false))
                reload_modprobe_config();
            if (!fresh) {
                spdlog::error("{}", fresh.error().message);
                return;
            }
            if (!*fresh)
                return;
            spdlog::info("modprobe.d changed: configuration read again");
            publish(*fresh);
        });
    });
}

// ---- autoloading ----------------------------------------------------------------------------

base::Result<void> Daemon::set_up_autoload()
{
    bool is_udevd = sys::is_udevd_running();
    service::AutoloadMode mode = options_.autoload.value_or(
        !options_.sandbox_dir.empty() ? service::AutoloadMode::Off
        : is_udevd                     ? service::AutoloadMode::UnboundOnly
                                       : service::AutoloadMode::On);
    if (mode == service::AutoloadMode::Off)
        return {};
    service::AutoloadSettings settings;
    settings.mode = mode;
    autoloader_ = std::make_unique<service::Autoloader>(settings, [](const std::string& syspath) {
        auto device = sys::read_sysfs_device(syspath);
        return device && device->has_driver;
    });
    UeventSource source =
        options_.uevent_source.value_or(is_udevd ? UeventSource::Udev : UeventSource::Kernel);
    if (source != UeventSource::None) {
        auto monitor = sys::make_udev_monitor(source == UeventSource::Udev ? sys::EventSource::Udev
                                                                           : sys::EventSource::Kernel);
        if (monitor) {
            devices_ = std::move(*monitor);
            if (auto added = loop_->add(devices_->fd(), EPOLLIN, [this](uint32_t) { on_devices_ready(); });
                !added)
                return added;
        } else {
            spdlog::warn("cannot listen to device events ({}): drivers are loaded only for devices "
                         "found at start and after the index changes",
                         monitor.error().message);
        }
    }
    // Held back by the rate limit: let them through as the limit allows.
    if (auto ticking = loop_->every(std::chrono::milliseconds(250), [this] {
            if (autoloader_->has_deferred())
                request_loads(autoloader_->take_deferred());
        });
        !ticking)
        return ticking;
    spdlog::info("autoloading drivers for devices ({}, events from {})",
                 mode == service::AutoloadMode::On ? "every new device" : "devices left without a driver",
                 !devices_                      ? "nowhere"
                 : source == UeventSource::Udev ? "udev"
                                                : "kernel");
    return {};
}

void Daemon::coldplug()
{
    // Off the loop: a real /sys has thousands of entries to walk.
    reader_worker_->post([this] {
        auto devices = sys::scan_sysfs_devices(options_.sysfs);
        loop_->post([this, devices = std::move(devices)] {
            if (!devices) {
                spdlog::warn("cannot scan '{}' for devices: {}", options_.sysfs, devices.error().message);
                return;
            }
            request_loads(autoloader_->on_coldplug(*devices));
        });
    });
}

void Daemon::on_devices_ready()
{
    auto events = devices_->read_events();
    if (!events) {
        if (events.error().code == ENOBUFS) {
            // The kernel dropped events: what they said is in sysfs now.
            spdlog::warn("device events were lost: scanning '{}' again", options_.sysfs);
            coldplug();
        } else {
            spdlog::error("reading device events: {}", events.error().message);
        }
        return;
    }
    std::vector<service::AutoloadRequest> requests;
    for (const auto& event : *events) {
        if (auto request = autoloader_->on_event(event))
            requests.push_back(std::move(*request));
    }
    request_loads(std::move(requests));
}

void Daemon::request_loads(std::vector<service::AutoloadRequest> requests)
{
    auto current = publisher_->current();
    for (auto& request : requests) {
        if (!current) {
            autoloader_->on_result(request, service::AutoloadOutcome::NoModule);
            continue;
        }
        kernel_worker_->post([this, current, request = std::move(request)] {
            auto result = modules_->load(*current, request.modalias, "", loader::Origin::Autoload);
            loop_->post([this, request, result = std::move(result)] {
                service::AutoloadReport report = autoloader_->on_load_result(request, result);
                for (const auto& inserted : report.inserted)
                    object_->module_loaded(inserted);
                if (!report.inserted.empty())
                    object_->device_autoloaded(request.syspath, request.modalias, report.inserted);
                log(report.severity, report.message);
            });
        });
    }
}

std::vector<WaitingDevice> Daemon::waiting_devices() const
{
    std::vector<WaitingDevice> devices;
    if (!autoloader_)
        return devices;
    for (const auto& device : autoloader_->waiting())
        devices.push_back({device.syspath, device.modalias});
    return devices;
}

} // namespace kmodd::daemon
