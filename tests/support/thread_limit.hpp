// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs a piece of a test where the system refuses every new thread, as a task limit does
// (systemd's TasksMax, RLIMIT_NPROC): in a forked child whose real user is "nobody", with
// RLIMIT_NPROC 0 and without the two capabilities that lift it. It keeps effective uid 0 and
// every other capability, so it reads and writes what the test made. Needs root.
#pragma once

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <thread>

namespace kmodd::test {

/// Exit status of a child that could not set the limit up.
constexpr int kNoThreadLimit = 125;
/// Exit status of a child whose body threw.
constexpr int kBodyThrew = 124;

/// `body`'s return value as it ended in a child where no thread can start (kNoThreadLimit if
/// that could not be arranged, or if a thread started anyway; kBodyThrew if it threw), 128 + a
/// signal's number when it was killed, -1 when the child could not be made or waited for. The child
/// leaves with _exit(): nothing of the test's state is flushed twice.
inline int run_where_threads_are_refused(const std::function<int()>& body)
{
    const pid_t pid = ::fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const rlimit none{0, 0};
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct caps[2]{};
        if (::setrlimit(RLIMIT_NPROC, &none) != 0 || ::setresuid(65534, 0, 0) != 0 ||
            ::syscall(SYS_capget, &header, caps) != 0)
            ::_exit(kNoThreadLimit);
        for (const int cap : {CAP_SYS_RESOURCE, CAP_SYS_ADMIN})
            caps[cap / 32].effective &= ~(1U << (cap % 32));
        if (::syscall(SYS_capset, &header, caps) != 0)
            ::_exit(kNoThreadLimit);
        try {
            std::thread([] {}).join();
            ::_exit(kNoThreadLimit); // the limit does not hold here
        } catch (const std::system_error&) {
        }
        // Nothing may leave the child but through _exit(): an exception would run the rest
        // of the test a second time, in the child.
        int code = kBodyThrew;
        try {
            code = body();
        } catch (...) {
        }
        ::_exit(code);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace kmodd::test
