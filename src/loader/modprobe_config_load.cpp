// SPDX-License-Identifier: LGPL-2.1-or-later
// Which files make up the modprobe configuration, in kmod's order (kmod_config_new).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/file.hpp"
#include "loader/modprobe_config.hpp"

namespace kmodd::loader {

namespace {

using index::Diagnostic;

/// basename -> file to read; the first file entered under a basename keeps it.
using ConfFiles = std::map<std::string, std::string>;

bool is_conf_name(std::string_view name)
{
    return !name.starts_with('.') && name.size() > 5 && name.ends_with(".conf");
}

void list_conf_files(const std::string& path, ConfFiles& files, index::Diagnostics& diagnostics)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return; // kmod skips missing paths silently
    if (!S_ISDIR(st.st_mode)) {
        size_t slash = path.rfind('/');
        files.emplace(slash == std::string::npos ? path : path.substr(slash + 1), path);
        return;
    }
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
        int err = errno;
        diagnostics.push_back(
            {Diagnostic::Level::Error, "opendir(" + path + "): " + std::strerror(err)});
        return;
    }
    while (const dirent* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (!is_conf_name(name))
            continue;
        struct stat est {};
        if (::fstatat(::dirfd(dir), entry->d_name, &est, 0) == 0 && S_ISDIR(est.st_mode)) {
            diagnostics.push_back({Diagnostic::Level::Error,
                                   "Directories inside directories are not supported: " + path +
                                       "/" + std::string(name)});
            continue;
        }
        files.emplace(std::string(name), path + "/" + std::string(name));
    }
    ::closedir(dir);
}

} // namespace

ModprobeConfig ModprobeConfig::load(const std::vector<std::string>& paths,
                                    const std::string& module_dir, std::string_view cmdline,
                                    index::Diagnostics& diagnostics)
{
    ConfFiles files;
    if (!module_dir.empty()) {
        files.emplace("modules.softdep", module_dir + "/modules.softdep");
        files.emplace("modules.weakdep", module_dir + "/modules.weakdep");
    }
    for (const std::string& path : paths)
        list_conf_files(path, files, diagnostics);

    ModprobeConfig config;
    for (const auto& [name, file] : files) {
        auto text = base::read_file(AT_FDCWD, file);
        if (!text) {
            // kmod skips a file it cannot open without a word; say why unless it is absent.
            if (text.error().code != ENOENT)
                diagnostics.push_back({Diagnostic::Level::Info, text.error().message});
            continue;
        }
        config.parse(*text, file, diagnostics);
    }
    config.parse_kernel_cmdline(cmdline, diagnostics);
    return config;
}

} // namespace kmodd::loader
