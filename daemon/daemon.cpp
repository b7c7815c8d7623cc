// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's wiring: set-up, the loop, signals, and the module requests handed to the workers.
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

#include "depmod/depmod.hpp"
#include "kmodd_dbus_names.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/resolver.hpp"
#include "loader/sandbox_support.hpp"
#include "sys/kmod_tool.hpp"

namespace kmodd::daemon {

namespace {

using service::Failure;
using service::IndexPublisher;
using service::RequestError;

std::string running_release()
{
    utsname names{};
    if (::uname(&names) != 0)
        return {};
    return names.release;
}

RequestError no_index(const std::string& release)
{
    return RequestError{Failure::NotFound,
                        "No module index for kernel release '" + release + "' (is it installed?)."};
}

} // namespace

RequestError Daemon::stopping(std::string_view what, std::string_view advice)
{
    return RequestError{Failure::Failed,
                        "kmodd is stopping: " + std::string(what) + "; " + std::string(advice)};
}

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
    // Only a forced format spares asking the kmod tool.
    const depmod::ChosenFormat format = depmod::choose_kmod_format(
        options_.kmod_format,
        options_.kmod_format         ? std::nullopt
        : options_.cache_dir.empty() ? sys::installed_kmod_version()
                                     : sys::installed_kmod_version(options_.cache_dir),
        options_.modules_dir + "/" + release_);
    settings.index.format = format.format;
    spdlog::info("writing the index files of kmod {}, {}", format.format.version, format.reason);
    settings.index.durable = options_.durable;
    settings.index.cache_dir = options_.cache_dir;
    settings.release = release_;
    settings.modprobe_config = options_.modprobe_config;
    settings.cmdline_path = options_.cmdline_path;
    publisher_ = std::make_unique<IndexPublisher>(std::move(settings));

    // Watching starts before the first index, so that nothing changed meanwhile is missed.
    service::TreeWatcher::Settings watch_settings;
    watch_settings.modules_dir = options_.modules_dir;
    auto watcher = service::TreeWatcher::create(watch_settings);
    if (!watcher)
        return base::Unexpected(
            watcher.error().with_context("cannot watch '" + options_.modules_dir + "'"));
    watcher_ = std::move(*watcher);
    service::Debouncer::Settings debounce{options_.debounce, options_.max_delay};
    auto watch_loop = service::WatchLoop::create(*watcher_, debounce);
    if (!watch_loop)
        return base::Unexpected(watch_loop.error());
    watch_loop_ = std::move(*watch_loop);

    // On the index worker, which does every later rebuild too: glibc keeps one arena per
    // thread, and each would keep a rebuild's freed temporaries for reuse.
    index_worker_ = std::make_unique<Worker>("kmodd-index");
    // Started from the cache: the index files published last answer at once, and the tree
    // is checked against them in the background (verify_start()). Otherwise the first index
    // is built before the bus name is taken.
    const bool is_early = index_start_published();
    if (!is_early) {
        std::promise<void> started;
        index_worker_->post([this, &started] {
            index_start();
            started.set_value();
        });
        started.get_future().wait();
    }

    if (auto done = set_up_bus(); !done)
        return done;
    if (is_early)
        verify_start();

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
        auto kernel = sys::make_sandbox_kernel(options_.sandbox_dir,
                                               loader::make_module_inspector(), is_module_symbol);
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
    modules_->note_start();
    return {};
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
        dbus::request_name(*bus_, dbus::kBusName);
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
    if (auto added = loop_->add(signal_fd_.get(), EPOLLIN, [this](uint32_t) { on_signal(); });
        !added)
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
    // No caller waits in vain: a request waiting for changes to be indexed, or a Rebuild for
    // the next batch, is answered that kmodd is stopping; the batch, reads and the load or
    // unload under way complete and are answered; the loads and unloads queued behind it are
    // answered that kmodd is stopping (change_kernel).
    refuse_waiting_requests();
    if (ran) {
        index_worker_->wait_idle();
        reader_worker_->wait_idle();
        kernel_worker_->wait_idle();
        loop_->finish_posted();
    }
    return ran;
}

