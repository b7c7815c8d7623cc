// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl modprobe`: kmod's modprobe command line over the in-process loader.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "commands.hpp"
#include "depmod/index_reader.hpp"
#include "elf/module_file.hpp"
#include "loader/loader.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/parameters.hpp"
#include "loader/resolver.hpp"
#include "loader/sandbox_support.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

namespace {

struct Options {
    bool all = false;
    bool remove = false;
    bool resolve_only = false;
    bool ignore_commands = false;
    bool use_blacklist = false;
    bool show_depends = false;
    bool show_config = false;
    bool dry_run = false;
    bool first_time = false;
    bool remove_holders = false;   ///< --remove-holders (--remove-dependencies)
    unsigned wait_ms = 0;          ///< -w, --wait MSEC
    bool show_modversions = false; ///< --show-modversions, --dump-modversions
    bool show_exports = false;     ///< --show-exports
    bool quiet = false;
    sys::ForceFlags force{}; ///< -f (both), --force-vermagic, --force-modversion
    int verbose = 0;
    std::vector<std::string> config_paths;
    std::string root;
    std::string version;
    std::string sandbox_dir;
};

void help(const char* self)
{
    std::printf("Usage:\n"
                "\t%s [options] [-i] [-b] modulename [parameters...]\n"
                "\t%s [options] -a [-i] [-b] modulename [modulename...]\n"
                "\t%s [options] -r [-i] modulename [modulename...]\n"
                "\t%s [options] -c\n"
                "\n"
                "Options:\n"
                "\t-a, --all                   Consider every non-argument to be a module name\n"
                "\t-r, --remove                Remove modules instead of inserting\n"
                "\t    --remove-dependencies   Deprecated: use --remove-holders\n"
                "\t    --remove-holders        Also remove module holders (use together with "
                "-r)\n"
                "\t-w, --wait <MSEC>           When removing a module, wait up to MSEC for\n"
                "\t                            module's refcount to become 0 so it can be\n"
                "\t                            removed (use together with -r)\n"
                "\t    --first-time            Fail if module already inserted or removed\n"
                "\t-i, --ignore-install        Ignore install commands\n"
                "\t-i, --ignore-remove         Ignore remove commands\n"
                "\t-b, --use-blacklist         Apply blacklist to resolved alias.\n"
                "\t-f, --force                 Force module insertion or removal.\n"
                "\t                            implies --force-modversions and\n"
                "\t                            --force-vermagic\n"
                "\t    --force-modversion      Ignore module's version\n"
                "\t    --force-vermagic        Ignore module's version magic\n"
                "\t-R, --resolve-alias         Only lookup and print alias and exit\n"
                "\t-D, --show-depends          Only print module dependencies and exit\n"
                "\t-c, --show-config           Print out known configuration and exit\n"
                "\t    --show-modversions      Dump module symbol version and exit\n"
                "\t    --dump-modversions      Same as --show-modversions\n"
                "\t    --show-exports          Only print module exported symbol versions and "
                "exit\n"
                "\t-n, --dry-run               Do not execute operations, just print out\n"
                "\t-C, --config=FILE           Use FILE instead of default search paths\n"
                "\t-d, --dirname=DIR           Use DIR as filesystem root for /lib/modules\n"
                "\t-S, --set-version=VERSION   Use VERSION instead of `uname -r`\n"
                "\t    --sandbox-kernel=DIR    Load into kmodd's simulated kernel kept in DIR\n"
                "\t-q, --quiet                 disable messages\n"
                "\t-v, --verbose               enables more messages\n"
                "\t-V, --version               show version\n"
                "\t-h, --help                  show this help\n",
                self, self, self, self);
}

/// modprobe's messages: stderr, or syslog with -s.
ToolLog& messages()
{
    static ToolLog log("modprobe");
    return log;
}

/// The end of -c, as kmod's: every alias of modules.alias.bin and modules.symbols.bin as
/// "alias KEY VALUE", in the indexes' key order (an index that cannot be read adds nothing).
void dump_indexes(const std::string& module_dir)
{
    std::puts("\n# End of configuration files. Dumping indexes now:\n");
    for (const char* file : {"modules.alias.bin", "modules.symbols.bin"}) {
        auto index = depmod::IndexReader::open(module_dir + "/" + file);
        if (!index)
            continue;
        index->dump([](std::string_view key, const depmod::IndexReader::Value& value) {
            std::printf("alias %.*s %.*s\n", static_cast<int>(key.size()), key.data(),
                        static_cast<int>(value.text.size()), value.text.data());
        });
    }
}

/// --show-modversions and --show-exports: "0x%08x\t<symbol>" for each __versions record, or
/// each exported symbol with its CRC, of the module file `path` (compressed or not).
int show_symbol_versions(const std::string& path, const Options& options)
{
    auto fail = [&](const std::string& message) {
        if (!options.quiet)
            messages().say("FATAL", message);
        return 1;
    };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return fail("Module " + path + " not found.");
    const std::string what = options.show_modversions ? "modversions" : "symbols";
    auto bytes = base::read_file(AT_FDCWD, path);
    if (bytes && elf::detect_compression(*bytes) != elf::Compression::None)
        bytes = elf::decompress(*bytes);
    if (!bytes)
        return fail("could not get " + what + " of " + path + ": " +
                    std::strerror(bytes.error().code));
    auto print = [](const auto& symbols) {
        for (const auto& symbol : symbols)
            std::printf("0x%08" PRIx64 "\t%s\n", symbol.crc, symbol.name.c_str());
    };
    if (options.show_modversions) {
        auto records = elf::read_modversions(*bytes);
        if (!records)
            return fail("could not get " + what + " of " + path + ": " +
                        std::strerror(records.error().code));
        print(*records);
        return 0;
    }
    auto exports = elf::read_exported_symbols(*bytes);
    if (!exports)
        return fail("could not get " + what + " of " + path + ": " +
                    std::strerror(exports.error().code));
    print(*exports);
    return 0;
}

void print_step(const loader::ProbeStep& step)
{
    switch (step.kind) {
    case loader::ProbeStep::Kind::Insert:
        std::printf("insmod %s %s\n", step.module->path->c_str(), step.options.c_str());
        break;
    case loader::ProbeStep::Kind::Install:
        std::printf("install %s %s\n", step.module->install_command->c_str(), step.options.c_str());
        break;
    case loader::ProbeStep::Kind::Builtin:
        std::printf("builtin %s\n", step.module->name.c_str());
        break;
    case loader::ProbeStep::Kind::Missing:
        break;
    }
}

class Session {
public:
    Session(Options options, loader::ModprobeConfig config, depmod::ModuleDatabase database)
        : options_(std::move(options)), config_(std::move(config)), database_(std::move(database)),
          resolver_(database_, config_)
    {
    }

