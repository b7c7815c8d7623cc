// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's index: the first build, batches of changes and Rebuild calls on the index worker,
// their publication on the loop, and modprobe.d read again when it changes.
#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "loader/modprobe_config.hpp"

namespace kmodd::daemon {

namespace {

using Clock = std::chrono::steady_clock;
using Action = service::VersionReport::Action;
using loader::realtime_usec;
using service::Failure;
using service::IndexPublisher;
using service::RequestError;

} // namespace

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
    note_kernels(publication.reports, current, true);
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

bool Daemon::index_start_published()
{
    auto started = Clock::now();
    auto published = publisher_->open_published();
    if (!published)
        return false;
    publish(published->snapshot);
    properties_.index_generation = 1;
    properties_.module_count = published->modules;
    properties_.index_verified = false;
    properties_.kernels = {{release_, published->modules, "checking", ""}};
    spdlog::info(
        "answering from the index files of '{}' published before ({} modules, opened in "
        "{} ms); checking the module trees in the background",
        release_, published->modules,
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count()) /
            1000.0);
    return true;
}

void Daemon::verify_start()
{
    index_worker_->post([this] {
        auto started = Clock::now();
        service::Publication publication = publisher_->start();
        auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
        loop_->post([this, publication = std::move(publication), took]() mutable {
            finish_verification(std::move(publication), took);
        });
    });
}

void Daemon::finish_verification(service::Publication publication, std::chrono::microseconds took)
{
    watcher_->set_hints(publication.hints);
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    reports_.note(publication.reports);
    if (publication.snapshot_error)
        spdlog::warn("{}", publication.snapshot_error->message);

    note_kernels(publication.reports, publication.snapshot, true);
    std::vector<std::string> changed = {"IndexVerified", "ModuleCount", "LastRebuildUSec",
                                        "LastRebuildDurationUSec"};
    bool is_rewritten = false;
    for (const auto& report : publication.reports) {
        if (report.action == Action::Written)
            object_->index_rebuilt(report.version,
                                   report.version == release_
                                       ? IndexPublisher::usable_count(report, publication.snapshot)
                                       : static_cast<uint32_t>(report.modules),
                                   static_cast<uint64_t>(report.stats.duration.count()));
        if (report.version != release_)
            continue;
        is_rewritten = report.action == Action::Written;
        properties_.module_count = IndexPublisher::usable_count(report, publication.snapshot);
    }
    publish(publication.snapshot);
    if (!publication.snapshot)
        properties_.module_count = 0;
    if (is_rewritten) {
        properties_.index_generation += 1;
        changed.emplace_back("IndexGeneration");
    }
    properties_.last_rebuild_usec = realtime_usec();
    properties_.last_rebuild_duration_usec = static_cast<uint64_t>(took.count());
    properties_.index_verified = true;
    object_->properties_changed(changed);
    notify_status();
    spdlog::info("checked the module trees in {} ms: the published index of '{}' {}",
                 static_cast<double>(took.count()) / 1000.0, release_,
                 is_rewritten ? "was out of date and is written again" : "is current");
    run_requests_waiting_for_index();
}

void Daemon::on_watch_ready()
{
    auto changes = watch_loop_->dispatch();
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    if (!changes) {
        spdlog::error("watching '{}': {}", options_.modules_dir, changes.error().message);
    } else if (!changes->empty()) {
        if (changes->rescan_all)
            spdlog::warn("change events were lost (inotify queue overflow): rescanning every tree");
        held_changes_.merge(*changes);
        if (!is_batch_running_)
            start_batch();
    }
    // Changes the debouncer dropped as irrelevant release what waited for them.
    run_requests_waiting_for_index();
}

void Daemon::when_index_current(std::function<void()> request, std::function<void()> refuse)
{
    // The events of a copy that ended before the call was sent are queued already.
    on_watch_ready();
    uint64_t batch = 0;
    if (watch_loop_->has_pending() || !held_changes_.empty())
        batch = batches_started_ + 1; // the batch that starts next
    else if (is_batch_running_)
        batch = batches_started_;
    if (batch <= batches_finished_) {
        request();
        return;
    }
    waiting_for_index_.push_back({batch, std::move(request), std::move(refuse)});
}

void Daemon::refuse_waiting_requests()
{
    std::vector<WaitingRequest> waiting = std::move(waiting_for_index_);
    waiting_for_index_.clear();
    for (auto& request : waiting)
        request.refuse();
    std::vector<ForcedRebuild> rebuilds = std::move(held_rebuilds_);
    held_rebuilds_.clear();
    for (auto& rebuild : rebuilds)
        rebuild.reply(tl::unexpected(stopping("'" + rebuild.version + "' was not rebuilt")));
}

