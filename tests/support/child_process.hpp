// SPDX-License-Identifier: LGPL-2.1-or-later
// A program run as a child with its stdout and stderr on pipes: read while it runs (with
// deadlines, so a hanging child fails a test instead of hanging it), signalled, then reaped.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "spawn.hpp"

namespace kmodd::test {

using namespace std::chrono_literals;

/// How a child ended and what it wrote.
struct Outcome {
    int status = -1; ///< exit status, or 128 + signal number when killed by a signal
    std::string out; ///< everything written to stdout
    std::string err; ///< everything written to stderr
};

class ChildProcess {
public:
    /// Starts `args[0]` (a path) with `args`, the environment of this process with
    /// `environment` set on top, and default dispositions and an empty mask for all signals
    /// (see spawn()).
    explicit ChildProcess(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& environment = {})
    {
        int out[2];
        int err[2];
        if (::pipe2(out, O_CLOEXEC) != 0)
            fail("pipe2");
        if (::pipe2(err, O_CLOEXEC) != 0) {
            ::close(out[0]);
            ::close(out[1]);
            fail("pipe2");
        }
        SpawnOptions options;
        options.stdout_fd = out[1];
        options.stderr_fd = err[1];
        options.environment = environment;
        int error = 0;
        try {
            pid_ = spawn(args, options);
        } catch (const std::system_error& failure) {
            error = failure.code().value();
        }
        ::close(out[1]);
        ::close(err[1]);
        out_fd_ = out[0];
        err_fd_ = err[0];
        if (error != 0) {
            pid_ = -1;
            close_pipes();
            throw std::system_error(error, std::generic_category(), "fork " + args[0]);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    ~ChildProcess()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        close_pipes();
    }

    /// What the child wrote to stdout so far.
    [[nodiscard]] const std::string& out() const { return out_; }
    /// What the child wrote to stderr so far.
    [[nodiscard]] const std::string& err() const { return err_; }

    /// Reads until `done()` holds (it looks at out() and err()); false if it does not within
    /// `timeout`.
    bool read_until(const std::function<bool()>& done, std::chrono::milliseconds timeout)
    {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !pump(left))
                return done();
        }
        return true;
    }

    /// Reads until stdout contains `text`; false if it does not within `timeout`.
    bool read_stdout_until(const std::string& text, std::chrono::milliseconds timeout)
    {
        return read_until([&] { return out_.find(text) != std::string::npos; }, timeout);
    }

    void send_signal(int number) const { ::kill(pid_, number); }

    /// Reads both pipes to their end and reaps the child; kills it when it is not done
    /// within `timeout`.
    Outcome finish(std::chrono::milliseconds timeout = 30s)
    {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        bool killed = false;
        while (pump(100ms)) {
            if (!killed && std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                killed = true;
            }
        }
        int status = 0;
        if (::waitpid(pid_, &status, 0) != pid_)
            fail("waitpid");
        pid_ = -1;
        Outcome outcome;
        outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        outcome.out = out_;
        outcome.err = err_;
        return outcome;
    }

private:
    [[noreturn]] static void fail(const char* what)
    {
        throw std::system_error(errno, std::generic_category(), what);
    }

    /// Waits at most `timeout` for output and appends what came; false once both pipes
    /// reached their end.
    bool pump(std::chrono::milliseconds timeout)
    {
        pollfd fds[2];
        std::string* sinks[2];
        int* owners[2];
        nfds_t count = 0;
        for (auto [fd, sink] : {std::pair{&out_fd_, &out_}, std::pair{&err_fd_, &err_}}) {
            if (*fd < 0)
                continue;
            fds[count] = {*fd, POLLIN, 0};
            sinks[count] = sink;
            owners[count] = fd;
            ++count;
        }
        if (count == 0)
            return false;
        int ready = ::poll(fds, count, static_cast<int>(timeout.count()));
        if (ready < 0 && errno != EINTR)
            fail("poll");
        for (nfds_t i = 0; ready > 0 && i < count; ++i) {
            if (fds[i].revents == 0)
                continue;
            char buf[4096];
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                sinks[i]->append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(*owners[i]);
                *owners[i] = -1;
            }
        }
        return true;
    }

    void close_pipes()
    {
        for (int* fd : {&out_fd_, &err_fd_}) {
            if (*fd >= 0)
                ::close(*fd);
            *fd = -1;
        }
    }

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    std::string out_;
    std::string err_;
};

/// Runs a program to its end (at most `timeout`) and returns what it did.
inline Outcome run_process(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& environment = {},
                           std::chrono::milliseconds timeout = 30s)
{
    ChildProcess child(args, environment);
    return child.finish(timeout);
}

} // namespace kmodd::test
