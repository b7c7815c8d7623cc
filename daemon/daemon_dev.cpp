// SPDX-License-Identifier: LGPL-2.1-or-later
// LinkModule and UnlinkModule: a developer's module file linked into the served release's tree
// (service/dev_links.hpp), answered once the index says so, so the Load that follows finds it.
#include <functional>
#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

#include "daemon.hpp"
#include "index/names.hpp"

namespace kmodd::daemon {

namespace {

/// Whether the served index has module `module` at `link` (relative to the release's
/// directory).
bool is_indexed_at(const std::shared_ptr<const service::IndexSnapshot>& snapshot,
                   const std::string& module, const std::string& link)
{
    if (!snapshot)
        return false;
    auto line = snapshot->database().dependency_line(module);
    return line && line->starts_with(link + ":");
}

/// What `done` of after_dev_link() does: answers `reply` with `value`, or with the failure.
template <class T>
std::function<void(service::RequestResult<std::string>)> answer_with(ManagerBackend::Reply<T> reply,
                                                                     T value)
{
    return [reply = std::move(reply),
            value = std::move(value)](service::RequestResult<std::string> done) {
        if (done)
            reply(value);
        else
            reply(tl::unexpected(std::move(done.error())));
    };
}

} // namespace

void Daemon::after_dev_link(std::string module, std::string relative, bool is_linked,
                            std::function<void(service::RequestResult<std::string>)> done)
{
    // The watcher has seen the link (inotify queues the event before symlink() returns): the
    // batch that indexes it is incremental, one file parsed. Should the index not show it
    // then (a watch lost to the inotify limit), a full rebuild of the release does.
    auto refuse = [done, is_linked] {
        done(tl::unexpected(stopping(is_linked ? "the link is made but not indexed yet"
                                               : "the link is removed but the index still has it",
                                     "its next start indexes the change")));
    };
    when_index_current(
        [this, module = std::move(module), relative = std::move(relative), is_linked,
         done = std::move(done)] {
            auto snapshot = snapshot_for({});
            if (snapshot && is_indexed_at(*snapshot, module, relative) == is_linked) {
                done(release_);
                return;
            }
            spdlog::debug("the index does not show '{}' yet: rebuilding '{}'", relative, release_);
            rebuild(release_, done);
        },
        std::move(refuse));
}

void Daemon::link_module(std::string file, Reply<service::DevLink> reply)
{
    const std::string release_dir = options_.modules_dir + "/" + release_;
    auto linked = service::link_dev_module(release_dir, file);
    if (!linked) {
        reply(tl::unexpected(std::move(linked.error())));
        return;
    }
    spdlog::info("module '{}' linked to '{}' for development", linked->module, file);
    std::string relative = linked->link.substr(release_dir.size() + 1);
    std::string module = linked->module;
    after_dev_link(std::move(module), std::move(relative), true,
                   answer_with(std::move(reply), std::move(*linked)));
}

void Daemon::unlink_module(std::string module, Reply<std::string> reply)
{
    const std::string release_dir = options_.modules_dir + "/" + release_;
    auto unlinked = service::unlink_dev_module(release_dir, module);
    if (!unlinked) {
        reply(tl::unexpected(std::move(unlinked.error())));
        return;
    }
    spdlog::info("module '{}' unlinked ('{}' removed)", module, *unlinked);
    std::string relative = unlinked->substr(release_dir.size() + 1);
    std::string name = index::modname_from_path(*unlinked);
    after_dev_link(std::move(name), std::move(relative), false,
                   answer_with(std::move(reply), std::move(*unlinked)));
}

} // namespace kmodd::daemon