void Daemon::run_requests_waiting_for_index()
{
    if (waiting_for_index_.empty())
        return;
    const bool is_settled =
        !watch_loop_->has_pending() && held_changes_.empty() && !is_batch_running_;
    std::vector<WaitingRequest> waiting = std::move(waiting_for_index_);
    waiting_for_index_.clear();
    for (auto& request : waiting) {
        if (is_settled || request.batch <= batches_finished_)
            request.run();
        else
            waiting_for_index_.push_back(std::move(request));
    }
}

void Daemon::start_batch()
{
    service::ChangeSet changes = std::move(held_changes_);
    held_changes_ = {};
    std::vector<ForcedRebuild> forced = std::move(held_rebuilds_);
    held_rebuilds_.clear();
    std::vector<std::string> forced_versions;
    forced_versions.reserve(forced.size());
    for (const auto& rebuild : forced)
        forced_versions.push_back(rebuild.version);
    is_batch_running_ = true;
    ++batches_started_;
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
    ++batches_finished_;
    watcher_->set_hints(publication.hints);
    for (const auto& problem : watcher_->take_problems())
        spdlog::warn("{}", problem);
    reports_.note(publication.reports);
    if (publication.snapshot_error)
        spdlog::error("{}", publication.snapshot_error->message);

    note_kernels(publication.reports, publication.snapshot, false);
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
        // A batch may report a release twice (its changes, then the forced rebuild): the
        // last report is how it ended, and the call is answered once.
        auto report = std::find_if(
            publication.reports.rbegin(), publication.reports.rend(),
            [&](const service::VersionReport& each) { return each.version == rebuild.version; });
        if (report == publication.reports.rend())
            rebuild.reply(tl::unexpected(
                RequestError{Failure::NotFound, "No kernel release '" + rebuild.version +
                                                    "' under '" + options_.modules_dir + "'."}));
        else if (report->action == Action::Failed)
            rebuild.reply(tl::unexpected(
                RequestError{Failure::Failed, "Rebuilding the index of '" + rebuild.version +
                                                  "' failed: " + report->error.message}));
        else
            rebuild.reply(rebuild.version);
    }

    // Once stopping, the changes held wait for the next start (which indexes them).
    if (!is_stopping_ && (!held_changes_.empty() || !held_rebuilds_.empty()))
        start_batch();
    run_requests_waiting_for_index();
}

void Daemon::note_kernels(const std::vector<service::VersionReport>& reports,
                          const std::shared_ptr<const service::IndexSnapshot>& snapshot,
                          bool is_complete)
{
    using Kernel = ManagerProperties::Kernel;
    std::map<std::string, Kernel> kernels;
    if (!is_complete) {
        for (auto& kernel : properties_.kernels)
            kernels.emplace(kernel.release, std::move(kernel));
    }
    for (const auto& report : reports) {
        // Another release's index changed: its snapshot is opened again when asked for.
        if (report.action != Action::Current && report.action != Action::Unchanged)
            other_snapshots_.erase(report.version);
        if (report.action == Action::Removed) {
            kernels.erase(report.version);
            descriptions_.erase(report.version);
            continue;
        }
        Kernel& kernel = kernels[report.version];
        kernel.release = report.version;
        kernel.modules = report.version == release_ ? IndexPublisher::usable_count(report, snapshot)
                                                    : static_cast<uint32_t>(report.modules);
        kernel.state = report.action == Action::Failed ? "failed" : "indexed";
        kernel.problem = report.action == Action::Failed ? report.error.message : std::string();
    }
    std::vector<Kernel> sorted;
    sorted.reserve(kernels.size());
    for (auto& [release, kernel] : kernels)
        sorted.push_back(std::move(kernel));
    const bool is_same =
        std::equal(sorted.begin(), sorted.end(), properties_.kernels.begin(),
                   properties_.kernels.end(), [](const Kernel& a, const Kernel& b) {
                       return a.release == b.release && a.modules == b.modules &&
                              a.state == b.state && a.problem == b.problem;
                   });
    properties_.kernels = std::move(sorted);
    if (!is_same && object_)
        object_->properties_changed({"Kernels"});
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
        reply(tl::unexpected(
            RequestError{Failure::InvalidName, "'" + version + "' is not a kernel release."}));
        return;
    }
    held_rebuilds_.push_back({std::move(version), std::move(reply)});
    if (!is_batch_running_)
        start_batch();
}

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
            other_snapshots_.clear();
            publish(*fresh);
        });
    });
}

} // namespace kmodd::daemon
