// SPDX-License-Identifier: LGPL-2.1-or-later
// LinkModule and UnlinkModule: a developer's module file linked into the served release's tree
// (service/dev_links.hpp) and the index rebuilt before the reply, so the Load that follows
// finds it.
#include <utility>

#include <spdlog/spdlog.h>

#include "daemon.hpp"

namespace kmodd::daemon {

void Daemon::link_module(std::string file, Reply<service::DevLink> reply)
{
    auto linked = service::link_dev_module(options_.modules_dir + "/" + release_, file);
    if (!linked) {
        reply(tl::unexpected(std::move(linked.error())));
        return;
    }
    spdlog::info("module '{}' linked to '{}' for development", linked->module, file);
    rebuild(release_, [reply = std::move(reply),
                       link = std::move(*linked)](service::RequestResult<std::string> done) {
        if (done)
            reply(link);
        else
            reply(tl::unexpected(std::move(done.error())));
    });
}

void Daemon::unlink_module(std::string module, Reply<std::string> reply)
{
    auto unlinked = service::unlink_dev_module(options_.modules_dir + "/" + release_, module);
    if (!unlinked) {
        reply(tl::unexpected(std::move(unlinked.error())));
        return;
    }
    spdlog::info("module '{}' unlinked ('{}' removed)", module, *unlinked);
    rebuild(release_, [reply = std::move(reply),
                       link = std::move(*unlinked)](service::RequestResult<std::string> done) {
        if (done)
            reply(link);
        else
            reply(tl::unexpected(std::move(done.error())));
    });
}

} // namespace kmodd::daemon