void Daemon::notify_status()
{
    std::string status = "Serving " + release_ + ": " + std::to_string(properties_.module_count) +
                         " modules, index generation " +
                         std::to_string(properties_.index_generation);
    if (!properties_.index_verified)
        status += " (checking the module tree)";
    ::sd_notify(0, ("STATUS=" + status).c_str());
}

void Daemon::on_signal()
{
    signalfd_siginfo info{};
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
        spdlog::info("stopping on signal {}", info.ssi_signo);
        is_stopping_ = true;
        loop_->stop();
    }
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
    kernel_worker_->post(
        [this, is_load, current, work = std::move(work), reply = std::move(reply)] {
            service::RequestResult<std::vector<std::string>> result =
                is_stopping_ ? tl::unexpected(stopping("nothing was changed")) : work(*current);
            loop_->post([this, is_load, result = std::move(result), reply] {
                if (result) {
                    for (const auto& module : *result) {
                        if (is_load)
                            object_->module_loaded(module);
                        else
                            object_->module_unloaded(module);
                    }
                    if (!result->empty())
                        spdlog::info("{} {}", is_load ? "loaded" : "unloaded",
                                     fmt::join(*result, ", "));
                }
                note_records();
                reply(result);
            });
        });
}

void Daemon::note_records()
{
    std::string problem = modules_->records_problem();
    if (problem == properties_.records_problem)
        return;
    if (!problem.empty())
        spdlog::error("the records of who loaded what are not written ({}): kept in memory, "
                      "each later load or unload tries again",
                      problem);
    else
        spdlog::info("the records of who loaded what are written again after the failure");
    properties_.records_problem = std::move(problem);
    object_->properties_changed({"RecordsProblem"});
}

void Daemon::load(std::string module, std::string params, loader::Requester requester,
                  Reply<std::vector<std::string>> reply)
{
    // A module file just dropped into the tree (DKMS, a developer's build) is found: no depmod.
    auto refuse = [reply] { reply(tl::unexpected(stopping("nothing was changed"))); };
    when_index_current(
        [this, module = std::move(module), params = std::move(params),
         requester = std::move(requester), reply = std::move(reply)] {
            change_kernel(
                true,
                [this, module, params, requester](const service::IndexSnapshot& current) {
                    loader::Provenance provenance;
                    provenance.requester = requester;
                    return modules_->load(current, module, params, loader::Origin::Explicit,
                                          provenance);
                },
                reply);
        },
        std::move(refuse));
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

template <class T>
void Daemon::read_on(Worker& worker, std::string release, Reply<T> reply,
                     std::function<service::RequestResult<T>(const service::IndexSnapshot&)> work)
{
    auto refuse = [reply] { reply(tl::unexpected(stopping("nothing was read"))); };
    when_index_current(
        [this, &worker, release = std::move(release), reply = std::move(reply),
         work = std::move(work)] {
            auto snapshot = snapshot_for(release);
            if (!snapshot) {
                reply(tl::unexpected(std::move(snapshot.error())));
                return;
            }
            worker.post([this, snapshot = std::move(*snapshot), reply, work] {
                auto result = work(*snapshot);
                loop_->post([result = std::move(result), reply] { reply(result); });
            });
        },
        std::move(refuse));
}

service::RequestResult<std::shared_ptr<const service::IndexSnapshot>>
Daemon::snapshot_for(const std::string& release)
{
    if (release.empty() || release == release_) {
        auto current = publisher_->current();
        if (!current)
            return tl::unexpected(no_index(release_));
        return current;
    }
    if (!service::is_kernel_release_name(release))
        return tl::unexpected(
            RequestError{Failure::InvalidName, "'" + release + "' is not a kernel release."});
    const auto& kernels = properties_.kernels;
    if (std::none_of(kernels.begin(), kernels.end(),
                     [&](const auto& kernel) { return kernel.release == release; }))
        return tl::unexpected(no_index(release));
    if (auto it = other_snapshots_.find(release); it != other_snapshots_.end())
        return it->second;
    service::IndexSnapshot::Options snapshot_options;
    snapshot_options.module_dir = options_.modules_dir + "/" + release;
    snapshot_options.release = release;
    snapshot_options.config_paths = options_.modprobe_config;
    snapshot_options.cmdline_path = options_.cmdline_path;
    auto opened = service::IndexSnapshot::open(snapshot_options);
    if (!opened)
        return tl::unexpected(RequestError{Failure::Failed, "Cannot read the module index of '" +
                                                                release +
                                                                "': " + opened.error().message});
    other_snapshots_[release] = *opened;
    return std::move(*opened);
}

void Daemon::list_deps(std::string release, std::string module,
                       Reply<std::vector<std::string>> reply)
{
    // On the reader worker, though a lookup in the mapped index takes microseconds: the
    // answer then keeps its place behind other reads.
    read_on<std::vector<std::string>>(
        *reader_worker_, std::move(release), std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            auto plan = modules_->list_deps(snapshot, module);
            if (plan) {
                // modprobe -D names a module again where a softdep leads back to it; a client
                // wants each module once, at its first place (still a valid load order).
                std::set<std::string> seen;
                std::erase_if(*plan,
                              [&](const std::string& name) { return !seen.insert(name).second; });
            }
            return plan;
        });
}

