// SPDX-License-Identifier: LGPL-2.1-or-later
// Test helpers for the D-Bus API: a private dbus-daemon, a poll(2) loop serving a connection
// the way kmodd's own loop will, and a stand-in Manager behind the generated adaptor.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "kmodd-adaptor.h"
#include "kmodd_dbus_names.hpp"
#include "sdbus_compat.hpp"
#include "spawn.hpp"

#ifndef KMODD_DBUS_DAEMON
#error "define KMODD_DBUS_DAEMON as the path of dbus-daemon"
#endif

namespace kmodd::dbus::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr const char* kKernelRelease = "6.1.0-test";

[[noreturn]] inline void fail_errno(const std::string& what)
{
    throw std::system_error(errno, std::generic_category(), what);
}

/// A bus configuration that lets every connection own any name and call anything: a session
/// bus for tests.
inline constexpr const char* kOpenBusConfig =
    "  <type>session</type>\n"
    "  <policy context=\"default\">\n"
    "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
    "    <allow eavesdrop=\"true\"/>\n"
    "    <allow own=\"*\"/>\n"
    "  </policy>\n";

/// A dbus-daemon of our own, listening in a temporary directory; stopped and removed on
/// destruction. `config` is the body of its <busconfig> besides <listen> and <auth>. With
/// `open_to_all_users`, other uids can reach the socket too.
class PrivateBus {
public:
    explicit PrivateBus(const std::string& config = kOpenBusConfig, bool open_to_all_users = false)
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-dbus-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            fail_errno("mkdtemp");
        dir_ = pattern;
        if (open_to_all_users)
            fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read |
                                      fs::perms::group_exec | fs::perms::others_read |
                                      fs::perms::others_exec);
        write_config(config);
        spawn();
    }
    PrivateBus(const PrivateBus&) = delete;
    PrivateBus& operator=(const PrivateBus&) = delete;

    ~PrivateBus()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }

    [[nodiscard]] const std::string& address() const { return address_; }

    /// Kills the dbus-daemon at once, as a crash or a restart of the bus would drop every
    /// connection.
    void kill_daemon()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

private:
    void write_config(const std::string& config) const
    {
        std::ofstream out(dir_ / "bus.conf");
        out << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
               "1.0//EN\"\n"
               " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
               "<busconfig>\n"
               "  <listen>unix:dir="
            << dir_.string() << "</listen>\n  <auth>EXTERNAL</auth>\n"
            << config << "</busconfig>\n";
        if (!out.flush())
            throw std::runtime_error("cannot write " + (dir_ / "bus.conf").string());
    }

    // dbus-daemon prints its address on fd 3 once it listens: that line is our "ready". Its
    // output (as root: "Failed to set fd limit") goes to a log shown on failure, and it gets
    // SIGTERM when this process dies, so a crashed test leaves no daemon behind.
    void spawn()
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            fail_errno("pipe2");
        std::string log_path = (dir_ / "dbus-daemon.log").string();
        std::string config = "--config-file=" + (dir_ / "bus.conf").string();
        int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (log < 0) {
            ::close(fds[0]);
            ::close(fds[1]);
            fail_errno("open the dbus-daemon log");
        }
        kmodd::test::SpawnOptions options;
        options.stdout_fd = log;
        options.stderr_fd = log;
        options.fds = {{3, fds[1]}};
        options.parent_death_signal = SIGTERM;
        try {
            pid_ = kmodd::test::spawn({KMODD_DBUS_DAEMON, config, "--nofork", "--print-address=3"},
                                      options);
        } catch (...) {
            ::close(log);
            ::close(fds[0]);
            ::close(fds[1]);
            throw;
        }
        ::close(log);
        ::close(fds[1]);
        try {
            address_ = read_line(fds[0], 5s);
        } catch (const std::runtime_error& error) {
            ::close(fds[0]);
            throw std::runtime_error(std::string(error.what()) + "; its log:\n" + slurp(log_path));
        }
        ::close(fds[0]);
    }

    static std::string slurp(const std::string& path)
    {
        std::ifstream in(path);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    static std::string read_line(int fd, std::chrono::milliseconds timeout)
    {
        std::string line;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (line.find('\n') == std::string::npos) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd pfd{fd, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
                throw std::runtime_error("dbus-daemon did not print its address in time");
            char buf[256];
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0)
                throw std::runtime_error("dbus-daemon exited without printing its address");
            line.append(buf, static_cast<size_t>(n));
        }
        return line.substr(0, line.find('\n'));
    }

    fs::path dir_;
    pid_t pid_ = -1;
    std::string address_;
};

