// SPDX-License-Identifier: LGPL-2.1-or-later
// Soak: kmodd rebuilds a real tree again and again (a module linked in, then unlinked) while
// its memory and open files are watched, and every so often its index is compared with
// kmod's. Set by the environment (see tests/soak/CMakeLists.txt):
//   KMODD_SOAK_TREE      a root holding lib/modules/VERSION (e.g. the cached Debian tree)
//   KMODD_SOAK_VERSION   VERSION (default: the one release the tree holds)
//   KMODD_SOAK_CYCLES    link/unlink cycles (default 200)
//   KMODD_SOAK_COMPARE   compare with kmod's depmod every this many cycles (default 100)
// Prints the memory curve: cycle, VmRSS, VmHWM, open fds, the cycle's time.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kmod_oracle.hpp"
#include "stress_tree.hpp"

namespace kmodd::daemon::test {
namespace {

using Clock = std::chrono::steady_clock;

size_t open_fds(pid_t pid)
{
    size_t count = 0;
    for ([[maybe_unused]] const auto& entry :
         fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        ++count;
    return count;
}

/// Waits, woken by inotify, until modules.dep has (or lacks) `line`; false after 30 s.
bool wait_for_line(int inotify, const fs::path& dep, const std::string& line, bool present)
{
    const auto deadline = Clock::now() + 30s;
    for (;;) {
        const bool has = kmodd::test::has_line(dep, line);
        if (has == present)
            return true;
        if (Clock::now() > deadline)
            return false;
        pollfd p{inotify, POLLIN, 0};
        if (::poll(&p, 1, 1000) > 0) {
            char buffer[4096];
            [[maybe_unused]] ssize_t got = ::read(inotify, buffer, sizeof buffer);
        }
    }
}

struct Sample {
    int cycle = 0;
    long rss_kib = 0;
    long hwm_kib = 0;
    size_t fds = 0;
};

TEST(RebuildSoak, MemoryAndOpenFilesStayFlatAndTheIndexStaysKmods)
{
    const fs::path source = environment("KMODD_SOAK_TREE");
    std::string version = environment("KMODD_SOAK_VERSION");
    if (version.empty())
        version = release_of(source);
    const int cycles = std::atoi(environment("KMODD_SOAK_CYCLES", "200").c_str());
    const int compare_every = std::atoi(environment("KMODD_SOAK_COMPARE", "100").c_str());
    if (source.empty() || !fs::is_directory(source / "lib/modules" / version))
        GTEST_SKIP() << "no tree: set KMODD_SOAK_TREE and KMODD_SOAK_VERSION";
    ASSERT_GE(cycles, 20);
    ASSERT_GT(compare_every, 0);

    DaemonSetup setup(version);
    const fs::path module_dir = setup.tree().module_dir();
    std::string sample;
    ASSERT_NO_FATAL_FAILURE(copy_tree(setup, source, sample));
    const std::string suffix = sample.substr(sample.find(".ko"));
    const fs::path outside = setup.tree().root() / "home/dev";
    fs::create_directories(outside);
    const fs::path target = outside / ("kmodd_soak" + suffix);
    fs::copy_file(sample, target);
    const fs::path link = module_dir / "extra" / ("kmodd_soak" + suffix);
    const std::string line = "extra/kmodd_soak" + suffix + ":";

    ASSERT_TRUE(setup.start({"--log-level", "info"})) << setup.log();
    const pid_t pid = setup.process().pid();
    int inotify = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    ASSERT_GE(inotify, 0);
    ::inotify_add_watch(inotify, module_dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
    const fs::path dep = module_dir / "modules.dep";

    std::vector<Sample> curve;
    const int warm_up = 10;
    const int report_every = std::max(1, cycles / 10);
    std::printf("%8s %10s %10s %6s %10s\n", "cycle", "VmRSS KiB", "VmHWM KiB", "fds", "cycle ms");
    auto last = Clock::now();
    int compared = 0;
    for (int cycle = 1; cycle <= cycles; ++cycle) {
        fs::create_symlink(target, link);
        ASSERT_TRUE(wait_for_line(inotify, dep, line, true)) << "cycle " << cycle << setup.log();
        fs::remove(link);
        ASSERT_TRUE(wait_for_line(inotify, dep, line, false)) << "cycle " << cycle;
        ASSERT_TRUE(setup.process().is_running()) << setup.log();
        if (cycle == warm_up || cycle % report_every == 0) {
            // Let the loop publish the snapshot of the last batch before sampling.
            ASSERT_TRUE(setup.client().list_deps("dummy"));
            Sample s{cycle, status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"), open_fds(pid)};
            const double ms =
                std::chrono::duration<double, std::milli>(Clock::now() - last).count() /
                (cycle == warm_up ? warm_up : report_every);
            last = Clock::now();
            std::printf("%8d %10ld %10ld %6zu %10.1f\n", s.cycle, s.rss_kib, s.hwm_kib, s.fds, ms);
            std::fflush(stdout);
            curve.push_back(s);
        }
        if (cycle % compare_every == 0) {
            // Settled: the link is gone and the index says so.
            kmodd::test::expect_same_as_kmod(setup.tree().root(), version);
            ++compared;
            if (HasFailure())
                break;
        }
    }
    ::close(inotify);
    std::printf("compared with kmod's depmod %d times\n", compared);
    ASSERT_GE(curve.size(), 3U);
    const Sample& start = curve.front();
    const Sample& middle = curve[curve.size() / 2];
    const Sample& end = curve.back();
    // Flat: the second half adds at most a few MiB (allocator noise) and not one descriptor.
    const long bound_kib = std::max(4096L, middle.rss_kib / 10);
    EXPECT_LE(end.rss_kib, middle.rss_kib + bound_kib)
        << "VmRSS grew from " << middle.rss_kib << " KiB at cycle " << middle.cycle << " to "
        << end.rss_kib << " KiB at cycle " << end.cycle;
    EXPECT_EQ(end.fds, start.fds) << "open file descriptors changed";
    EXPECT_EQ(setup.stop(), std::optional<int>(0));
}

} // namespace
} // namespace kmodd::daemon::test
