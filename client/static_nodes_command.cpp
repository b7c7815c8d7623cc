// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmod static-nodes`: the device nodes of modules.devname, in kmod 30's three formats.
#include <getopt.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "base/file.hpp"
#include "commands.hpp"

namespace kmodd::client {

namespace {

struct Node {
    const char* module;
    const char* device;
    char type; ///< 'c' or 'b'
    unsigned major;
    unsigned minor;
};

void write_human(std::FILE* out, const Node& node)
{
    std::fprintf(out,
                 "Module: %s\n"
                 "\tDevice node: /dev/%s\n"
                 "\t\tType: %s device\n"
                 "\t\tMajor: %u\n"
                 "\t\tMinor: %u\n",
                 node.module, node.device, node.type == 'c' ? "character" : "block", node.major,
                 node.minor);
}

void write_tmpfiles(std::FILE* out, const Node& node)
{
    std::string_view device = node.device;
    if (size_t slash = device.rfind('/'); slash != std::string_view::npos)
        std::fprintf(out, "d /dev/%.*s 0755 - - -\n", static_cast<int>(slash), node.device);
    std::fprintf(out, "%c! /dev/%s 0600 - - - %u:%u\n", node.type, node.device, node.major,
                 node.minor);
}

void write_devname(std::FILE* out, const Node& node)
{
    std::fprintf(out, "%s %s %c%u:%u\n", node.module, node.device, node.type, node.major,
                 node.minor);
}

struct Format {
    const char* name;
    void (*write)(std::FILE*, const Node&);
};

constexpr Format kFormats[] = {
    {"human", write_human}, {"tmpfiles", write_tmpfiles}, {"devname", write_devname}};

void help()
{
    std::printf("Usage:\n"
                "\tkmod static-nodes [options]\n"
                "\n"
                "kmod static-nodes outputs the static-node information of the currently running "
                "kernel.\n"
                "\n"
                "Options:\n"
                "\t-f, --format=FORMAT  choose format to use: see \"Formats\"\n"
                "\t-o, --output=FILE    write output to file\n"
                "\t-h, --help           show this help\n"
                "\n"
                "Formats:\n"
                "\thuman        (default) a human readable format. Do not parse.\n"
                "\ttmpfiles     the tmpfiles.d(5) format used by systemd-tmpfiles.\n"
                "\tdevname      the modules.devname format.\n");
}

/// Creates the directories above `path` (mode 0755), as `mkdir -p $(dirname path)`. Errors:
/// the errno of the mkdir that failed, ENOTDIR for a parent that is something else.
base::Result<void> make_parents(const std::string& path)
{
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return {};
    return base::make_directories(path.substr(0, slash), 0755);
}

} // namespace

int run_static_nodes(int argc, char** argv)
{
    static const option kOptions[] = {{"output", required_argument, nullptr, 'o'},
                                      {"format", required_argument, nullptr, 'f'},
                                      {"help", no_argument, nullptr, 'h'},
                                      {nullptr, 0, nullptr, 0}};
    // Without -o: standard output itself. (kmod 30 opens /dev/stdout, which truncates a file
    // that stdout is redirected to and fails where /dev has no such link; kmod 34 does not.)
    std::string output;
    const Format* format = &kFormats[0];
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "o:f:h", kOptions, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'o':
            output = optarg;
            break;
        case 'f': {
            const Format* chosen = nullptr;
            for (const Format& candidate : kFormats) {
                if (std::strcmp(candidate.name, optarg) == 0)
                    chosen = &candidate;
            }
            if (chosen == nullptr) {
                std::fprintf(stderr, "Unknown format: '%s'.\n", optarg);
                help();
                return 1;
            }
            format = chosen;
            break;
        }
        case 'h':
            help();
            return 0;
        default:
            return 1;
        }
    }

    utsname kernel{};
    if (::uname(&kernel) < 0) {
        std::fputs("Error: uname failed!\n", stderr);
        return 1;
    }
    const std::string release = kernel.release;
    std::FILE* in = std::fopen(("/lib/modules/" + release + "/modules.devname").c_str(), "re");
    if (in == nullptr) {
        if (errno == ENOENT) {
            std::fprintf(stderr, "Warning: /lib/modules/%s/modules.devname not found - ignoring\n",
                         release.c_str());
            return 0;
        }
        std::fprintf(stderr, "Error: could not open /lib/modules/%s/modules.devname - %s\n",
                     release.c_str(), std::strerror(errno));
        return 1;
    }
    if (auto made = output.empty() ? base::Result<void>{} : make_parents(output); !made) {
        std::fprintf(stderr, "Error: could not create parent directory for %s - %s.\n",
                     output.c_str(), std::strerror(made.error().code));
        std::fclose(in);
        return 1;
    }
    std::FILE* out = output.empty() ? stdout : std::fopen(output.c_str(), "we");
    if (out == nullptr) {
        std::fprintf(stderr, "Error: could not create %s - %s\n", output.c_str(),
                     std::strerror(errno));
        std::fclose(in);
        return 1;
    }

    int status = 0;
    char line[4096];
    while (std::fgets(line, sizeof line, in) != nullptr) {
        if (line[0] == '#')
            continue;
        // As kmod: a line longer than the buffer is read on as the next line.
        char module[4096];
        char device[4096];
        Node node{module, device, '\0', 0, 0};
        int matched = std::sscanf(line, "%4095s %4095s %c%u:%u", module, device, &node.type,
                                  &node.major, &node.minor);
        if (matched != 5 || (node.type != 'c' && node.type != 'b')) {
            std::fprintf(stderr, "Error: invalid devname entry: %s", line);
            status = 1;
            continue;
        }
        format->write(out, node);
    }
    std::fclose(in);
    if (out != stdout && std::fclose(out) != 0) {
        std::fprintf(stderr, "Error: could not write %s - %s\n", output.c_str(),
                     std::strerror(errno));
        return 1;
    }
    return status;
}

} // namespace kmodd::client
