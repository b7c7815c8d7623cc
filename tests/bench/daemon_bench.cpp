// SPDX-License-Identifier: LGPL-2.1-or-later
// Benchmark: the running kmodd against kmod's tools on the same real tree, in the same run.
//
//   daemon_bench [--runs N] ROOT VERSION
//
// ROOT holds lib/modules/VERSION (e.g. /var/cache/kmodd-test/trees/amd64). The tree is
// copied (hard links) to a temporary root; kmodd serves it in sandbox mode on a private bus,
// with fsync on. Prints side by side:
// - a module appearing (a new symlink into the tree) until modules.dep names it, debounce
//   included, against kmod's full `depmod -a` on the same tree;
// - kmodd's own rebuild time for that change (LastRebuildDurationUSec);
// - the ListDeps round trip over D-Bus against `modprobe -D` as a process;
// - kmodd's resident memory with the index loaded (VmRSS, and the peak VmHWM);
// - `kmodctl deps btrfs` as a whole process against `modprobe -D btrfs` (alternating);
// - with a parse cache: a restart from exec until ListDeps answers, and until the tree is
//   verified (IndexVerified), against a start without one (its first start), and the first
//   FindModules after such a restart (the descriptions come from the cache).
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "daemon_harness.hpp"
#include "spawn.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using kmodd::daemon::test::DaemonSetup;
using kmodd::daemon::test::KmoddProcess;
using kmodd::daemon::test::status_kib;
namespace fs = std::filesystem;

double median(std::vector<double> values)
{
    if (values.empty())
        return 0;
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

double percentile(std::vector<double> values, double p)
{
    if (values.empty())
        return 0;
    std::sort(values.begin(), values.end());
    auto index = static_cast<size_t>(p * static_cast<double>(values.size() - 1));
    return values[index];
}

/// Wall time of `args` as a process (no shell), its output thrown away.
double spawn_seconds(const std::vector<std::string>& args)
{
    static const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    kmodd::test::SpawnOptions options;
    options.stdout_fd = null;
    options.stderr_fd = null;
    auto start = Clock::now();
    pid_t pid = kmodd::test::spawn(args, options);
    int status = 0;
    ::waitpid(pid, &status, 0);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        std::fprintf(stderr, "daemon_bench: '%s' failed (%d)\n", args[0].c_str(), status);
    return seconds;
}

double run_seconds(const std::string& command)
{
    auto start = Clock::now();
    int status = std::system(command.c_str());
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (status != 0)
        std::fprintf(stderr, "daemon_bench: '%s' failed (%d)\n", command.c_str(), status);
    return seconds;
}

/// Waits until `dep` (modules.dep) contains (or, with `present` false, lacks) `line`, woken
/// by inotify when a file is renamed into its directory; returns the seconds since `start`.
double wait_for_line(int inotify, const fs::path& dep, const std::string& line, bool present,
                     Clock::time_point start)
{
    for (;;) {
        std::string text = kmodd::test::slurp(dep);
        bool has = text.starts_with(line) || text.find("\n" + line) != std::string::npos;
        if (has == present)
            return std::chrono::duration<double>(Clock::now() - start).count();
        pollfd p{inotify, POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) {
            std::fprintf(stderr, "daemon_bench: modules.dep did not change within 10 s\n");
            std::exit(1);
        }
        char buffer[4096];
        [[maybe_unused]] ssize_t got = ::read(inotify, buffer, sizeof buffer);
    }
}

} // namespace

