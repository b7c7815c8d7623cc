// SPDX-License-Identifier: LGPL-2.1-or-later
// Benchmark: kmodctl depmod against kmod's depmod on the same tree, in the same run.
//
//   depmod_bench [--runs N] [--kmod PATH] [--modprobe PATH] [--kmodctl PATH] ROOT VERSION
//
// Prints, side by side: the wall time of a full depmod run (each tool as a process,
// alternating, median of N), each tool's peak resident memory, our runs with a parse cache
// (cold, warm with nothing changed, warm with one module touched: new times, the same content,
// and warm with one module's content changed, also timed step by step in-process, and beside it
// the file-system work such a run cannot avoid and what a first touch of fresh memory costs
// here: io_floor.hpp) against kmod's in the same rounds, the time of
// `modprobe -a -D` over every module, and the engine's incremental update after one module
// appears or vanishes (in-process, including publishing every changed file with fsync), and the
// resident memory of that in-process engine, the figure that matters to the daemon, which keeps
// one engine per kernel version for its whole life: after the first scan()+write() and after 20
// incremental rounds, with base::keep_freed_memory_for_reuse() on as in the daemon.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/allocator.hpp"
#include "depmod/depmod.hpp"
#include "depmod/kmod_format.hpp"
#include "io_floor.hpp"
#include "spawn.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct ProcessRun {
    double seconds = 0;
    double cpu_seconds = 0; ///< user + system
    double system_seconds = 0;
    long max_rss_kib = 0;
    long page_faults = 0; ///< minor ones: first touches of memory and of mapped files
    int status = 0;
};

ProcessRun run_process(const std::vector<std::string>& argv)
{
    static const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    kmodd::test::SpawnOptions options;
    options.stdout_fd = null;
    options.stderr_fd = null;
    auto start = Clock::now();
    pid_t pid = kmodd::test::spawn(argv, options);
    int status = 0;
    rusage usage{};
    ::wait4(pid, &status, 0, &usage);
    ProcessRun run;
    run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    run.max_rss_kib = usage.ru_maxrss;
    auto seconds_of = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    run.cpu_seconds = seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime);
    run.system_seconds = seconds_of(usage.ru_stime);
    run.page_faults = usage.ru_minflt;
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

/// A "Vm...:  1234 kB" figure of /proc/self/status, in KiB (0 when missing).
long status_kib(const char* field)
{
    std::ifstream status("/proc/self/status");
    std::string line;
    const size_t length = std::strlen(field);
    while (std::getline(status, line)) {
        if (line.compare(0, length, field) == 0 && line.size() > length && line[length] == ':')
            return std::atol(line.c_str() + length + 1);
    }
    return 0;
}

/// What the process holds at one point: resident memory, and how much of the heap is in use
/// (the rest of it is free memory kept for reuse).
struct MemoryFigures {
    long rss_kib = 0;
    long heap_in_use_kib = 0;
};

MemoryFigures memory_now()
{
    struct mallinfo2 info = ::mallinfo2();
    return MemoryFigures{status_kib("VmRSS"),
                         static_cast<long>((info.uordblks + info.hblkhd) / 1024)};
}

void print_memory(const char* what, const MemoryFigures& figures)
{
    std::printf("%-34s %7.1fMiB   (heap in use %.1f MiB)\n", what,
                static_cast<double>(figures.rss_kib) / 1024,
                static_cast<double>(figures.heap_in_use_kib) / 1024);
}

double median(std::vector<double> values)
{
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[values.size() / 2];
}

