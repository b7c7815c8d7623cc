// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl check: whether a module would load into the running kernel, and if not why and
// how to fix it, found without touching the kernel (loader::check_load).
#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.hpp"
#include "commands.hpp"
#include "depmod/index_reader.hpp"
#include "index/names.hpp"
#include "loader/load_check.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/resolver.hpp"

namespace kmodd::client {
namespace {

constexpr const char* kUsage =
    "Usage: kmodctl check [--kernel VERSION] [-b DIR] [--root DIR] [--json] FILE.ko|MODULE\n"
    "                     [PARAM[=VALUE]...]\n"
    "Says whether the module would load into the running kernel and, if not, why and how\n"
    "to fix it, without loading anything: its vermagic against the kernel's, its signature\n"
    "against signature enforcement and the kernel's keys, every undefined symbol against\n"
    "the index and the kernel's exports, and the parameters against the module's own.\n"
    "  --kernel VERSION   the release whose index and modules to compare with (default:\n"
    "                     the running one)\n"
    "  -b, --basedir DIR  the root holding lib/modules (default /); modprobe.d is read\n"
    "                     from / all the same, as modprobe -d does\n"
    "  --root DIR         read the kernel's state (proc/, sys/) and the signing tools from\n"
    "                     DIR instead of / (a container's or a test's view)\n"
    "  --json             print the findings as one JSON object\n"
    "Exit status: 0 when the load should succeed, 1 when it would fail, 2 on a usage error\n"
    "or a module that cannot be found or read.\n";

struct Options {
    std::string release;
    std::string basedir = "/";
    std::string root = "/";
    bool json = false;
    std::string module;
    std::vector<std::pair<std::string, std::optional<std::string>>> params;
};

/// Options anywhere before the module; what follows it are its parameters.
std::optional<Options> parse(int argc, char** argv, bool* show_help)
{
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (!options.module.empty()) {
            size_t equals = arg.find('=');
            if (equals == std::string_view::npos)
                options.params.emplace_back(std::string(arg), std::nullopt);
            else
                options.params.emplace_back(std::string(arg.substr(0, equals)),
                                            std::string(arg.substr(equals + 1)));
            continue;
        }
        auto value = [&](std::string_view name, std::string& to) {
            if (arg == name) {
                if (i + 1 >= argc)
                    return false;
                to = argv[++i];
                return true;
            }
            to = std::string(arg.substr(name.size() + 1));
            return true;
        };
        auto is = [&](std::string_view name) {
            return arg == name ||
                   (name.starts_with("--") && arg.starts_with(std::string(name) + "="));
        };
        if (arg == "check")
            continue; // the command word itself
        if (arg == "-h" || arg == "--help") {
            *show_help = true;
            return options;
        }
        if (arg == "--json") {
            options.json = true;
        } else if (is("--kernel")) {
            if (!value("--kernel", options.release))
                return std::nullopt;
        } else if (arg == "-b" || is("--basedir")) {
            if (!value(arg == "-b" ? "-b" : "--basedir", options.basedir))
                return std::nullopt;
        } else if (is("--root")) {
            if (!value("--root", options.root))
                return std::nullopt;
        } else if (arg.starts_with("-")) {
            std::fprintf(stderr, "kmodctl check: unknown option '%s'\n", argv[i]);
            return std::nullopt;
        } else {
            options.module = std::string(arg);
        }
    }
    if (options.module.empty())
        return std::nullopt;
    if (!options.root.ends_with('/'))
        options.root += '/';
    return options;
}

bool is_path(std::string_view argument)
{
    return argument.find('/') != std::string_view::npos || argument.ends_with(".ko") ||
           argument.ends_with(".ko.xz") || argument.ends_with(".ko.zst") ||
           argument.ends_with(".ko.gz");
}

const char* severity_name(loader::Severity severity)
{
    switch (severity) {
    case loader::Severity::Ok:
        return "ok";
    case loader::Severity::Warning:
        return "warning";
    case loader::Severity::Problem:
        return "problem";
    }
    return "?";
}

/// The module a name, alias or path stands for: its name and file; a built-in module
/// has no file. Nullopt when nothing matches.
struct Found {
    std::string name;
    std::string path;
    bool is_builtin = false;
};
std::optional<Found> find_module(const std::string& argument, depmod::ModuleDatabase* database,
                                 const loader::ModprobeConfig& config)
{
    if (is_path(argument)) {
        std::string path = base::absolute_from_cwd(argument);
        return Found{index::modname_from_path(path), path};
    }
    if (database == nullptr)
        return std::nullopt;
    loader::Resolver resolver(*database, config);
    for (loader::Module* module : resolver.lookup(argument)) {
        resolver.dependencies(*module);
        if (resolver.is_builtin(*module))
            return Found{module->name, "", true};
        if (module->path)
            return Found{module->name, *module->path};
    }
    return std::nullopt;
}

void print_json(const Found& found, const std::string& release,
                const std::vector<loader::Finding>& findings, size_t problems)
{
    nlohmann::json list = nlohmann::json::array();
    for (const auto& finding : findings)
        list.push_back({{"check", finding.check},
                        {"severity", severity_name(finding.severity)},
                        {"message", finding.message},
                        {"fix", finding.fix}});
    nlohmann::json out = {{"module", found.name},
                          {"path", found.path},
                          {"release", release},
                          {"would_load", problems == 0},
                          {"findings", std::move(list)}};
    std::printf("%s\n", out.dump(2).c_str());
}

void print_text(const Found& found, const std::string& release,
                const std::vector<loader::Finding>& findings, size_t problems)
{
    std::printf("%s (%s) on %s:\n", found.name.c_str(), found.path.c_str(), release.c_str());
    for (const auto& finding : findings) {
        std::printf("  %-8s %-10s %s\n", severity_name(finding.severity), finding.check.c_str(),
                    finding.message.c_str());
        if (!finding.fix.empty() && finding.severity != loader::Severity::Ok)
            std::printf("  %-8s %-10s fix: %s\n", "", "", finding.fix.c_str());
    }
    std::printf(problems == 0 ? "The load should succeed.\n"
                              : "The load would fail (%zu problem(s)).\n",
                problems);
}

} // namespace