void Daemon::list_loaded(Reply<std::vector<service::LoadedEntry>> reply)
{
    reply(modules_->list_loaded());
}

void Daemon::module_info(std::string release, std::string module,
                         Reply<service::ModuleDetails> reply)
{
    // Off the loop: a compressed module file takes a while to expand.
    read_on<service::ModuleDetails>(
        *reader_worker_, std::move(release), std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            return modules_->module_info(snapshot, module);
        });
}

void Daemon::explain(std::string module, Reply<service::Explanation> reply)
{
    read_on<service::Explanation>(
        *reader_worker_, {}, std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            return modules_->explain(snapshot, module);
        });
}

void Daemon::diagnose(std::string module, Reply<service::LoadOutcome> reply)
{
    // Needs no index: answered at once on the loop thread.
    reply(modules_->diagnose(module));
}

void Daemon::holders(std::string module, Reply<service::HolderReport> reply)
{
    // On the kernel worker: the unload plan waits for a load in progress, in order.
    read_on<service::HolderReport>(
        *kernel_worker_, {}, std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            return modules_->holders(snapshot, module);
        });
}

void Daemon::plan_unload(std::string module, Reply<std::vector<std::string>> reply)
{
    read_on<std::vector<std::string>>(
        *kernel_worker_, {}, std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            return modules_->plan_unload(snapshot, module);
        });
}

void Daemon::list_users(std::string release, std::string module,
                        Reply<std::vector<std::string>> reply)
{
    read_on<std::vector<std::string>>(
        *reader_worker_, std::move(release), std::move(reply),
        [this, module = std::move(module)](const service::IndexSnapshot& snapshot) {
            return modules_->users(snapshot, module);
        });
}

void Daemon::find_modules(std::string release, std::string pattern,
                          Reply<std::vector<service::FoundModule>> reply)
{
    if (auto invalid = service::check_pattern(pattern)) {
        reply(tl::unexpected(std::move(*invalid)));
        return;
    }
    auto refuse = [reply] { reply(tl::unexpected(stopping("nothing was read"))); };
    when_index_current(
        [this, release = std::move(release), pattern = std::move(pattern),
         reply = std::move(reply)] {
            auto snapshot = snapshot_for(release);
            if (!snapshot) {
                reply(tl::unexpected(std::move(snapshot.error())));
                return;
            }
            auto& cache = descriptions_[(*snapshot)->release()];
            if (!cache) {
                depmod::DepmodOptions tree;
                tree.base_dir = options_.base_dir();
                tree.kernel_version = (*snapshot)->release();
                cache = std::make_shared<service::DescriptionCache>(
                    options_.cache_dir.empty()
                        ? std::string()
                        : depmod::parse_cache_path(options_.cache_dir, tree));
            }
            // On the reader worker: the first search reads the description of every module file
            // the parse cache does not hold as it is now.
            reader_worker_->post([this, cache, snapshot = std::move(*snapshot), pattern, reply] {
                auto result =
                    service::ModuleService::find(*snapshot, pattern, cache->descriptions(snapshot));
                loop_->post([result = std::move(result), reply] { reply(result); });
            });
        },
        std::move(refuse));
}

} // namespace kmodd::daemon
