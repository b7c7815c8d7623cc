// SPDX-License-Identifier: LGPL-2.1-or-later
// Many clients at once: each on its own bus connection calls ListDeps, ListLoaded and
// GetModuleInfo in a loop while a module is linked into the tree and unlinked again; every
// call must succeed. Prints the calls per second and the p50/p99 latency. Set by the
// environment (see tests/soak/CMakeLists.txt):
//   KMODD_SOAK_TREE      a root holding lib/modules/VERSION (one release)
//   KMODD_CLIENTS        clients (default 200)
//   KMODD_CLIENTS_SECONDS  how long they call (default 10)
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "stress_tree.hpp"

namespace kmodd::daemon::test {
namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double>& values, double p)
{
    if (values.empty())
        return 0;
    std::sort(values.begin(), values.end());
    return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

/// What one client did.
struct ClientRun {
    std::vector<double> latency_ms;
    size_t failures = 0;
    std::string first_failure;
};

TEST(ConcurrentClients, EveryCallSucceedsWhileTheTreeChanges)
{
    const fs::path source = environment("KMODD_SOAK_TREE");
    const std::string version = release_of(source);
    if (version.empty())
        GTEST_SKIP() << "no tree: set KMODD_SOAK_TREE";
    const int clients = std::atoi(environment("KMODD_CLIENTS", "200").c_str());
    const int seconds = std::atoi(environment("KMODD_CLIENTS_SECONDS", "10").c_str());
    ASSERT_GT(clients, 0);
    ASSERT_GT(seconds, 0);

    DaemonSetup setup(version);
    const fs::path module_dir = setup.tree().module_dir();
    std::string sample;
    ASSERT_NO_FATAL_FAILURE(copy_tree(setup, source, sample));
    const std::string suffix = sample.substr(sample.find(".ko"));
    ASSERT_TRUE(setup.start({"--log-level", "info"})) << setup.log();
    const pid_t pid = setup.process().pid();

    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::vector<ClientRun> runs(static_cast<size_t>(clients));
    std::vector<std::thread> threads;
    // Eight modules of the tree, spread over its modules.dep.
    std::vector<std::string> names;
    {
        std::istringstream dep(kmodd::test::slurp(module_dir / "modules.dep"));
        for (std::string line; std::getline(dep, line);) {
            std::string file = line.substr(0, line.find(':'));
            file = file.substr(file.rfind('/') + 1);
            file = file.substr(0, file.find(".ko"));
            std::replace(file.begin(), file.end(), '-', '_');
            names.push_back(file);
        }
    }
    ASSERT_GE(names.size(), 8U);
    std::vector<std::string> modules;
    for (size_t i = 0; i < 8; ++i)
        modules.push_back(names[i * (names.size() / 8)]);
    for (int i = 0; i < clients; ++i) {
        threads.emplace_back([&, i] {
            ClientRun& run = runs[static_cast<size_t>(i)];
            Client client(setup.address());
            ++ready;
            while (ready.load() < clients && !stop)
                std::this_thread::sleep_for(1ms);
            for (size_t call = static_cast<size_t>(i); !stop; ++call) {
                const std::string& module = modules[call % modules.size()];
                const auto t0 = Clock::now();
                std::string error;
                switch (call % 3) {
                case 0:
                    if (auto r = client.list_deps(module); !r)
                        error = "ListDeps " + module + ": " + r.error_message;
                    break;
                case 1:
                    if (auto r = client.list_loaded(); !r)
                        error = "ListLoaded: " + r.error_message;
                    break;
                default:
                    if (auto r = client.module_info(module); !r)
                        error = "GetModuleInfo " + module + ": " + r.error_message;
                    break;
                }
                run.latency_ms.push_back(
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                if (!error.empty() && run.failures++ == 0)
                    run.first_failure = error;
            }
        });
    }
    ASSERT_TRUE(wait_until([&] { return ready.load() == clients; }, 60s));

    // The tree changes all along: a module linked in and out every 100 ms.
    const auto start = Clock::now();
    size_t changes = 0;
    const fs::path link = module_dir / "extra" / ("kmodd_clients" + suffix);
    while (Clock::now() - start < std::chrono::seconds(seconds)) {
        if (fs::is_symlink(link))
            fs::remove(link);
        else
            fs::create_symlink(sample, link);
        ++changes;
        std::this_thread::sleep_for(100ms);
    }
    stop = true;
    for (auto& thread : threads)
        thread.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

    std::vector<double> all;
    size_t failures = 0;
    std::string first_failure;
    for (auto& run : runs) {
        all.insert(all.end(), run.latency_ms.begin(), run.latency_ms.end());
        failures += run.failures;
        if (first_failure.empty())
            first_failure = run.first_failure;
    }
    const size_t calls = all.size();
    const double p50 = percentile(all, 0.50);
    const double p99 = percentile(all, 0.99);
    const long rss_kib = status_kib(pid, "VmRSS:");
    std::printf("%d clients, %.1f s, %zu tree changes: %zu calls, %.0f calls/s, p50 %.2f ms, "
                "p99 %.2f ms, max %.2f ms, %zu failed; kmodd VmRSS %ld KiB\n",
                clients, elapsed, changes, calls, static_cast<double>(calls) / elapsed, p50, p99,
                all.empty() ? 0.0 : all.back(), failures, rss_kib);
    EXPECT_EQ(failures, 0U) << "first: " << first_failure;
    EXPECT_GT(calls, static_cast<size_t>(clients));
    EXPECT_TRUE(setup.process().is_running()) << setup.log();
    EXPECT_EQ(setup.stop(), std::optional<int>(0));
}

} // namespace
} // namespace kmodd::daemon::test