int run_check(int argc, char** argv)
{
    bool show_help = false;
    auto options = parse(argc, argv, &show_help);
    if (show_help) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (!options) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const sys::KernelFacts kernel = sys::read_kernel_facts(options->root, options->release);
    const std::string module_dir = options->basedir + (options->basedir.ends_with('/') ? "" : "/") +
                                   "lib/modules/" + kernel.release;
    std::unique_ptr<depmod::ModuleDatabase> database;
    if (auto opened = depmod::ModuleDatabase::open(module_dir))
        database = std::make_unique<depmod::ModuleDatabase>(std::move(*opened));
    index::Diagnostics ignored;
    const loader::ModprobeConfig config = loader::ModprobeConfig::load(
        loader::ModprobeConfig::default_paths(), module_dir,
        base::read_file(AT_FDCWD, options->root + "proc/cmdline").value_or(""), ignored);

    auto found = find_module(options->module, database.get(), config);
    if (!found) {
        std::fprintf(stderr, "kmodctl check: module '%s' not found in %s\n",
                     options->module.c_str(), module_dir.c_str());
        return 2;
    }
    if (found->is_builtin) {
        std::printf("%s is built into the kernel %s: there is nothing to load\n",
                    found->name.c_str(), kernel.release.c_str());
        return 0;
    }
    auto module = loader::read_module_image(found->path);
    if (!module) {
        std::fprintf(stderr, "kmodctl check: %s\n", module.error().message.c_str());
        return 2;
    }
    loader::CheckSubject subject = loader::make_subject(found->name, found->path, *module);
    subject.params = options->params;
    const loader::IndexView view =
        database ? loader::make_index_view(*database, config, found->name, found->path)
                 : loader::IndexView{};
    const auto findings = loader::check_load(subject, kernel, view);
    const auto problems = static_cast<size_t>(
        std::count_if(findings.begin(), findings.end(), [](const loader::Finding& finding) {
            return finding.severity == loader::Severity::Problem;
        }));
    if (options->json)
        print_json(*found, kernel.release, findings, problems);
    else
        print_text(*found, kernel.release, findings, problems);
    return problems == 0 ? 0 : 1;
}

} // namespace kmodd::client