    int open_kernel()
    {
        if (options_.sandbox_dir.empty()) {
            kernel_ = loader::make_system_kernel();
            return 0;
        }
        auto kernel =
            sys::make_sandbox_kernel(options_.sandbox_dir, loader::make_module_inspector(),
                                     loader::make_module_symbol_predicate(database_));
        if (!kernel) {
            error("FATAL", kernel.error().message);
            return 1;
        }
        kernel_ = std::move(*kernel);
        auto state = loader::StateStore::open(options_.sandbox_dir);
        if (!state) {
            error("FATAL", state.error().message);
            return 1;
        }
        state_ = std::make_unique<loader::StateStore>(std::move(*state));
        return 0;
    }

    int insert(const std::string& name, const std::string& params)
    {
        if (options_.resolve_only) {
            auto modules = resolver_.lookup(name);
            if (modules.empty()) {
                not_found(name);
                return 1;
            }
            for (const auto* m : modules)
                std::printf("%s\n", m->name.c_str());
            return 0;
        }
        if (options_.show_depends)
            return show_depends(name, params);
        loader::Loader loader(resolver_, *kernel_, state_.get());
        loader::LoadRequest request{name,
                                    params,
                                    options_.first_time,
                                    options_.ignore_commands,
                                    options_.use_blacklist,
                                    options_.dry_run,
                                    options_.force};
        request.name_may_be_path = true;
        bool show = options_.verbose > 0 || options_.dry_run;
        auto report = loader.load(request, [&](const loader::ProbeStep& step) {
            if (show)
                print_step(step);
        });
        warn_if_unsaved();
        if (report)
            return 0;
        if (report.error().code == ENOENT && report.error().message.starts_with("module '")) {
            not_found(name);
            return 1;
        }
        const bool is_path_error = report.error().message.starts_with(loader::kModuleFileError);
        error(is_path_error ? "FATAL" : "ERROR", report.error().message);
        return 1;
    }