/// Serves one connection from a thread of its own with poll(2), as kmodd's epoll loop will:
/// getEventLoopPollData() says what to wait for, processPendingRequest() dispatches. Work
/// posted from other threads runs on the loop thread, so sd-bus is only used from there.
class PollLoop {
public:
    explicit PollLoop(sdbus::IConnection& connection)
        : connection_(connection), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
    {
        if (wake_fd_ < 0)
            fail_errno("eventfd");
        thread_ = std::thread([this] { run(); });
    }
    PollLoop(const PollLoop&) = delete;
    PollLoop& operator=(const PollLoop&) = delete;

    ~PollLoop()
    {
        post([this] { stopping_ = true; });
        thread_.join();
        ::close(wake_fd_);
    }

    void post(std::function<void()> task)
    {
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        std::uint64_t one = 1;
        if (::write(wake_fd_, &one, sizeof one) < 0)
            std::abort(); // an eventfd write only fails on overflow
    }

private:
    void run()
    {
        while (!stopping_) {
            bool busy = kmodd::dbus::process_pending(connection_);
            busy = run_posted() || busy;
            if (busy)
                continue; // a posted task may have queued messages: dispatch before sleeping
            // Asked again each time: events gain POLLOUT while output is queued, and the
            // timeout (absolute, CLOCK_MONOTONIC) follows pending method calls.
            auto data = connection_.getEventLoopPollData();
            pollfd fds[2] = {{data.fd, data.events, 0}, {wake_fd_, POLLIN, 0}};
            if (::poll(fds, 2, data.getPollTimeout()) < 0 && errno != EINTR)
                std::abort();
            std::uint64_t count = 0;
            if ((fds[1].revents & POLLIN) != 0 && ::read(wake_fd_, &count, sizeof count) < 0)
                std::abort();
        }
    }

    bool run_posted()
    {
        std::deque<std::function<void()>> tasks;
        {
            std::lock_guard lock(mutex_);
            tasks.swap(tasks_);
        }
        for (auto& task : tasks)
            task();
        return !tasks.empty();
    }

    sdbus::IConnection& connection_;
    int wake_fd_;
    std::mutex mutex_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false; // loop thread only
    std::thread thread_;
};

/// A stand-in for kmodd's Manager: fixed answers, every method replied to through its
/// sdbus::Result (the XML marks them all Async=server).
class FakeManager final : public kmodd::dbus::Adaptor<org::kmodd1::Manager_adaptor> {
public:
    explicit FakeManager(sdbus::IConnection& connection)
        : Adaptor(connection, kmodd::dbus::kObjectPath)
    {
        registerAdaptor();
    }
    FakeManager(const FakeManager&) = delete;
    FakeManager& operator=(const FakeManager&) = delete;
    ~FakeManager() { unregisterAdaptor(); }

    // Loop thread only, like everything below.
    void set_module_count(std::uint32_t count)
    {
        module_count_ = count;
        kmodd::dbus::emit_properties_changed(getObject(), kmodd::dbus::kInterfaceName,
                                             {"ModuleCount"});
    }

    void finish_slow_load()
    {
        slow_load_->returnResults(std::vector<std::string>{"slow"});
        slow_load_.reset();
    }

