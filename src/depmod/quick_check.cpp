// SPDX-License-Identifier: LGPL-2.1-or-later
// depmod -A's check: is the index newer than every module file?
#include "depmod/quick_check.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string_view>

#include "index/names.hpp"

namespace kmodd::depmod {

namespace {

/// 1: nothing newer, 0: something newer, -1: error. Seconds are compared, as kmod 30 does.
int check_dir(int dir_fd, time_t mtime, int depth)
{
    if (depth > 64)
        return -1;
    int fd = ::dup(dir_fd);
    DIR* dir = fd < 0 ? nullptr : ::fdopendir(fd);
    if (dir == nullptr) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    int result = 1;
    while (const dirent* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name == "." || name == ".." || name == "build" || name == "source")
            continue;
        struct stat st {};
        if (::fstatat(dir_fd, entry->d_name, &st, 0) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = ::openat(dir_fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                continue;
            result = check_dir(sub, mtime, depth + 1);
            ::close(sub);
        } else if (index::has_module_extension(name) && st.st_mtime > mtime) {
            result = 0;
        }
        if (result != 1)
            break;
    }
    ::closedir(dir);
    return result;
}

} // namespace

bool is_index_up_to_date(const std::string& module_dir)
{
    int dir_fd = ::open(module_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return false;
    struct stat st {};
    bool up_to_date = false;
    if (::fstatat(dir_fd, "modules.dep", &st, 0) == 0)
        up_to_date = check_dir(dir_fd, st.st_mtime, 0) == 1;
    ::close(dir_fd);
    return up_to_date;
}

} // namespace kmodd::depmod