    int remove(const std::string& name)
    {
        if (loader::is_module_path_argument(name)) {
            error("FATAL", "Module " + name + " not found."); // as kmod: -r takes names only
            return 1;
        }
        loader::Loader loader(resolver_, *kernel_, state_.get());
        loader::UnloadRequest request{name,
                                      options_.first_time,
                                      options_.ignore_commands,
                                      options_.dry_run,
                                      options_.remove_holders,
                                      options_.wait_ms,
                                      options_.force.any()};
        auto report = loader.unload(request);
        warn_if_unsaved();
        if (!report) {
            error("FATAL", report.error().message);
            return 1;
        }
        if (options_.verbose > 0 || options_.dry_run) {
            for (const auto& removed : report->removed)
                std::printf("rmmod %s\n", removed.c_str());
        }
        return 0;
    }

private:
    /// The sandbox's records could not be written: the kernel changed all the same.
    void warn_if_unsaved()
    {
        if (state_ != nullptr && state_->unsaved())
            error("WARNING",
                  "the records of who loaded what were not written: " + state_->unsaved()->message);
    }

    /// -D: kmod's --show-depends, which ignores what is loaded.
    int show_depends(const std::string& name, const std::string& params)
    {
        if (loader::is_module_path_argument(name)) {
            // As kmod's, -D lists what any existing path would insert, file or not.
            auto file = loader::find_module_file(resolver_, name);
            if (!file) {
                error("FATAL", file.error().message);
                return 1;
            }
            loader::ProbeFlags flags{options_.ignore_commands, options_.use_blacklist};
            for (const auto& step : resolver_.probe_list(file->module, flags, params))
                print_step(step);
            return 0;
        }
        auto modules = resolver_.lookup(name);
        if (modules.empty()) {
            not_found(name);
            return 1;
        }
        for (auto* target : modules) {
            loader::ProbeFlags flags{options_.ignore_commands, options_.use_blacklist};
            for (const auto& step : resolver_.probe_list(target, flags, params))
                print_step(step);
        }
        return 0;
    }

    void not_found(const std::string& name) const
    {
        error(options_.all ? "WARNING" : "FATAL",
              "Module " + name + " not found in directory " + database_.module_dir());
    }

    void error(const char* level, const std::string& message) const
    {
        if (!options_.quiet)
            messages().say(level, message);
    }

    Options options_;
    loader::ModprobeConfig config_;
    depmod::ModuleDatabase database_;
    loader::Resolver resolver_;
    std::unique_ptr<sys::Kernel> kernel_;
    std::unique_ptr<loader::StateStore> state_;
};

} // namespace

