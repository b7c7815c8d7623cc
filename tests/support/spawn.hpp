// SPDX-License-Identifier: LGPL-2.1-or-later
// The one way tests start a program: fork and exec with the child's fds, environment and
// signals set up, and optionally a signal when the test process dies.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h> // environ (C++ compilers define _GNU_SOURCE)

#include <cerrno>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace kmodd::test {

/// How spawn() sets up the child.
struct SpawnOptions {
    int stdout_fd = -1;                             ///< the child's stdout; -1: this process's
    int stderr_fd = -1;                             ///< the child's stderr; -1: this process's
    std::vector<std::pair<int, int>> fds;           ///< more fds: {child's fd number, our fd}
    std::map<std::string, std::string> environment; ///< set on top of this process's
    int parent_death_signal = 0; ///< sent to the child when this process dies (0: none), so a
                                 ///< crashed test leaves nothing running
};

/// Starts `args[0]` (a path) with `args`, with every signal at its default and none blocked.
/// Only async-signal-safe calls run between fork and exec, so tests with threads (sdbus-c++
/// loops) may call it. A child that cannot be set up exits with 127. Throws
/// std::system_error when fork fails.
inline pid_t spawn(const std::vector<std::string>& args, const SpawnOptions& options = {})
{
    std::vector<std::string> env_strings;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        std::string text = *entry;
        if (!options.environment.contains(text.substr(0, text.find('='))))
            env_strings.push_back(std::move(text));
    }
    for (const auto& [name, value] : options.environment)
        env_strings.push_back(name + '=' + value);
    std::vector<char*> argv;
    for (const auto& arg : args)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& entry : env_strings)
        envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<std::pair<int, int>> moves = options.fds;
    if (options.stdout_fd >= 0)
        moves.emplace_back(STDOUT_FILENO, options.stdout_fd);
    if (options.stderr_fd >= 0)
        moves.emplace_back(STDERR_FILENO, options.stderr_fd);

    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::system_error(errno, std::generic_category(), "fork " + args[0]);
    if (pid != 0)
        return pid;
    // The child: async-signal-safe calls only.
    struct sigaction fallback {};
    fallback.sa_handler = SIG_DFL;
    for (int number = 1; number < NSIG; ++number)
        ::sigaction(number, &fallback, nullptr);
    sigset_t none;
    sigemptyset(&none);
    bool ok = ::sigprocmask(SIG_SETMASK, &none, nullptr) == 0;
    for (const auto& [target, source] : moves) {
        // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
        ok = ok && (target == source ? ::fcntl(target, F_SETFD, 0) == 0
                                     : ::dup2(source, target) == target);
    }
    if (options.parent_death_signal != 0)
        ok = ok && ::prctl(PR_SET_PDEATHSIG, options.parent_death_signal) == 0 &&
             ::getppid() == parent;
    if (ok)
        ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
}

} // namespace kmodd::test
