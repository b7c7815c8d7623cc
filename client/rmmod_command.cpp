// SPDX-License-Identifier: LGPL-2.1-or-later
// `rmmod`: kmod 30's rmmod, its checks, messages and exit status.
#include <getopt.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "commands.hpp"
#include "depmod/index_reader.hpp"
#include "index/names.hpp"
#include "loader/sandbox_support.hpp"
#include "sys/module_sysfs.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

namespace {

void help(const std::string& self)
{
    std::printf("Usage:\n"
                "\t%s [options] modulename ...\n"
                "Options:\n"
                "\t-f, --force       forces a module unload and may crash your\n"
                "\t                  machine. This requires Forced Module Removal\n"
                "\t                  option in your kernel. DANGEROUS\n"
                "\t-s, --syslog      print to syslog, not stderr\n"
                "\t-v, --verbose     enables more messages\n"
                "\t-V, --version     show version\n"
                "\t-h, --help        show this help\n",
                self.c_str());
}

/// kmod's module name of an argument: the file name without its extensions for an existing
/// path, the argument itself otherwise, cut at the first '.' and with '-' as '_'.
std::string module_name_of(const std::string& argument)
{
    struct stat st {};
    return ::stat(argument.c_str(), &st) == 0 ? index::modname_from_path(argument)
                                              : index::normalize_modname(argument);
}

class Remover {
public:
    Remover(ToolLog& log, bool force) : log_(log), force_(force)
    {
        utsname kernel{};
        if (::uname(&kernel) == 0) {
            auto index = depmod::IndexReader::open(std::string("/lib/modules/") + kernel.release +
                                                   "/modules.builtin.bin");
            if (index)
                builtin_.emplace(std::move(*index));
        }
        kernel_ = loader::make_system_kernel();
    }

    /// Removes one module; false (after saying why) when it is not removed.
    bool remove(const std::string& argument)
    {
        const std::string name = module_name_of(argument);
        if (!force_ && !may_remove(name))
            return false;
        auto removed = force_ ? kernel_->force_remove_module(name) : kernel_->remove_module(name);
        if (removed)
            return true;
        const char* reason = std::strerror(removed.error().code);
        log_.error("could not remove '" + name + "': " + reason);
        log_.error("could not remove module " + argument + ": " + reason);
        return false;
    }

private:
    /// kmod's checks before the syscall: built in, not loaded, held by modules, in use.
    bool may_remove(const std::string& name)
    {
        if (builtin_ && builtin_->lookup(name)) {
            log_.error("Module " + name + " is builtin.");
            return false;
        }
        if (!sysfs_.initstate(name)) {
            log_.error("Module " + name + " is not currently loaded");
            return false;
        }
        auto holders = sysfs_.holders(name);
        if (!holders)
            log_.error(holders.error().message);
        else if (!holders->empty()) {
            std::string text = "Module " + name + " is in use by:";
            for (const std::string& holder : *holders)
                text += " " + holder;
            log_.error(text);
            return false;
        }
        std::string complaint;
        const long users = sysfs_.refcount(name, &complaint);
        if (!complaint.empty())
            log_.error(complaint);
        if (users > 0) {
            log_.error("Module " + name + " is in use");
            return false;
        }
        if (users == -ENOENT)
            log_.error("Module unloading is not supported");
        return users >= 0;
    }

    ToolLog& log_;
    bool force_;
    std::optional<depmod::IndexReader> builtin_;
    sys::ModuleSysfs sysfs_;
    std::unique_ptr<sys::Kernel> kernel_;
};

} // namespace

int run_rmmod(int argc, char** argv)
{
    static const option kOptions[] = {
        {"force", no_argument, nullptr, 'f'},   {"syslog", no_argument, nullptr, 's'},
        {"verbose", no_argument, nullptr, 'v'}, {"version", no_argument, nullptr, 'V'},
        {"help", no_argument, nullptr, 'h'},    {nullptr, 0, nullptr, 0}};
    const std::string self = program_name(argv[0]);
    ToolLog log(self);
    bool force = false;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "fsvVh", kOptions, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'f':
            force = true;
            break;
        case 's':
            log.use_syslog();
            break;
        case 'v':
            break; // more of libkmod's debug messages; kmodctl has none to give
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
        log.error("missing module name.");
        return 1;
    }
    Remover remover(log, force);
    int failures = 0;
    for (int i = optind; i < argc; ++i) {
        if (!remover.remove(argv[i]))
            ++failures;
    }
    return failures == 0 ? 0 : 1;
}

} // namespace kmodd::client