int main(int argc, char** argv)
{
    int runs = 21;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--runs" && i + 1 < argc)
            runs = std::atoi(argv[++i]);
        else
            positional.push_back(arg);
    }
    if (positional.size() != 2 || runs < 1) {
        std::fprintf(stderr, "usage: daemon_bench [--runs N] ROOT VERSION\n");
        return 2;
    }
    const fs::path source = positional[0];
    const std::string version = positional[1];
    if (!fs::is_directory(source / "lib/modules" / version)) {
        std::fprintf(stderr, "daemon_bench: no %s\n", (source / "lib/modules" / version).c_str());
        return 1;
    }

    DaemonSetup setup(version);
    const fs::path root = setup.tree().root();
    const fs::path module_dir = setup.tree().module_dir();
    fs::remove_all(module_dir);
    if (std::system(("cp -al '" + (source / "lib/modules" / version).string() + "' '" +
                     module_dir.string() + "'")
                        .c_str()) != 0) {
        std::fprintf(stderr, "daemon_bench: cannot copy the tree\n");
        return 1;
    }
    // The out-of-tree module the links point at: a real module file under a new name.
    std::string sample;
    for (const auto& entry : fs::recursive_directory_iterator(module_dir / "kernel/drivers/net")) {
        if (entry.path().filename() == "dummy.ko" || entry.path().filename() == "dummy.ko.xz" ||
            entry.path().filename() == "dummy.ko.zst") {
            sample = entry.path().string();
            break;
        }
    }
    if (sample.empty()) {
        std::fprintf(stderr, "daemon_bench: the tree has no drivers/net/dummy.ko\n");
        return 1;
    }
    std::string suffix = sample.substr(sample.find(".ko"));
    const fs::path outside = root / "home/dev";
    fs::create_directories(outside);
    fs::create_directories(module_dir / "extra");

    // kmod first, on the same copy, before kmodd owns it: a full depmod per run.
    std::vector<double> kmod_depmod;
    for (int i = 0; i < std::min(runs, 5); ++i)
        kmod_depmod.push_back(
            run_seconds("/usr/sbin/depmod -b '" + root.string() + "' " + version));

    auto start = Clock::now();
    if (!setup.start({"--durable", "yes", "--log-level", "info", "--debounce-ms", "20"})) {
        std::fprintf(stderr, "daemon_bench: kmodd did not start:\n%s\n", setup.log().c_str());
        return 1;
    }
    double startup = std::chrono::duration<double>(Clock::now() - start).count();
    pid_t pid = setup.process().pid();
    long rss_after_start = status_kib(pid, "VmRSS:");

    int inotify = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    ::inotify_add_watch(inotify, module_dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
    const fs::path dep = module_dir / "modules.dep";
    std::vector<double> appear;
    std::vector<double> vanish;
    std::vector<double> rebuild_ms;
    for (int i = 0; i < runs; ++i) {
        std::string name = "kmodd_bench" + std::to_string(i);
        fs::path target = outside / (name + suffix);
        fs::copy_file(sample, target, fs::copy_options::overwrite_existing);
        fs::path link = module_dir / "extra" / (name + suffix);
        std::string line = "extra/" + name + suffix + ":";
        auto t0 = Clock::now();
        fs::create_symlink(target, link);
        appear.push_back(wait_for_line(inotify, dep, line, true, t0) * 1000);
        // The property is set on the loop right after the files are published.
        kmodd::daemon::test::wait_until(
            [&] { return setup.client().property<uint32_t>("ModuleCount").value_or(0) > 0; });
        rebuild_ms.push_back(
            static_cast<double>(
                setup.client().property<uint64_t>("LastRebuildDurationUSec").value_or(0)) /
            1000.0);
        auto t1 = Clock::now();
        fs::remove(link);
        vanish.push_back(wait_for_line(inotify, dep, line, false, t1) * 1000);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    ::close(inotify);

    // ListDeps over D-Bus against modprobe -D as a process.
    const char* deep = "btrfs";
    std::vector<double> list_deps_ms;
    size_t plan = 0;
    for (int i = 0; i < 1000; ++i) {
        auto t0 = Clock::now();
        auto deps = setup.client().list_deps(deep);
        list_deps_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!deps) {
            std::fprintf(stderr, "daemon_bench: ListDeps %s: %s\n", deep,
                         deps.error_message.c_str());
            return 1;
        }
        plan = deps.value->size();
    }
    std::vector<double> modprobe_ms;
    for (int i = 0; i < std::min(runs, 21); ++i)
        modprobe_ms.push_back(run_seconds("/usr/sbin/modprobe -d '" + root.string() + "' -S " +
                                          version + " -D " + deep + " >/dev/null") *
                              1000);

    // A client call as a whole process, against modprobe -D as one, alternating.
    std::vector<double> kmodctl_ms;
    std::vector<double> modprobe_process_ms;
    for (int i = 0; i < std::max(runs, 21); ++i) {
        kmodctl_ms.push_back(
            spawn_seconds({KMODD_KMODCTL, "--bus", setup.address(), "deps", deep}) * 1000);
        modprobe_process_ms.push_back(
            spawn_seconds({"/usr/sbin/modprobe", "-d", root.string(), "-S", version, "-D", deep}) *
            1000);
    }

    // The questions desktop tools ask, with btrfs and its dependencies loaded (sandbox):
    // Explain and ListHolders of a dependency, FindModules over every description.
    using FoundRow = sdbus::Struct<std::string, std::string, std::string, std::string>;
    if (auto loaded = setup.client().load(deep); !loaded) {
        std::fprintf(stderr, "daemon_bench: Load %s: %s\n", deep, loaded.error_message.c_str());
        return 1;
    }
    const std::string dependency = "xor";
    std::vector<double> explain_ms, holders_ms, find_ms;
    auto timed = [](std::vector<double>& into, auto call) {
        auto t0 = Clock::now();
        bool ok = call();
        into.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        return ok;
    };
    double find_first_ms = 0;
    size_t found = 0;
    {
        std::vector<double> first;
        timed(first, [&] {
            auto rows =
                setup.client().call<std::vector<FoundRow>>("FindModules", std::string("wireless"));
            found = rows ? rows.value->size() : 0;
            return bool(rows);
        });
        find_first_ms = first[0];
    }
    for (int i = 0; i < 200; ++i) {
        bool ok =
            timed(explain_ms,
                  [&] {
                      return bool(setup.client().call<std::map<std::string, sdbus::Variant>>(
                          "Explain", dependency));
                  }) &&
            timed(holders_ms, [&] { return bool(setup.client().list_holders(dependency)); }) &&
            timed(find_ms, [&] {
                return bool(setup.client().call<std::vector<FoundRow>>("FindModules",
                                                                       std::string("wireless")));
            });
        if (!ok) {
            std::fprintf(stderr, "daemon_bench: Explain/ListHolders/FindModules failed\n");
            return 1;
        }
    }

    long rss = status_kib(pid, "VmRSS:");
    long hwm = status_kib(pid, "VmHWM:");
    auto count = setup.client().property<uint32_t>("ModuleCount").value_or(0);
    setup.stop();

    // Restarts with a parse cache: the first fills it, the others start from it.
    const std::string cache = (root / "cache").string();
    std::vector<double> cold_answer, warm_answer, warm_verified, warm_find_first;
    std::this_thread::sleep_for(std::chrono::milliseconds(2100)); // the racy-timestamp margin
    for (int i = 0; i <= std::min(runs, 7); ++i) {
        auto t0 = Clock::now();
        if (!setup.start({"--durable", "yes", "--cache-dir", cache})) {
            std::fprintf(stderr, "daemon_bench: kmodd did not restart:\n%s\n", setup.log().c_str());
            return 1;
        }
        if (!setup.client().list_deps(deep)) {
            std::fprintf(stderr, "daemon_bench: ListDeps after a restart failed\n");
            return 1;
        }
        double answered = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        kmodd::daemon::test::wait_until(
            [&] { return setup.client().property<bool>("IndexVerified").value_or(false); });
        double verified = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        (i == 0 ? cold_answer : warm_answer).push_back(answered);
        if (i > 0) {
            warm_verified.push_back(verified);
            // The first search after a restart: descriptions from the parse cache.
            if (!timed(warm_find_first, [&] {
                    return bool(setup.client().call<std::vector<FoundRow>>(
                        "FindModules", std::string("wireless")));
                })) {
                std::fprintf(stderr, "daemon_bench: FindModules after a restart failed\n");
                return 1;
            }
        }
        setup.stop();
    }

    std::printf("kmodd daemon benchmark: %s (%u modules), %d runs, fsync on\n", version.c_str(),
                count, runs);
    std::printf("%-44s %12s %12s\n", "", "kmodd", "kmod");
    std::printf("%-44s %9.1f ms %9.1f ms\n", "module appears -> modules.dep (p50)", median(appear),
                median(kmod_depmod) * 1000);
    std::printf("%-44s %9.1f ms %12s\n", "module appears -> modules.dep (p90)",
                percentile(appear, 0.9), "");
    std::printf("%-44s %9.1f ms %12s\n", "module vanishes -> modules.dep (p50)", median(vanish),
                "");
    std::printf("%-44s %9.1f ms %12s\n", "rebuild itself, LastRebuildDuration (p50)",
                median(rebuild_ms), "");
    std::printf("%-44s %9.3f ms %9.1f ms\n", "ListDeps btrfs round trip (p50)",
                median(list_deps_ms), median(modprobe_ms));
    std::printf("%-44s %9.3f ms %12s\n", "ListDeps btrfs round trip (p99)",
                percentile(list_deps_ms, 0.99), "");
    std::printf("%-44s %12zu %12s\n", "ListDeps btrfs plan length", plan, "");
    std::printf("%-44s %9.3f ms %12s\n", "Explain xor round trip (p50)", median(explain_ms), "");
    std::printf("%-44s %9.3f ms %12s\n", "ListHolders xor round trip (p50)", median(holders_ms),
                "");
    std::printf("%-44s %9.1f ms %12s\n", "FindModules wireless, first (reads all)", find_first_ms,
                "");
    std::printf("%-44s %9.1f ms %12s\n", "FindModules, first after warm restart (p50)",
                median(warm_find_first), "");
    std::printf("%-44s %9.3f ms %12s\n", "FindModules wireless round trip (p50)", median(find_ms),
                "");
    std::printf("%-44s %12zu %12s\n", "FindModules wireless matches", found, "");
    std::printf("%-44s %9.2f s %12s\n", "start until answering (index checked)", startup, "");
    std::printf("%-44s %8.1f MiB %12s\n", "resident memory after start (VmRSS)",
                static_cast<double>(rss_after_start) / 1024, "");
    std::printf("%-44s %8.1f MiB %12s\n", "resident memory at the end (VmRSS)",
                static_cast<double>(rss) / 1024, "");
    std::printf("%-44s %8.1f MiB %12s\n", "peak resident memory (VmHWM)",
                static_cast<double>(hwm) / 1024, "");
    std::printf("%-44s %9.1f ms %9.1f ms\n", "kmodctl deps btrfs / modprobe -D (process)",
                median(kmodctl_ms), median(modprobe_process_ms));
    std::printf("%-44s %9.1f ms %12s\n", "exec -> ListDeps, no cache yet", median(cold_answer), "");
    std::printf("%-44s %9.1f ms %12s\n", "exec -> ListDeps, warm cache (p50)", median(warm_answer),
                "");
    std::printf("%-44s %9.1f ms %12s\n", "exec -> tree verified, warm cache (p50)",
                median(warm_verified), "");
    std::printf("(kmod column: a full `depmod` run, and `modprobe -D` as a process; restart\n"
                " figures poll every 5 ms)\n");
    return 0;
}