int usage()
{
    std::fputs("usage: depmod_bench [--runs N] [--kmod PATH] [--modprobe PATH] [--kmodctl PATH] "
               "ROOT VERSION\n",
               stderr);
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    kmodd::base::keep_freed_memory_for_reuse();
    int runs = 5;
    std::string kmod = "/usr/sbin/depmod";
    std::string modprobe = "/usr/sbin/modprobe";
    std::string kmodctl = (fs::path(argv[0]).parent_path() / "kmodctl").string();
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--runs" && i + 1 < argc)
            runs = std::atoi(argv[++i]);
        else if (arg == "--kmod" && i + 1 < argc)
            kmod = argv[++i];
        else if (arg == "--modprobe" && i + 1 < argc)
            modprobe = argv[++i];
        else if (arg == "--kmodctl" && i + 1 < argc)
            kmodctl = argv[++i];
        else
            positional.push_back(arg);
    }
    if (positional.size() != 2 || runs < 1)
        return usage();
    const fs::path root = fs::absolute(positional[0]);
    const std::string version = positional[1];
    const fs::path module_dir = root / "lib/modules" / version;
    if (!fs::is_directory(module_dir)) {
        std::fprintf(stderr, "depmod_bench: no module dir %s\n", module_dir.c_str());
        return 1;
    }

    // kmod writes into the tree it indexes: give it a hard-link copy; ours writes with -o.
    const fs::path scratch =
        fs::temp_directory_path() / ("kmodd-bench-" + std::to_string(::getpid()));
    const fs::path kmod_root = scratch / "kmod";
    const fs::path ours_out = scratch / "ours";
    fs::create_directories(scratch);
    std::string copy = "cp -al '" + root.string() + "' '" + kmod_root.string() + "'";
    if (std::system(copy.c_str()) != 0) {
        std::fprintf(stderr, "depmod_bench: cannot copy the tree\n");
        return 1;
    }

    size_t modules = 0;
    for (const auto& entry : fs::recursive_directory_iterator(module_dir)) {
        std::string name = entry.path().filename().string();
        modules += name.find(".ko") != std::string::npos ? 1 : 0;
    }
    std::printf("tree: %s (%zu module files), %d runs each, alternating\n", module_dir.c_str(),
                modules, runs);
    // Compressed trees cost mostly decoding: the figures compare like with like only when both
    // use the same liblzma and libzstd, which the line below lets a reader check.
    std::fflush(stdout);
    if (std::system((kmod + " --version | head -n 1 | sed 's/^/reference: /'; "
                            "dpkg-query -W -f='libraries: liblzma ${Version}, ' liblzma5; "
                            "dpkg-query -W -f='libzstd ${Version}\\n' libzstd1")
                        .c_str()) != 0)
        std::printf("(versions unknown)\n");

    std::vector<double> ours_times, kmod_times, ours_cpu, kmod_cpu;
    long ours_rss = 0, kmod_rss = 0;
    for (int i = 0; i < runs; ++i) {
        auto k = run_process({kmod, "-C", "/dev/null", "-b", kmod_root.string(), version});
        auto o = run_process({kmodctl, "depmod", "--no-cache", "-C", "/dev/null", "-b",
                              root.string(), "-o", ours_out.string(), version});
        if (k.status != 0 || o.status != 0) {
            std::fprintf(stderr, "depmod_bench: a run failed (kmod %d, ours %d)\n", k.status,
                         o.status);
            return 1;
        }
        kmod_times.push_back(k.seconds);
        ours_times.push_back(o.seconds);
        kmod_cpu.push_back(k.cpu_seconds);
        ours_cpu.push_back(o.cpu_seconds);
        kmod_rss = std::max(kmod_rss, k.max_rss_kib);
        ours_rss = std::max(ours_rss, o.max_rss_kib);
    }
    double ours_full = median(ours_times), kmod_full = median(kmod_times);
    std::printf("%-34s %10s %10s %8s\n", "", "kmodd", "kmod", "ratio");
    std::printf("%-34s %9.3fs %9.3fs %7.2fx\n", "full run, median wall time", ours_full, kmod_full,
                ours_full / kmod_full);
    std::printf("%-34s %9.3fs %9.3fs %7.2fx\n", "full run, median CPU time", median(ours_cpu),
                median(kmod_cpu), median(ours_cpu) / median(kmod_cpu));
    std::printf("%-34s %7.1fMiB %7.1fMiB %7.2fx\n", "full run, peak resident memory",
                static_cast<double>(ours_rss) / 1024, static_cast<double>(kmod_rss) / 1024,
                static_cast<double>(ours_rss) / static_cast<double>(kmod_rss));

    // The parse cache, on a hard-link copy of the tree of our own (one module file in it is a
    // copy, touched before each "one changed" run): a cold run that writes the cache, a warm run
    // with nothing changed, and a warm run with that one module changed.
    const fs::path ours_root = scratch / "ours-tree";
    const fs::path cache = scratch / "cache";
    if (std::system(("cp -al '" + root.string() + "' '" + ours_root.string() + "'").c_str()) != 0) {
        std::fprintf(stderr, "depmod_bench: cannot copy the tree\n");
        return 1;
    }
    // `touched` gets new times only (its content parses as before); a second run after that has
    // its content replaced by another module's (`other`) or its own again: a change of what the
    // index holds, which the outputs follow.
    fs::path touched, other;
    for (const auto& entry :
         fs::recursive_directory_iterator(ours_root / "lib/modules" / version / "kernel/fs")) {
        if (entry.is_regular_file() && entry.path().string().find(".ko") != std::string::npos) {
            (touched.empty() ? touched : other) = entry.path();
            if (!other.empty())
                break;
        }
    }
    const fs::path contents[2] = {scratch / "other-module", scratch / "own-module"};
    fs::copy_file(other, contents[0]);
    fs::copy_file(touched, contents[1]);
    fs::copy_file(touched, touched.string() + ".copy");
    fs::rename(touched.string() + ".copy", touched);
    const std::vector<std::string> cached_run{kmodctl,
                                              "depmod",
                                              "--cache-dir=" + cache.string(),
                                              "-C",
                                              "/dev/null",
                                              "-b",
                                              ours_root.string(),
                                              "-o",
                                              ours_out.string(),
                                              version};
    // Linking changed every file's ctime: the cache trusts no file changed within 2 s of a run.
    ::sleep(3);
    std::vector<double> cold_cache, warm_same, warm_one, warm_edit, kmod_again;
    std::vector<double> edit_cpu_ms, edit_system_ms, edit_faults;
    long cold_cache_rss = 0, warm_same_rss = 0, warm_one_rss = 0, warm_edit_rss = 0;
    for (int i = 0; i < runs; ++i) {
        fs::remove_all(cache);
        auto c = run_process(cached_run);
        auto w = run_process(cached_run); // the cache written a moment ago: racy, parses again
        auto k = run_process({kmod, "-C", "/dev/null", "-b", kmod_root.string(), version});
        auto same = run_process(cached_run);
        ::utimensat(AT_FDCWD, touched.c_str(), nullptr, 0);
        ::sleep(2); // the module changed, but not within 2 s of the run that caches it
        auto one = run_process(cached_run);
        fs::copy_file(contents[i % 2], touched.string() + ".new");
        fs::rename(touched.string() + ".new", touched);
        ::sleep(2);
        auto edit = run_process(cached_run);
        if (c.status != 0 || w.status != 0 || same.status != 0 || one.status != 0 ||
            edit.status != 0) {
            std::fprintf(stderr, "depmod_bench: a cached run failed\n");
            return 1;
        }
        cold_cache.push_back(c.seconds);
        kmod_again.push_back(k.seconds);
        warm_same.push_back(same.seconds);
        warm_one.push_back(one.seconds);
        warm_edit.push_back(edit.seconds);
        edit_cpu_ms.push_back(edit.cpu_seconds * 1000);
        edit_system_ms.push_back(edit.system_seconds * 1000);
        edit_faults.push_back(static_cast<double>(edit.page_faults));
        warm_edit_rss = std::max(warm_edit_rss, edit.max_rss_kib);
        cold_cache_rss = std::max(cold_cache_rss, c.max_rss_kib);
        warm_same_rss = std::max(warm_same_rss, same.max_rss_kib);
        warm_one_rss = std::max(warm_one_rss, one.max_rss_kib);
    }
    const double kmod_now = median(kmod_again);
    auto print_cached = [&](const char* what, const std::vector<double>& times, long rss) {
        std::printf("%-34s %9.3fs %9.3fs %7.3fx  (%.1f MiB)\n", what, median(times), kmod_now,
                    median(times) / kmod_now, static_cast<double>(rss) / 1024);
    };
    print_cached("cold run writing the parse cache", cold_cache, cold_cache_rss);
    print_cached("warm run, nothing changed", warm_same, warm_same_rss);
    print_cached("warm, one module touched", warm_one, warm_one_rss);
    print_cached("warm, one module's content changed", warm_edit, warm_edit_rss);
    // On a VM the kernel's share (page faults, system calls) is large: said, so it is seen.
    std::printf("  (that run: CPU %.1f ms, of it %.1f ms in the kernel; %.0f page faults)\n",
                median(edit_cpu_ms), median(edit_system_ms), median(edit_faults));
    std::string cache_file;
    for (const auto& entry : fs::recursive_directory_iterator(cache)) {
        if (entry.is_regular_file() && entry.path().filename() == "modules.cache")
            cache_file = entry.path().string();
    }
    // What such a run cannot avoid on this machine, computing nothing and holding nothing in
    // fresh memory: a process started, every module stat'ed, the cache read, outputs of the same
    // sizes published as ours are and the cache's delta written (or the cache when the run left
    // none), one step after another. What the
    // content-changed run takes beyond it is computation and first touches of memory.
    {
        std::vector<std::string> module_files;
        for (const auto& entry :
             fs::recursive_directory_iterator(ours_root / "lib/modules" / version)) {
            if (entry.is_regular_file() && entry.path().string().find(".ko") != std::string::npos)
                module_files.push_back(entry.path().string());
        }
        std::vector<double> exec_ms, stat_ms, read_ms, outputs_ms, fsync_ms, write_ms, floor_ms;
        size_t cache_written = 0;
        bool wrote_delta = false;
        for (int i = 0; i < runs; ++i) {
            const double started = run_process({"/bin/true"}).seconds * 1000;
            const auto floor = kmodd::bench::measure_io_floor(
                (ours_root / "lib/modules" / version).string(), module_files, cache_file,
                (ours_out / "lib/modules" / version).string(), (scratch / "floor").string());
            exec_ms.push_back(started);
            stat_ms.push_back(floor.stat_ms);
            read_ms.push_back(floor.cache_read_ms);
            outputs_ms.push_back(floor.outputs_ms);
            fsync_ms.push_back(floor.fsync_wait_ms);
            write_ms.push_back(floor.cache_write_ms);
            cache_written = floor.cache_bytes_written;
            wrote_delta = floor.wrote_delta;
            floor_ms.push_back(started + floor.total_ms());
        }
        std::printf("%-34s %8.1fms %9.3fs %7.3fx\n", "  its file-system work alone",
                    median(floor_ms), kmod_now, median(floor_ms) / 1000 / kmod_now);
        std::printf("  (medians: /bin/true started %.1f ms, every module stat'ed %.1f, cache read "
                    "%.1f,\n   outputs published %.1f of which waiting for fsync %.1f,\n   cache "
                    "written %.1f: %zu bytes, %s)\n",
                    median(exec_ms), median(stat_ms), median(read_ms), median(outputs_ms),
                    median(fsync_ms), median(write_ms), cache_written,
                    wrote_delta ? "the run's delta" : "the whole cache");
        // The warm runs above each came 2 s after the last run, whose heap was freed then.
        std::vector<double> small_ms, huge_ms;
        for (int i = 0; i < std::min(runs, 3); ++i) {
            ::sleep(2);
            const auto fresh = kmodd::bench::measure_fresh_memory(16);
            small_ms.push_back(fresh.small_ms_per_mib);
            huge_ms.push_back(fresh.huge_ms_per_mib);
        }
        std::printf("  (fresh memory after 2 s idle, median: %.2f ms per MiB in 4 KiB pages, "
                    "%.2f in 2 MiB pages)\n",
                    median(small_ms), median(huge_ms));
    }

    const uintmax_t cache_bytes = cache_file.empty() ? 0 : fs::file_size(cache_file);
    std::printf("%-34s %7.2fMiB, %.2f MiB per 1000 modules\n", "parse cache on disk",
                static_cast<double>(cache_bytes) / 1048576,
                static_cast<double>(cache_bytes) / 1048576 * 1000 / static_cast<double>(modules));

    // Where a warm run with one module's content changed spends its time: the steps
    // `kmodctl depmod` takes, in-process, timed one by one on the same tree (a cache of its own,
    // written first). write() makes the outputs again and publishes them: publishing is write
    // less generate.
    {
        kmodd::depmod::DepmodOptions phase_options;
        phase_options.base_dir = ours_root.string();
        phase_options.kernel_version = version;
        phase_options.config_paths = {"/dev/null"};
        phase_options.output_dir = (scratch / "phases-out").string();
        phase_options.format =
            kmodd::depmod::choose_kmod_format(std::nullopt, std::nullopt,
                                              kmodd::depmod::module_dir_of(phase_options))
                .format;
        phase_options.parse_cache =
            kmodd::depmod::parse_cache_path((scratch / "phases-cache").string(), phase_options);
        // As `kmodctl depmod` runs on a warm cache (its heap settings aside: they are the
        // process's).
        phase_options.parallel_outputs = true;
        phase_options.read_cache_in_place = true;
        kmodd::index::Diagnostics said;
        auto ms_since = [](Clock::time_point& from) {
            const auto now = Clock::now();
            const double ms = std::chrono::duration<double, std::milli>(now - from).count();
            from = now;
            return ms;
        };
        std::vector<double> create_ms, current_ms, scan_ms, generate_ms, write_ms, total_ms;
        int spliced = 0; // rounds whose outputs_are_current() made the outputs (a splice)
        for (int i = -1; i < runs; ++i) {
            // The first round writes the cache and the output state. The rounds above left
            // `touched` holding contents[(runs - 1) % 2]: each round here takes the other one.
            if (i >= 0) {
                fs::copy_file(contents[(runs + i) % 2], touched.string() + ".new");
                fs::rename(touched.string() + ".new", touched);
            }
            ::sleep(2);
            const auto start = Clock::now();
            auto at = start;
            auto engine = kmodd::depmod::Depmod::create(phase_options, said);
            if (!engine) {
                std::fprintf(stderr, "depmod_bench: in-process run failed\n");
                return 1;
            }
            (*engine)->remove_stale_temp_files(said);
            const double created = ms_since(at);
            const bool current = (*engine)->outputs_are_current(said);
            const double checked = ms_since(at);
            const bool scanned = !current && (*engine)->scan(said);
            const double scan_took = ms_since(at);
            const bool generated = scanned && (*engine)->generate(said);
            const double generate_took = ms_since(at);
            const bool written = generated && (*engine)->write(said);
            const double write_took = ms_since(at);
            const bool was_spliced = current && (*engine)->files_spliced() > 0;
            if (!written && !was_spliced) {
                std::fprintf(stderr, "depmod_bench: in-process warm run %s\n",
                             current ? "found the outputs current unchanged" : "failed");
                return 1;
            }
            said.clear();
            if (i < 0)
                continue;
            spliced += was_spliced ? 1 : 0;
            create_ms.push_back(created);
            current_ms.push_back(checked);
            if (!was_spliced) {
                scan_ms.push_back(scan_took);
                generate_ms.push_back(generate_took);
                write_ms.push_back(write_took);
            }
            total_ms.push_back(created + checked + scan_took + write_took);
        }
        std::printf("warm, one module's content changed, in-process steps (median ms):\n"
                    "  create %.1f, outputs_are_current %.1f (walk, state, cache, proof; and the\n"
                    "  splice of the outputs in %d of %d rounds), then in the others (0: none)\n"
                    "  scan %.1f (merge), generate %.1f, write %.1f (generate, publish, state);\n"
                    "  together %.1f ms; the process run above takes %.1f ms more\n"
                    "  (process start and exit, a heap faulted in anew)\n",
                    median(create_ms), median(current_ms), spliced, runs, median(scan_ms),
                    median(generate_ms), median(write_ms), median(total_ms),
                    median(warm_edit) * 1000 - median(total_ms));
    }

    // modprobe: the load plan of every module in one `-a -D` run, over kmod's index files (the
    // copy kmod's depmod just wrote them into).
    std::vector<std::string> names;
    for (const auto& entry :
         fs::recursive_directory_iterator(kmod_root / "lib/modules" / version)) {
        std::string name = entry.path().filename().string();
        if (size_t ko = name.find(".ko"); ko != std::string::npos && entry.is_regular_file())
            names.push_back(name.substr(0, ko));
    }
    auto modprobe_args = [&](const std::string& tool, bool is_ours) {
        std::vector<std::string> args{tool};
        if (is_ours)
            args.emplace_back("modprobe");
        for (const char* a : {"-C", "/dev/null", "-d"})
            args.emplace_back(a);
        args.push_back(kmod_root.string());
        args.emplace_back("-S");
        args.push_back(version);
        args.emplace_back("-a");
        args.emplace_back("-D");
        args.insert(args.end(), names.begin(), names.end());
        return args;
    };
    std::vector<double> ours_plan, kmod_plan;
    for (int i = 0; i < runs; ++i) {
        kmod_plan.push_back(run_process(modprobe_args(modprobe, false)).seconds);
        ours_plan.push_back(run_process(modprobe_args(kmodctl, true)).seconds);
    }
    std::printf("%-34s %9.1fms %8.1fms %7.2fx\n", "modprobe -a -D, every module",
                median(ours_plan) * 1000, median(kmod_plan) * 1000,
                median(ours_plan) / median(kmod_plan));

    // Incremental: one module appears, then vanishes, each followed by a rewrite. It runs on
    // a hard-link copy, so the tree given to the benchmark is never modified.
    const fs::path inc_root = scratch / "incremental-root";
    std::string copy_inc = "cp -al '" + root.string() + "' '" + inc_root.string() + "'";
    if (std::system(copy_inc.c_str()) != 0) {
        std::fprintf(stderr, "depmod_bench: cannot copy the tree\n");
        return 1;
    }
    const fs::path inc_module_dir = inc_root / "lib/modules" / version;
    kmodd::depmod::DepmodOptions options;
    options.base_dir = inc_root.string();
    options.kernel_version = version;
    options.config_paths = {"/dev/null"};
    // The format kmod's files (just written) are in: the comparison is like with like.
    options.format = kmodd::depmod::choose_kmod_format(
                         std::nullopt, std::nullopt, (kmod_root / "lib/modules" / version).string())
                         .format;
    options.output_dir = (scratch / "incremental-out").string();
    options.durable = std::getenv("BENCH_NODURABLE") == nullptr;
    kmodd::index::Diagnostics diagnostics;
    const MemoryFigures before_engine = memory_now();
    auto engine = kmodd::depmod::Depmod::create(options, diagnostics);
    if (!engine || !(*engine)->scan(diagnostics) || !(*engine)->write(diagnostics)) {
        std::fprintf(stderr, "depmod_bench: in-process full run failed\n");
        return 1;
    }
    diagnostics.clear();
    const MemoryFigures after_full = memory_now();
    MemoryFigures after_rounds;
    constexpr int kMemoryRounds = 20;
    fs::path some_module;
    for (const auto& entry : fs::recursive_directory_iterator(module_dir)) {
        if (entry.path().filename().string().ends_with(".ko") ||
            entry.path().filename().string().find(".ko.") != std::string::npos) {
            some_module = entry.path();
            break;
        }
    }
    const fs::path added_dir = scratch / "extra";
    fs::create_directories(added_dir);
    std::string filename = some_module.filename().string();
    const fs::path source =
        added_dir / ("kmodd_bench_probe" + filename.substr(filename.find(".ko")));
    fs::copy_file(some_module, source);
    const fs::path link = inc_module_dir / "kmodd-bench-probe";
    std::vector<double> update_ms, rescan_ms;
    size_t written = 0, parsed = 0;
    const int iterations = std::max(kMemoryRounds, runs * 4);
    for (int i = 0; i < iterations; ++i) {
        bool add = i % 2 == 0;
        if (add)
            fs::create_directory_symlink(added_dir, link);
        else
            fs::remove(link);
        auto start = Clock::now();
        (*engine)->update_path(link.string(), diagnostics);
        rescan_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        auto stats = (*engine)->write(diagnostics);
        update_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (!stats) {
            std::fprintf(stderr, "depmod_bench: incremental write failed: %s\n",
                         stats.error().message.c_str());
            fs::remove(link);
            return 1;
        }
        written += stats->files_written;
        parsed += stats->files_parsed;
        diagnostics.clear();
        if (i + 1 == kMemoryRounds)
            after_rounds = memory_now();
    }
    if (fs::is_symlink(link))
        fs::remove(link);
    std::printf("%-34s %8.1fms %10s\n", "one module added/removed, median", median(update_ms),
                "n/a");
    std::printf("  (%d updates: %.1f files parsed and %.1f files rewritten per update, fsync %s;\n"
                "   median %.1f ms to apply the change to the index, the rest is generating and\n"
                "   publishing the outputs)\n",
                iterations, static_cast<double>(parsed) / iterations,
                static_cast<double>(written) / iterations, options.durable ? "on" : "off",
                median(rescan_ms));
    std::printf("in-process engine, resident memory (the daemon's steady state):\n");
    print_memory("  before the engine", before_engine);
    print_memory("  after scan() + write()", after_full);
    print_memory("  after 20 incremental rounds", after_rounds);
    fs::remove_all(scratch);
    return 0;
}