    /// Set when Load("slow") has arrived and is left unanswered.
    std::promise<void> slow_load_started;
    /// Who called Load last, as kmodd's authorization will see it.
    std::string last_sender;
    uid_t last_uid = static_cast<uid_t>(-1);
    std::string last_params;

private:
    void Load(sdbus::Result<std::vector<std::string>>&& result, std::string module,
              std::string params) override
    {
        // The call is only reachable while the handler runs: capture before going async.
        last_sender = kmodd::dbus::current_sender(getObject()).value_or("");
        last_uid = kmodd::dbus::current_uid(getObject());
        last_params = params;
        if (module == "missing") // a throw from the handler becomes the error reply, too
            throw kmodd::dbus::make_error(kmodd::dbus::kErrorNotFound,
                                          "Module 'missing' not found.");
        if (module == "slow") {
            slow_load_.emplace(std::move(result));
            slow_load_started.set_value();
            return;
        }
        result.returnResults(std::vector<std::string>{"mod1", module});
        emitModuleLoaded("mod1");
        emitModuleLoaded(module);
    }

    void Unload(sdbus::Result<std::vector<std::string>>&& result, std::string module) override
    {
        if (module == "busy") {
            result.returnError(
                kmodd::dbus::make_error(kmodd::dbus::kErrorInUse, "Module 'busy' is in use."));
            return;
        }
        result.returnResults(std::vector<std::string>{module, "mod1"});
        emitModuleUnloaded(module);
        emitModuleUnloaded("mod1");
    }

    void ListDeps(sdbus::Result<std::vector<std::string>>&& result, std::string module) override
    {
        if (module == "missing") {
            result.returnError(kmodd::dbus::make_error(kmodd::dbus::kErrorNotFound,
                                                       "Module 'missing' not found."));
            return;
        }
        result.returnResults(std::vector<std::string>{"mod1", module});
    }

    void ListLoaded(
        sdbus::Result<std::vector<sdbus::Struct<std::string, std::uint64_t, std::uint32_t,
                                                std::vector<std::string>, std::string>>>&& result)
        override
    {
        using Row = sdbus::Struct<std::string, std::uint64_t, std::uint32_t,
                                  std::vector<std::string>, std::string>;
        result.returnResults(std::vector<Row>{
            Row{"mod1", 16384, 1, std::vector<std::string>{"mod2"}, kmodd::dbus::kOriginDependency},
            Row{"mod2", 8192, 0, std::vector<std::string>{}, kmodd::dbus::kOriginExplicit}});
    }

    void GetModuleInfo(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                       std::string module) override
    {
        using Parameter = sdbus::Struct<std::string, std::string, std::string>;
        std::map<std::string, sdbus::Variant> info;
        info["name"] = sdbus::Variant(module);
        info["path"] =
            sdbus::Variant(std::string("/lib/modules/6.1.0-test/extra/" + module + ".ko"));
        info["aliases"] = sdbus::Variant(std::vector<std::string>{"pci:v00001234d*"});
        info["builtin"] = sdbus::Variant(false);
        info["parameters"] =
            sdbus::Variant(std::vector<Parameter>{Parameter{"debug", "int", "Debug level (0-3)"}});
        result.returnResults(info);
    }

    void Rebuild(sdbus::Result<>&& result, std::string version) override
    {
        result.returnResults();
        emitIndexRebuilt(version.empty() ? kKernelRelease : version, 3, 18000);
    }

    void LinkModule(sdbus::Result<std::string, std::string>&& result, std::string file) override
    {
        std::string name = file.substr(file.rfind('/') + 1);
        name = name.substr(0, name.find('.'));
        result.returnResults(name, "/lib/modules/6.1.0-test/updates/kmodd-dev/" + name + ".ko");
    }

    void UnlinkModule(sdbus::Result<std::string>&& result, std::string module) override
    {
        result.returnResults("/lib/modules/6.1.0-test/updates/kmodd-dev/" + module + ".ko");
    }

    void ListWaitingDevices(
        sdbus::Result<std::vector<sdbus::Struct<std::string, std::string>>>&& result) override
    {
        result.returnResults(std::vector<sdbus::Struct<std::string, std::string>>{
            {"/sys/devices/pci0000:00/0000:00:1f.3", "pci:v00008086d0000A348sv*"}});
    }

