// SPDX-License-Identifier: LGPL-2.1-or-later
// Running `kmod --version`.
#include "sys/kmod_tool.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "base/file.hpp"
#include "base/unique_fd.hpp"

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace kmodd::sys {

std::optional<std::string> installed_kmod_version()
{
    std::array<int, 2> pipe_fds{};
    if (::pipe2(pipe_fds.data(), O_CLOEXEC) < 0)
        return std::nullopt;
    base::UniqueFd read_end(pipe_fds[0]);
    base::UniqueFd write_end(pipe_fds[1]);

    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::array<char, 5> name = {'k', 'm', 'o', 'd', '\0'};
    std::array<char, 10> flag = {'-', '-', 'v', 'e', 'r', 's', 'i', 'o', 'n', '\0'};
    std::array<char*, 3> argv = {name.data(), flag.data(), nullptr};
    pid_t pid = -1;
    const int spawned = ::posix_spawnp(&pid, "kmod", &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    write_end.reset();
    if (spawned != 0)
        return std::nullopt;

    std::string output;
    std::array<char, 512> buffer{};
    for (;;) {
        ssize_t n = ::read(read_end.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || output.size() > size_t{64} * 1024)
            break;
        output.append(buffer.data(), static_cast<size_t>(n));
    }
    read_end.reset();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return std::nullopt;
    return output;
}

namespace {

/// The kmod that posix_spawnp() would run: the first executable "kmod" in a PATH directory,
/// with the identity of the file it resolves to; empty when there is none.
std::string kmod_on_path_key()
{
    const char* path_env = std::getenv("PATH");
    std::string_view path = path_env != nullptr ? path_env : "/usr/bin:/bin";
    while (true) {
        const size_t colon = path.find(':');
        std::string dir(path.substr(0, colon));
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/kmod";
        struct stat st {};
        if (::access(candidate.c_str(), X_OK) == 0 && ::stat(candidate.c_str(), &st) == 0 &&
            S_ISREG(st.st_mode))
            return candidate + " " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) +
                   " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) +
                   "." + std::to_string(st.st_mtim.tv_nsec) + " " +
                   std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
        if (colon == std::string_view::npos)
            return {};
        path.remove_prefix(colon + 1);
    }
}

} // namespace

std::optional<std::string> installed_kmod_version(const std::string& cache_dir)
{
    const std::string key = kmod_on_path_key();
    if (key.empty())
        return std::nullopt;
    const std::string file = cache_dir + "/kmod-version";
    if (auto text = base::read_file(AT_FDCWD, file)) {
        const size_t newline = text->find('\n');
        if (newline != std::string::npos && std::string_view(*text).substr(0, newline) == key)
            return text->substr(newline + 1);
    }
    auto version = installed_kmod_version();
    if (version) {
        // Best effort: a run that may not write there runs kmod again next time.
        if (auto dir = base::open_directory(AT_FDCWD, cache_dir))
            (void)base::publish_file(dir->get(), "kmod-version", key + "\n" + *version, false);
    }
    return version;
}

} // namespace kmodd::sys
