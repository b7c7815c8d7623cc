// SPDX-License-Identifier: LGPL-2.1-or-later
// Running `kmod --version`.
#include "sys/kmod_tool.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>

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

} // namespace kmodd::sys