int run_modprobe(int argc, char** argv)
{
    enum {
        kFirstTime = 1000,
        kSandbox,
        kRemoveHolders,
        kIgnored,
        kForceVermagic,
        kForceModversion,
        kShowModversions,
        kShowExports
    };
    static const option long_options[] = {
        {"all", no_argument, nullptr, 'a'},
        {"remove", no_argument, nullptr, 'r'},
        {"remove-dependencies", no_argument, nullptr, kRemoveHolders},
        {"remove-holders", no_argument, nullptr, kRemoveHolders},
        {"resolve-alias", no_argument, nullptr, 'R'},
        {"first-time", no_argument, nullptr, kFirstTime},
        {"ignore-install", no_argument, nullptr, 'i'},
        {"ignore-remove", no_argument, nullptr, 'i'},
        {"use-blacklist", no_argument, nullptr, 'b'},
        {"force", no_argument, nullptr, 'f'},
        {"wait", required_argument, nullptr, 'w'},
        {"version", no_argument, nullptr, 'V'},
        {"force-vermagic", no_argument, nullptr, kForceVermagic},
        {"force-modversion", no_argument, nullptr, kForceModversion},
        {"show-depends", no_argument, nullptr, 'D'},
        {"showconfig", no_argument, nullptr, 'c'},
        {"show-config", no_argument, nullptr, 'c'},
        {"show-modversions", no_argument, nullptr, kShowModversions},
        {"dump-modversions", no_argument, nullptr, kShowModversions},
        {"show-exports", no_argument, nullptr, kShowExports},
        {"dry-run", no_argument, nullptr, 'n'},
        {"show", no_argument, nullptr, 'n'},
        {"config", required_argument, nullptr, 'C'},
        {"dirname", required_argument, nullptr, 'd'},
        {"set-version", required_argument, nullptr, 'S'},
        {"sandbox-kernel", required_argument, nullptr, kSandbox},
        {"syslog", no_argument, nullptr, 's'},
        {"quiet", no_argument, nullptr, 'q'},
        {"verbose", no_argument, nullptr, 'v'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    Options options;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "arRibfw:DcnC:d:S:sqvVh", long_options, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'a':
            options.all = true;
            break;
        case 'r':
            options.remove = true;
            break;
        case 'R':
            options.resolve_only = true;
            break;
        case 'i':
            options.ignore_commands = true;
            break;
        case 'b':
            options.use_blacklist = true;
            break;
        case 'f':
            options.force = {true, true};
            break;
        case kShowModversions:
            options.show_modversions = true;
            break;
        case kShowExports:
            options.show_exports = true;
            break;
        case 'w': {
            char* end = nullptr;
            errno = 0;
            const unsigned long value = std::strtoul(optarg, &end, 0);
            if (*end != '\0' || errno != 0 || value > UINT_MAX) {
                std::fprintf(stderr, "modprobe: ERROR: unexpected wait value '%s'.\n", optarg);
                return 1;
            }
            options.wait_ms = static_cast<unsigned>(value);
            break;
        }
        case 'V':
            std::puts("kmodctl " KMODD_VERSION);
            return 0;
        case kForceVermagic:
            options.force.vermagic = true;
            break;
        case kForceModversion:
            options.force.modversions = true;
            break;
        case 'D':
            options.show_depends = options.dry_run = true;
            break;
        case 'c':
            options.show_config = true;
            break;
        case 'n':
            options.dry_run = true;
            break;
        case 'C':
            options.config_paths.emplace_back(optarg);
            break;
        case 'd':
            options.root = optarg;
            break;
        case 'S':
            options.version = optarg;
            break;
        case 's':
            messages().use_syslog();
            break;
        case 'q':
            options.quiet = true;
            break;
        case 'v':
            ++options.verbose;
            break;
        case kFirstTime:
            options.first_time = true;
            break;
        case kSandbox:
            options.sandbox_dir = optarg;
            break;
        case kRemoveHolders:
            options.remove_holders = true;
            break;
        case 'h':
            help(argv[0]);
            return 0;
        default:
            return 1;
        }
    }
    std::vector<std::string> args(argv + optind, argv + argc);
    if (loader::command_depth() > loader::kMaxCommandDepth) {
        std::fprintf(stderr,
                     "modprobe: FATAL: install/remove commands call modprobe %d levels deep: "
                     "they form a loop; check the install and remove lines of modprobe.d\n",
                     loader::command_depth());
        return 1;
    }
    if (args.empty() && !options.show_config) {
        messages().error("missing parameters. See -h.");
        return 1;
    }

    std::string version = options.version;
    if (version.empty()) {
        utsname un{};
        ::uname(&un);
        version = un.release;
    }
    const std::string module_dir = options.root + "/lib/modules/" + version;

    index::Diagnostics diagnostics;
    std::string cmdline;
    if (auto text = base::read_file(AT_FDCWD, "/proc/cmdline"))
        cmdline = std::move(*text);
    auto config = loader::ModprobeConfig::load(options.config_paths.empty()
                                                   ? loader::ModprobeConfig::default_paths()
                                                   : options.config_paths,
                                               module_dir, cmdline, diagnostics);
    if (!options.quiet) {
        for (const auto& d : diagnostics) {
            if (d.level == index::Diagnostic::Level::Error)
                messages().error(d.message);
        }
    }
    if (options.show_config) {
        std::fputs(config.dump().c_str(), stdout);
        dump_indexes(module_dir);
        return 0;
    }
    if (options.show_modversions || options.show_exports)
        return show_symbol_versions(args[0], options);
    auto database = depmod::ModuleDatabase::open(module_dir);
    if (!database) {
        messages().say("FATAL", database.error().message);
        return 1;
    }
    Session session(options, std::move(config), std::move(*database));
    if (!options.show_depends && !options.resolve_only) {
        if (int status = session.open_kernel(); status != 0)
            return status;
    }
    // As kmod: -a and -r take every argument as a module; otherwise the first is the module
    // and the rest are its parameters. The exit status is that of the last failure.
    int status = 0;
    if (options.all || options.remove) {
        for (const std::string& name : args) {
            int result = options.remove ? session.remove(name) : session.insert(name, "");
            if (result != 0)
                status = result;
        }
        return status;
    }
    return session.insert(args[0], loader::join_parameters(std::span(args).subspan(1)));
}

} // namespace kmodd::client
