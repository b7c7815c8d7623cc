// SPDX-License-Identifier: LGPL-2.1-or-later
// `insmod`: kmod 30's insmod, one module file into the kernel, no dependencies.
#include <getopt.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "loader/sandbox_support.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

namespace {

void help(const std::string& self)
{
    std::printf("Usage:\n"
                "\t%s [options] filename [args]\n"
                "Options:\n"
                "\t-V, --version     show version\n"
                "\t-h, --help        show this help\n",
                self.c_str());
}

/// insmod's words for the kernel's answers to init_module.
const char* insert_strerror(int code)
{
    switch (code) {
    case ENOEXEC:
        return "Invalid module format";
    case ENOENT:
        return "Unknown symbol in module";
    case ESRCH:
        return "Module has wrong symbol version";
    case EINVAL:
        return "Invalid parameters";
    default:
        return std::strerror(code);
    }
}

} // namespace

int run_insmod(int argc, char** argv)
{
    static const option kOptions[] = {{"version", no_argument, nullptr, 'V'},
                                      {"help", no_argument, nullptr, 'h'},
                                      {nullptr, 0, nullptr, 0}};
    const std::string self = program_name(argv[0]);
    ToolLog log(self);
    sys::ForceFlags force;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "psfVh", kOptions, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'p':
        case 's':
            break; // accepted and ignored, as kmod does
        case 'f':
            force = {true, true}; // as kmod: --force-vermagic and --force-modversion
            break;
        case 'V':
            std::puts("kmodctl " KMODD_VERSION);
            return 0;
        case 'h':
            help(self);
            return 0;
        default:
            return 1;
        }
    }
    if (optind >= argc) {
        log.error("missing filename.");
        return 1;
    }
    const std::string file = argv[optind];
    if (file == "-") {
        log.error("this tool does not support loading from stdin!");
        return 1;
    }
    std::string params;
    for (int i = optind + 1; i < argc; ++i) {
        if (!params.empty())
            params += ' ';
        params += argv[i];
    }
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        log.error("could not load module " + file + ": " + std::strerror(errno));
        return 1;
    }
    auto kernel = loader::make_system_kernel();
    auto inserted = force.any() ? kernel->insert_module_forcing(file, params, force)
                                : kernel->insert_module(file, params);
    if (!inserted) {
        log.error("could not insert module " + file + ": " +
                  insert_strerror(inserted.error().code));
        return 1;
    }
    return 0;
}

} // namespace kmodd::client
