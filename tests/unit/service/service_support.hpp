// SPDX-License-Identifier: LGPL-2.1-or-later
// Helpers for the service tests: draining a watcher, running kmod's depmod on a copy of a
// tree, and the watcher + debounce + rebuild pipeline the daemon will run.
#pragma once

#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>

#include "kmod_oracle.hpp"
#include "service/index_service.hpp"
#include "service/tree_watcher.hpp"
#include "service/watch_loop.hpp"
#include "temp_tree.hpp"

namespace kmodd::service::test_support {

using namespace std::chrono_literals;
using kmodd::test::fs::path;

inline const path kFixtures = KMODD_FIXTURE_MODULES;
inline path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

/// Everything the watcher reports until it stays silent for `quiet`.
inline ChangeSet collect(TreeWatcher& watcher, std::chrono::milliseconds quiet = 150ms)
{
    ChangeSet all;
    for (int rounds = 0; rounds < 1000; ++rounds) {
        pollfd p{watcher.fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0)
            break;
        auto changes = watcher.read_changes();
        EXPECT_TRUE(changes.has_value());
        if (changes)
            all.merge(*changes);
    }
    return all;
}

using kmodd::test::expect_same_as_kmod;
using kmodd::test::read_outputs;
using kmodd::test::run_kmod;

inline ServiceOptions options_for(const path& root)
{
    ServiceOptions options;
    options.base_dir = root.string();
    options.config_paths = {"/dev/null"};
    options.format = depmod::KmodFormat{kmodd::test::oracle_kmod_version()};
    options.durable = false;
    return options;
}

/// What the daemon will run, on one thread: watcher -> debounce -> rebuild -> new hints.
class Pipeline {
public:
    explicit Pipeline(const path& root, Debouncer::Settings debounce = {50ms, 1000ms},
                      ServiceOptions options = {})
        : service_(options.base_dir.empty() ? options_for(root) : std::move(options))
    {
        // Watch first: nothing that happens during the start's walk is lost.
        auto watcher = TreeWatcher::create({service_.modules_dir()});
        if (!watcher) {
            ADD_FAILURE() << watcher.error().message;
            return;
        }
        watcher_ = std::move(*watcher);
        start_reports_ = service_.start();
        watcher_->set_hints(service_.watch_hints());
        auto loop = WatchLoop::create(*watcher_, debounce);
        if (!loop) {
            ADD_FAILURE() << loop.error().message;
            return;
        }
        loop_ = std::move(*loop);
    }

    /// Whether the watcher and the loop could be made (a failure was reported if not).
    [[nodiscard]] bool is_ready() const { return loop_ != nullptr; }

    /// One turn of the loop: waits up to `timeout`, rebuilds when the debounce fired.
    /// Returns whether a rebuild ran.
    bool step(std::chrono::milliseconds timeout = 20ms)
    {
        auto changes = loop_->wait(timeout);
        EXPECT_TRUE(changes.has_value());
        if (!changes || changes->empty())
            return false;
        auto reports = service_.apply(*changes);
        watcher_->set_hints(service_.watch_hints());
        ++rebuilds_;
        for (auto& report : reports)
            reports_.push_back(std::move(report));
        return true;
    }

    /// Runs the loop until `done()` holds (checked after every turn) or `timeout` passed.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s)
    {
        auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            step();
            if (done())
                return true;
        }
        return false;
    }

    /// Runs the loop for `duration`; returns the number of rebuilds in that time.
    size_t run_for(std::chrono::milliseconds duration)
    {
        size_t before = rebuilds_;
        auto end = std::chrono::steady_clock::now() + duration;
        while (std::chrono::steady_clock::now() < end)
            step();
        return rebuilds_ - before;
    }

    IndexService& service() { return service_; }
    TreeWatcher& watcher() { return *watcher_; }
    WatchLoop& loop() { return *loop_; }
    [[nodiscard]] size_t rebuilds() const { return rebuilds_; }
    [[nodiscard]] const std::vector<VersionReport>& reports() const { return reports_; }
    [[nodiscard]] const std::vector<VersionReport>& start_reports() const { return start_reports_; }

private:
    IndexService service_;
    std::unique_ptr<TreeWatcher> watcher_;
    std::unique_ptr<WatchLoop> loop_;
    std::vector<VersionReport> start_reports_;
    std::vector<VersionReport> reports_;
    size_t rebuilds_ = 0;
};

inline std::string describe(const index::Diagnostics& diagnostics)
{
    std::string out;
    for (const auto& d : diagnostics)
        out += d.message + "\n";
    return out;
}

} // namespace kmodd::service::test_support
