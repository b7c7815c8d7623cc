// SPDX-License-Identifier: LGPL-2.1-or-later
// Batches applied to the index and the served release's snapshot opened after each.
#include "service/index_publisher.hpp"

#include <cerrno>

#include "depmod/output_state.hpp"

namespace kmodd::service {

IndexPublisher::IndexPublisher(Settings settings)
    : settings_(std::move(settings)), index_(settings_.index)
{
}

Publication IndexPublisher::start()
{
    Publication publication;
    publication.reports = index_.start();
    publication.hints = index_.watch_hints();
    take_snapshot(publication, 1);
    return publication;
}

std::optional<IndexPublisher::Published> IndexPublisher::open_published() const
{
    const std::string state_path = index_.output_state_path(settings_.release);
    if (state_path.empty())
        return std::nullopt;
    auto state = depmod::OutputState::load(state_path);
    if (!state || !state->describes_files_in(index_.modules_dir() + "/" + settings_.release))
        return std::nullopt;
    auto snapshot = open_snapshot(1);
    if (!snapshot || !*snapshot)
        return std::nullopt;
    return Published{std::move(*snapshot), static_cast<uint32_t>(state->module_count)};
}

Publication IndexPublisher::apply(const ChangeSet& changes, const std::vector<std::string>& forced)
{
    Publication publication;
    if (!changes.empty())
        publication.reports = index_.apply(changes);
    for (const std::string& version : forced) {
        if (auto report = index_.rebuild(version))
            publication.reports.push_back(std::move(*report));
    }
    publication.hints = index_.watch_hints();
    for (const auto& report : publication.reports) {
        if (report.version != settings_.release)
            continue;
        if (report.action == VersionReport::Action::Written)
            take_snapshot(publication, report.generation);
        else if (report.action == VersionReport::Action::Removed)
            publication.is_release_gone = true;
    }
    return publication;
}

void IndexPublisher::take_snapshot(Publication& publication, uint64_t generation) const
{
    auto snapshot = open_snapshot(generation);
    if (snapshot)
        publication.snapshot = std::move(*snapshot);
    else
        publication.snapshot_error = snapshot.error();
}

base::Result<std::shared_ptr<const IndexSnapshot>> IndexPublisher::reread_config() const
{
    auto now = current();
    return open_snapshot(now ? now->generation() : 0);
}

base::Result<std::shared_ptr<const IndexSnapshot>>
IndexPublisher::open_snapshot(uint64_t generation) const
{
    IndexSnapshot::Options options;
    options.unusable = index_.unusable_modules(settings_.release);
    options.module_dir = index_.modules_dir() + "/" + settings_.release;
    options.release = settings_.release;
    options.config_paths = settings_.modprobe_config;
    options.cmdline_path = settings_.cmdline_path;
    options.generation = generation;
    auto snapshot = IndexSnapshot::open(options);
    if (!snapshot && snapshot.error().code == ENOENT)
        return std::shared_ptr<const IndexSnapshot>();
    if (!snapshot)
        return base::Unexpected(
            snapshot.error().with_context("cannot read the index of '" + settings_.release + "'"));
    return *snapshot;
}

std::shared_ptr<const IndexSnapshot> IndexPublisher::current() const
{
    std::lock_guard lock(mutex_);
    return current_;
}

void IndexPublisher::publish(std::shared_ptr<const IndexSnapshot> snapshot)
{
    std::lock_guard lock(mutex_);
    current_ = std::move(snapshot);
}

uint32_t IndexPublisher::usable_count(const VersionReport& report,
                                      const std::shared_ptr<const IndexSnapshot>& snapshot)
{
    size_t unusable = snapshot ? snapshot->unusable().size() : 0;
    return static_cast<uint32_t>(report.modules > unusable ? report.modules - unusable : 0);
}

} // namespace kmodd::service
