// SPDX-License-Identifier: LGPL-2.1-or-later
// Loaded modules read the way libkmod reads them: /proc/modules for the list, sysfs for the rest.
#include "sys/module_sysfs.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "base/file.hpp"
#include "base/strings.hpp"

namespace kmodd::sys {

namespace {

/// An empty name is read as libkmod reads it: <sysfs>/module/ itself (a directory, so
/// "coming").
bool is_component(std::string_view name)
{
    return name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

/// libkmod's reading of a number from a sysfs file: strtol, and the number must be followed
/// by white space (sysfs ends its values in a newline). A negative errno otherwise.
long number_in_text(const std::string& text)
{
    const char* begin = text.c_str();
    char* end = nullptr;
    errno = 0;
    long value = std::strtol(begin, &end, 10);
    if (errno != 0)
        return -errno;
    if (end == begin || std::isspace(static_cast<unsigned char>(*end)) == 0)
        return -EINVAL;
    return value;
}

long number_in_file(const std::string& path)
{
    auto text = base::read_file(AT_FDCWD, path);
    return text ? number_in_text(*text) : -text.error().code;
}

/// The first two words of each line, as strtok on " \t" splits them.
std::vector<std::string_view> first_words(std::string_view line, size_t count)
{
    std::vector<std::string_view> words;
    size_t at = 0;
    while (words.size() < count) {
        at = line.find_first_not_of(" \t", at);
        if (at == std::string_view::npos)
            break;
        size_t end = line.find_first_of(" \t", at);
        words.push_back(line.substr(at, end - at));
        if (end == std::string_view::npos)
            break;
        at = end;
    }
    return words;
}

} // namespace

ModuleSysfs::ModuleSysfs(std::string sysfs_root, std::string procfs_root)
    : sysfs_root_(std::move(sysfs_root)), procfs_root_(std::move(procfs_root))
{
}

std::string ModuleSysfs::module_dir(const std::string& name) const
{
    return sysfs_root_ + "/module/" + name;
}

base::Result<std::vector<std::string>> ModuleSysfs::loaded_names() const
{
    auto text = base::read_file(AT_FDCWD, procfs_root_ + "/modules");
    if (!text)
        return base::Unexpected(text.error());
    std::vector<std::string> names;
    for (std::string_view line : base::split_lines(*text)) {
        auto words = first_words(line, 1);
        if (!words.empty())
            names.emplace_back(words[0]);
    }
    return names;
}

long ModuleSysfs::refcount(const std::string& name, std::string* complaint) const
{
    if (!is_component(name))
        return -ENOENT;
    const std::string path = module_dir(name) + "/refcnt";
    auto text = base::read_file(AT_FDCWD, path);
    if (!text)
        return -text.error().code;
    long count = number_in_text(*text);
    if (count < 0 && complaint != nullptr)
        *complaint = "could not read integer from '" + path + "': '" +
                     std::strerror(static_cast<int>(-count)) + "'";
    return count;
}

long ModuleSysfs::size(const std::string& name) const
{
    if (!is_component(name))
        return -ENOENT;
    struct stat st {};
    if (::stat(module_dir(name).c_str(), &st) != 0)
        return -errno;
    long core = number_in_file(module_dir(name) + "/coresize");
    if (core != -ENOENT)
        return core;
    // Kernels before 3.3 have no coresize: the module's line of /proc/modules.
    auto text = base::read_file(AT_FDCWD, procfs_root_ + "/modules");
    if (!text)
        return -text.error().code;
    for (std::string_view line : base::split_lines(*text)) {
        auto words = first_words(line, 2);
        if (words.empty() || words[0] != name)
            continue;
        if (words.size() < 2)
            return -ENOENT;
        std::string column(words[1]);
        char* end = nullptr;
        long value = std::strtol(column.c_str(), &end, 10);
        return end == column.c_str() || *end != '\0' ? -ENOENT : value;
    }
    return -ENOENT;
}

base::Result<std::vector<std::string>> ModuleSysfs::holders(const std::string& name) const
{
    const std::string path = module_dir(name) + "/holders";
    if (!is_component(name))
        return base::errno_error(ENOENT, "could not open '" + path + "'");
    auto dir_fd = base::open_directory(AT_FDCWD, path);
    if (!dir_fd)
        return base::errno_error(dir_fd.error().code, "could not open '" + path + "'");
    std::vector<std::string> holders;
    base::DirectoryReader reader(dir_fd->get());
    base::DirectoryReader::Entry entry{};
    while (reader.next(entry)) {
        if (entry.name != "." && entry.name != "..")
            holders.emplace_back(entry.name);
    }
    return holders;
}

base::Result<std::string> ModuleSysfs::initstate(const std::string& name) const
{
    if (!is_component(name))
        return base::errno_error(ENOENT, "no module '" + name + "'");
    auto text = base::read_file(AT_FDCWD, module_dir(name) + "/initstate");
    if (text) {
        std::string_view state = *text;
        return std::string(state.substr(0, state.find('\n')));
    }
    struct stat st {};
    if (::stat(module_dir(name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        return std::string("coming");
    return base::Unexpected(text.error());
}

} // namespace kmodd::sys