    void Diagnose(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                  std::string module) override
    {
        std::map<std::string, sdbus::Variant> outcome;
        outcome["module"] = sdbus::Variant(module);
        outcome["loaded"] = sdbus::Variant(true);
        // The real kmodd warns of parameters the module does not have; here: "nosuch".
        std::vector<std::string> warnings;
        if (last_params.find("nosuch=") != std::string::npos)
            warnings.push_back(module + ": unknown parameter 'nosuch': the kernel ignores it");
        outcome["warnings"] = sdbus::Variant(warnings);
        result.returnResults(outcome);
    }

    void Explain(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                 std::string module) override
    {
        std::map<std::string, sdbus::Variant> explanation;
        explanation["name"] = sdbus::Variant(module);
        explanation["loaded"] = sdbus::Variant(true);
        explanation["origin"] = sdbus::Variant(std::string(kmodd::dbus::kOriginExplicit));
        explanation["requested_by_uid"] = sdbus::Variant(std::uint32_t{0});
        explanation["requested_by_command"] = sdbus::Variant(std::string("kmodctl"));
        explanation["lines"] = sdbus::Variant(std::vector<std::string>{
            "'" + module + "' was loaded by kmodd because kmodctl (uid 0) asked for it."});
        result.returnResults(explanation);
    }

    void ListHolders(sdbus::Result<std::vector<std::string>, std::vector<std::string>,
                                   std::vector<std::string>, std::string>&& result,
                     std::string module) override
    {
        result.returnResults(std::vector<std::string>{"mod2"}, std::vector<std::string>{"mod2"},
                             std::vector<std::string>{},
                             "Module '" + module + "' is in use by: mod2");
    }

    void PlanUnload(sdbus::Result<std::vector<std::string>>&& result, std::string module) override
    {
        result.returnResults(std::vector<std::string>{module, "mod1"});
    }

    using FoundRow = sdbus::Struct<std::string, std::string, std::string, std::string>;
    void FindModules(sdbus::Result<std::vector<FoundRow>>&& result, std::string pattern) override
    {
        result.returnResults(std::vector<FoundRow>{{"mod1", "First module", "name", pattern}});
    }

    void ListDepsForKernel(sdbus::Result<std::vector<std::string>>&& result, std::string release,
                           std::string module) override
    {
        result.returnResults(std::vector<std::string>{release, module});
    }

    void GetModuleInfoForKernel(sdbus::Result<std::map<std::string, sdbus::Variant>>&& result,
                                std::string release, std::string module) override
    {
        std::map<std::string, sdbus::Variant> info;
        info["name"] = sdbus::Variant(module);
        info["path"] = sdbus::Variant("/lib/modules/" + release + "/extra/" + module + ".ko");
        result.returnResults(info);
    }

    void ListUsersForKernel(sdbus::Result<std::vector<std::string>>&& result, std::string release,
                            std::string module) override
    {
        (void)release;
        (void)module;
        result.returnResults(std::vector<std::string>{"mod2"});
    }

    void FindModulesForKernel(sdbus::Result<std::vector<FoundRow>>&& result, std::string release,
                              std::string pattern) override
    {
        result.returnResults(std::vector<FoundRow>{{"mod1", release, "name", pattern}});
    }

    std::vector<sdbus::Struct<std::string, std::uint32_t, std::string, std::string>>
    Kernels() override
    {
        return {{kKernelRelease, module_count_, "indexed", ""}};
    }

    std::string KernelRelease() override { return kKernelRelease; }
    std::uint32_t ModuleCount() override { return module_count_; }
    std::uint64_t IndexGeneration() override { return 7; }
    std::uint64_t LastRebuildUSec() override { return 1700000000000000; }
    std::uint64_t LastRebuildDurationUSec() override { return 18000; }
    bool IndexVerified() override { return true; }
    std::string RecordsProblem() override { return ""; }

    std::uint32_t module_count_ = 3;
    std::optional<sdbus::Result<std::vector<std::string>>> slow_load_;
};

} // namespace kmodd::dbus::test
