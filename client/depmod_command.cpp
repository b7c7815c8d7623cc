// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl depmod`: kmod's depmod command line over the in-process engine.
#include <getopt.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unistd.h>

#include "base/allocator.hpp"
#include "base/file.hpp"
#include "commands.hpp"
#include "depmod/depmod.hpp"
#include "depmod/quick_check.hpp"
#include "sys/kmod_tool.hpp"

namespace kmodd::client {

namespace {

using index::Diagnostic;

struct Printer {
    int verbosity = 0;

    void print(const Diagnostic& d) const
    {
        const char* level = "";
        switch (d.level) {
        case Diagnostic::Level::Error:
            level = "ERROR: ";
            break;
        case Diagnostic::Level::Warning:
            level = "WARNING: ";
            break;
        case Diagnostic::Level::Info:
            if (verbosity == 0)
                return;
            level = "INFO: ";
            break;
        }
        std::fprintf(stderr, "depmod: %s%s\n", level, d.message.c_str());
    }
    void print(const index::Diagnostics& all) const
    {
        for (const auto& d : all)
            print(d);
    }
};

void help(const char* self)
{
    std::printf("Usage:\n"
                "\t%s -[aA] [options] [forced_version]\n"
                "\n"
                "If no arguments (except options) are given, \"depmod -a\" is assumed\n"
                "\n"
                "depmod will output a dependency list suitable for the modprobe utility.\n"
                "\n"
                "Options:\n"
                "\t-a, --all            Probe all modules\n"
                "\t-A, --quick          Only does the work if there's a new module\n"
                "\t-e, --errsyms        Report not supplied symbols\n"
                "\t-n, --show           Write the dependency file on stdout only\n"
                "\t-P, --symbol-prefix  Architecture symbol prefix\n"
                "\t-C, --config=PATH    Read configuration from PATH\n"
                "\t-v, --verbose        Enable verbose mode\n"
                "\t-w, --warn           Warn on duplicates\n"
                "\t-V, --version        show version\n"
                "\t-h, --help           show this help\n"
                "\n"
                "The following options are useful for people managing distributions:\n"
                "\t-b, --basedir=DIR    Use an image of a module tree.\n"
                "\t-m, --moduledir=DIR  Module directory under the base and output\n"
                "\t                     directories (default: /lib/modules).\n"
                "\t-o, --outdir=DIR     Output directory for generated files.\n"
                "\t-F, --filesyms=FILE  Use the file instead of the\n"
                "\t                     current kernel symbols.\n"
                "\t-E, --symvers=FILE   Use Module.symvers file to check\n"
                "\t                     symbol versions.\n"
                "\t    --kmod-format=N  Write the files as kmod N's depmod does (30: ten\n"
                "\t                     files, children-first indexes; 34: eleven files,\n"
                "\t                     parent-first; default: as the installed kmod).\n"
                "\t    --cache-dir=DIR  Keep the parse cache under DIR (default:\n"
                "\t                     /var/cache/kmodd; read only where not writable).\n"
                "\t    --no-cache       Parse every module; neither read nor write the cache.\n",
                self);
}

bool is_version_number(const char* text)
{
    unsigned a = 0, b = 0;
    return std::sscanf(text, "%u.%u", &a, &b) == 2;
}

} // namespace

/// Where kmodd keeps its parse caches (the package's and the unit's CacheDirectory=).
constexpr const char* kDefaultCacheDir = "/var/cache/kmodd";
constexpr size_t kHeapGrowth = size_t{64} * 1024 * 1024;

int run_depmod(int argc, char** argv)
{
    static const option long_options[] = {
        {"all", no_argument, nullptr, 'a'},
        {"quick", no_argument, nullptr, 'A'},
        {"basedir", required_argument, nullptr, 'b'},
        {"outdir", required_argument, nullptr, 'o'},
        {"config", required_argument, nullptr, 'C'},
        {"symvers", required_argument, nullptr, 'E'},
        {"filesyms", required_argument, nullptr, 'F'},
        {"errsyms", no_argument, nullptr, 'e'},
        {"unresolved-error", no_argument, nullptr, 'u'},
        {"quiet", no_argument, nullptr, 'q'},
        {"root", no_argument, nullptr, 'r'},
        {"verbose", no_argument, nullptr, 'v'},
        {"show", no_argument, nullptr, 'n'},
        {"dry-run", no_argument, nullptr, 'n'},
        {"symbol-prefix", required_argument, nullptr, 'P'},
        {"warn", no_argument, nullptr, 'w'},
        {"moduledir", required_argument, nullptr, 'm'},
        {"kmod-format", required_argument, nullptr, 'K'},
        {"cache-dir", required_argument, nullptr, 'D'},
        {"no-cache", no_argument, nullptr, 'N'},
        {"version", no_argument, nullptr, 'V'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    depmod::DepmodOptions options;
    Printer printer;
    bool quick = false;
    bool dry_run = false;
    std::optional<depmod::KmodFormat> forced_format;
    std::string cache_dir = kDefaultCacheDir;
    bool use_cache = true;
    bool all = false;
    optind = 0;
    for (;;) {
        int index = -1;
        int c = getopt_long(argc, argv, "aAb:m:o:C:E:F:euqrvnP:wVh", long_options, &index);
        if (c == -1)
            break;
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'A':
            quick = all = true; // as kmod: -A looks at the whole tree too
            break;
        case 'b':
            options.base_dir = base::absolute_from_cwd(optarg);
            break;
        case 'o':
            options.output_dir = base::absolute_from_cwd(optarg);
            break;
        case 'C':
            options.config_paths.emplace_back(optarg);
            break;
        case 'E':
            options.module_symvers = optarg;
            break;
        case 'F':
            options.system_map = optarg;
            break;
        case 'e':
            options.print_unknown = true;
            break;
        case 'v':
            ++printer.verbosity;
            options.verbose = true;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'P':
            if (optarg[0] == '\0' || optarg[1] != '\0') {
                std::fputs("depmod: FATAL: -P only takes a single char\n", stderr);
                return 1;
            }
            options.symbol_prefix = optarg[0];
            break;
        case 'w':
            options.warn_dups = true;
            break;
        case 'm':
            options.module_directory = optarg;
            break;
        case 'K': {
            auto format = depmod::parse_kmod_format(optarg);
            if (!format) {
                std::fprintf(stderr, "depmod: ERROR: --kmod-format: %s\n",
                             format.error().message.c_str());
                return 1;
            }
            forced_format = *format;
            break;
        }
        case 'D':
            cache_dir = base::absolute_from_cwd(optarg);
            break;
        case 'N':
            use_cache = false;
            break;
        case 'u':
        case 'q':
        case 'r':
            if (index >= 0)
                std::fprintf(stderr, "depmod: WARNING: Ignored deprecated option --%s\n",
                             long_options[index].name);
            else
                std::fprintf(stderr, "depmod: WARNING: Ignored deprecated option -%c\n", c);
            break;
        case 'h':
            help(argv[0]);
            return 0;
        case 'V':
            std::puts("kmodd depmod version " KMODD_VERSION);
            std::puts("+XZ +ZSTD +ZLIB");
            return 0;
        default:
            return 1;
        }
    }

    if (optind < argc) {
        if (!is_version_number(argv[optind])) {
            std::fprintf(stderr, "depmod: ERROR: Bad version passed %s\n", argv[optind]);
            return 1;
        }
        options.kernel_version = argv[optind++];
    } else {
        utsname un{};
        if (::uname(&un) < 0) {
            std::fprintf(stderr, "depmod: FATAL: uname() failed: %s\n", std::strerror(errno));
            return 1;
        }
        options.kernel_version = un.release;
    }
    // As kmod: module files named after the version are the whole index, unless -a asks
    // for the tree (then they are ignored). No parse cache for such a partial run.
    std::vector<std::string> files;
    if (!all)
        files.assign(argv + optind, argv + argc);
    if (!files.empty())
        use_cache = false;

    {
        const depmod::ChosenFormat chosen =
            depmod::choose_kmod_format(forced_format,
                                       forced_format ? std::nullopt
                                       : use_cache   ? sys::installed_kmod_version(cache_dir)
                                                     : sys::installed_kmod_version(),
                                       depmod::module_dir_of(options));
        options.format = chosen.format;
        if (printer.verbosity > 0)
            std::fprintf(stderr, "depmod: INFO: writing kmod %u's format, %s\n",
                         chosen.format.version, chosen.reason.c_str());
    }

    // -A's quick check needs no cache; a dry run reads it but leaves it as it is.
    if (use_cache && !quick)
        options.parse_cache = depmod::parse_cache_path(cache_dir, options);
    options.save_parse_cache = !dry_run;
    const bool is_keyed_cache = options.parse_cache.find("/trees/") != std::string::npos;

    // A warm run's time beyond its work is mostly the first touch of a fresh heap: its working
    // set (~30 MiB on a distribution's tree) in huge pages where they cost less than small ones
    // (base::grow_heap_in_huge_pages() finds out). A cold run spends its time parsing,
    // on threads with heaps of their own, and huge pages would raise its peak memory by ~2 MiB.
    // A warm run also makes its outputs on two threads (~10 ms less on amd64, ~3 MiB more),
    // all from that heap; a cold one would raise its peak by ~2 MiB for a few percent of its
    // time, and its parsing threads would wait on the one heap's lock. The modules a warm run
    // reads from the cache keep their .modinfo entries and symbol ids in its mapping (~2 MiB
    // fewer copies on amd64).
    struct stat cache_st {};
    if (!options.parse_cache.empty() && ::stat(options.parse_cache.c_str(), &cache_st) == 0 &&
        cache_st.st_size > 0) {
        base::use_one_heap_for_all_threads();
        base::grow_heap_in_huge_pages(kHeapGrowth);
        options.parallel_outputs = true;
        options.read_cache_in_place = true;
    }
    index::Diagnostics diagnostics;
    auto engine = depmod::Depmod::create(options, diagnostics);
    printer.print(diagnostics);
    diagnostics.clear();
    if (!engine) {
        std::fprintf(stderr, "depmod: FATAL: %s\n", engine.error().message.c_str());
        return 1;
    }
    if (quick) {
        if (dry_run || depmod::is_index_up_to_date((*engine)->module_dir()))
            return 0;
    }
    // What a killed run (of ours or of kmodd) left would stay in the tree for ever.
    if (!dry_run)
        (*engine)->remove_stale_temp_files(diagnostics);
    auto say_walk = [&] {
        const auto walked = (*engine)->last_walk_counts();
        // A run that keeps no listings (-n) says nothing of them.
        if (printer.verbosity > 0 && walked.read + walked.replayed > 0)
            std::fprintf(stderr,
                         "depmod: INFO: %zu %s read, %zu unchanged since the last run and not "
                         "read again\n",
                         walked.read, walked.read == 1 ? "directory" : "directories",
                         walked.replayed);
    };
    // Nothing to do when the outputs are provably those of the tree as it is now.
    if (!dry_run && files.empty() && (*engine)->outputs_are_current(diagnostics)) {
        printer.print(diagnostics);
        say_walk();
        const size_t reparsed = (*engine)->files_reparsed_unchanged();
        const size_t spliced = (*engine)->files_spliced();
        if (printer.verbosity > 0 && spliced > 0)
            std::fprintf(stderr,
                         "depmod: INFO: parse cache %s: %zu changed module %s parsed, each "
                         "exporting what it did; outputs made from the last run's graph\n",
                         options.parse_cache.c_str(), spliced, spliced == 1 ? "file" : "files");
        else if (printer.verbosity > 0 && reparsed == 0)
            std::fprintf(stderr,
                         "depmod: INFO: parse cache %s: no module file, input or output changed "
                         "since the last run; nothing written\n",
                         options.parse_cache.c_str());
        else if (printer.verbosity > 0)
            std::fprintf(stderr,
                         "depmod: INFO: parse cache %s: %zu changed module %s parsed as before, "
                         "no input or output changed since the last run; nothing written\n",
                         options.parse_cache.c_str(), reparsed, reparsed == 1 ? "file" : "files");
        return 0;
    }
    if (!files.empty()) {
        auto scanned = (*engine)->scan_files(files, diagnostics);
        if (!scanned) {
            printer.print(diagnostics);
            std::fprintf(stderr, "depmod: FATAL: %s\n", scanned.error().message.c_str());
            return 1;
        }
    }
    auto scanned = files.empty() ? (*engine)->scan(diagnostics) : base::Result<void>{};
    printer.print(diagnostics);
    diagnostics.clear();
    if (is_keyed_cache)
        depmod::prune_parse_caches(cache_dir);
    say_walk();
    if (printer.verbosity > 0 && !options.parse_cache.empty())
        std::fprintf(stderr,
                     "depmod: INFO: parse cache %s: %zu modules taken from it, %zu parsed, "
                     "%zu numbered by its symbol table\n",
                     options.parse_cache.c_str(), (*engine)->index().cache_hit_count(),
                     (*engine)->index().parse_count(), (*engine)->index().cache_numbered_count());
    if (!scanned) {
        std::fprintf(stderr, "depmod: FATAL: could not search modules: %s\n",
                     scanned.error().message.c_str());
        return 1;
    }
    if (dry_run) {
        auto outputs = (*engine)->generate(diagnostics);
        printer.print(diagnostics);
        if (!outputs)
            return 1;
        for (const auto& file : *outputs) {
            if (!file.is_binary)
                std::fwrite(file.content.data(), 1, file.content.size(), stdout);
        }
        return std::fflush(stdout) == 0 ? 0 : 1;
    }
    auto written = (*engine)->write(diagnostics);
    printer.print(diagnostics);
    if (!written) {
        if (written.error().code != EINVAL)
            std::fprintf(stderr, "depmod: ERROR: %s\n", written.error().message.c_str());
        return 1;
    }
    // The process ends here: the engine's tens of thousands of blocks go with it, not freed
    // one by one (~4 ms of a warm run). write() has waited for the parse cache's save, and
    // the pointer stays reachable, so leak checkers see no leak.
    [[maybe_unused]] static const depmod::Depmod* const left_to_exit = engine->release();
    return 0;
}

} // namespace kmodd::client
