// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs the real kmodd binary for tests and benchmarks: a private dbus-daemon, kmodd in
// sandbox mode on a temporary module tree, a client connection with sync calls, and a
// signal listener served by its own loop thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "kmodd_dbus_names.hpp"
#include "spawn.hpp"
#include "temp_tree.hpp"
#include "test_bus.hpp"

#ifndef KMODD_BINARY
#error "define KMODD_BINARY as the path of the built kmodd"
#endif

namespace kmodd::daemon::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using dbus::test::PollLoop;
using dbus::test::PrivateBus;

/// Polls `condition` every 5 ms for at most `timeout`.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = 10s)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// A field of /proc/PID/status in KiB ("VmRSS:", "VmHWM:"), -1 when absent.
inline long status_kib(pid_t pid, const char* field)
{
    const std::string text = kmodd::test::slurp("/proc/" + std::to_string(pid) + "/status");
    const size_t at = text.find(field);
    if (at == std::string::npos)
        return -1;
    return std::strtol(text.c_str() + at + std::strlen(field), nullptr, 10);
}

/// A kmodd process, started with the given arguments, its output in a log file.
class KmoddProcess {
public:
    KmoddProcess(std::vector<std::string> args, fs::path log) : log_(std::move(log))
    {
        std::vector<std::string> all{KMODD_BINARY};
        all.insert(all.end(), args.begin(), args.end());
        int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            throw std::system_error(errno, std::generic_category(), "open " + log_.string());
        kmodd::test::SpawnOptions options;
        options.stdout_fd = fd;
        options.stderr_fd = fd;
        options.parent_death_signal = SIGKILL;
        try {
            pid_ = kmodd::test::spawn(all, options);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
    }
    KmoddProcess(const KmoddProcess&) = delete;
    KmoddProcess& operator=(const KmoddProcess&) = delete;
    ~KmoddProcess()
    {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    [[nodiscard]] pid_t pid() const { return pid_; }

    /// Whether it still runs.
    [[nodiscard]] bool is_running()
    {
        if (status_)
            return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            status_ = status;
            return false;
        }
        return true;
    }

    /// SIGTERM, then waits: the wait status (nullopt if it had to be killed after 10 s).
    std::optional<int> stop()
    {
        if (status_)
            return status_;
        ::kill(pid_, SIGTERM);
        if (wait_until([this] { return !is_running(); }, 10s))
            return status_;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        status_ = status;
        return std::nullopt;
    }

    [[nodiscard]] std::string log() const { return kmodd::test::slurp(log_); }

private:
    fs::path log_;
    pid_t pid_ = -1;
    std::optional<int> status_;
};

/// A D-Bus error or a value.
template <class T> struct CallResult {
    std::optional<T> value;
    std::string error_name;
    std::string error_message;
    [[nodiscard]] explicit operator bool() const { return value.has_value(); }
};

/// Synchronous calls to kmodd from a connection of the test's own (no loop: sync calls go
/// straight to sd_bus_call).
class Client {
public:
    explicit Client(const std::string& address)
        : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
          proxy_(kmodd::dbus::create_proxy(*connection_, dbus::kBusName, dbus::kObjectPath))
    {
    }

    using Names = std::vector<std::string>;
    using LoadedRow =
        sdbus::Struct<std::string, uint64_t, uint32_t, std::vector<std::string>, std::string>;

    CallResult<Names> load(const std::string& module, const std::string& params = "")
    {
        return call<Names>("Load", module, params);
    }
    CallResult<Names> unload(const std::string& module) { return call<Names>("Unload", module); }
    CallResult<Names> list_deps(const std::string& module)
    {
        return call<Names>("ListDeps", module);
    }
    CallResult<std::vector<LoadedRow>> list_loaded()
    {
        return call<std::vector<LoadedRow>>("ListLoaded");
    }
    CallResult<std::map<std::string, sdbus::Variant>> module_info(const std::string& module)
    {
        return call<std::map<std::string, sdbus::Variant>>("GetModuleInfo", module);
    }
    CallResult<bool> rebuild(const std::string& version)
    {
        CallResult<bool> result;
        try {
            proxy_->callMethod("Rebuild")
                .onInterface(dbus::kInterfaceName)
                .withTimeout(60s)
                .withArguments(version);
            result.value = true;
        } catch (const sdbus::Error& error) {
            result.error_name = error.getName();
            result.error_message = error.getMessage();
        }
        return result;
    }

    template <class T> std::optional<T> property(const std::string& name)
    {
        try {
            return proxy_->getProperty(name).onInterface(dbus::kInterfaceName).get<T>();
        } catch (const sdbus::Error&) {
            return std::nullopt;
        }
    }

    /// The origin ListLoaded gives `module`, "" when not loaded.
    std::string origin_of(const std::string& module)
    {
        auto rows = list_loaded();
        if (!rows)
            return "?";
        for (const auto& row : *rows.value) {
            if (std::get<0>(row) == module)
                return std::get<4>(row);
        }
        return "";
    }

    struct Holders {
        Names holders;
        Names users;
        Names unload;
        std::string unload_error;
    };
    CallResult<Holders> list_holders(const std::string& module)
    {
        CallResult<Holders> result;
        try {
            Holders holders;
            proxy_->callMethod("ListHolders")
                .onInterface(dbus::kInterfaceName)
                .withTimeout(60s)
                .withArguments(module)
                .storeResultsTo(holders.holders, holders.users, holders.unload,
                                holders.unload_error);
            result.value = std::move(holders);
        } catch (const sdbus::Error& error) {
            result.error_name = error.getName();
            result.error_message = error.getMessage();
        }
        return result;
    }

    /// Any method of the Manager, with its single (or tuple of) result(s) stored into T.
    template <class T, class... Args>
    CallResult<T> call(const std::string& method, const Args&... args)
    {
        CallResult<T> result;
        try {
            T value;
            proxy_->callMethod(method)
                .onInterface(dbus::kInterfaceName)
                .withTimeout(60s)
                .withArguments(args...)
                .storeResultsTo(value);
            result.value = std::move(value);
        } catch (const sdbus::Error& error) {
            result.error_name = error.getName();
            result.error_message = error.getMessage();
        }
        return result;
    }

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
};

/// Counts kmodd's signals, from a connection served by its own loop thread.
class SignalLog {
public:
    explicit SignalLog(const std::string& address)
        : connection_(sdbus::createSessionBusConnectionWithAddress(address)),
          proxy_(kmodd::dbus::create_proxy(*connection_, dbus::kBusName, dbus::kObjectPath))
    {
        proxy_->uponSignal("IndexRebuilt")
            .onInterface(dbus::kInterfaceName)
            .call([this](const std::string& version, uint32_t modules, uint64_t) {
                add("IndexRebuilt " + version + " " + std::to_string(modules));
            });
        proxy_->uponSignal("ModuleLoaded")
            .onInterface(dbus::kInterfaceName)
            .call([this](const std::string& module) { add("ModuleLoaded " + module); });
        proxy_->uponSignal("ModuleUnloaded")
            .onInterface(dbus::kInterfaceName)
            .call([this](const std::string& module) { add("ModuleUnloaded " + module); });
        kmodd::dbus::finish_registration(*proxy_);
        loop_ = std::make_unique<PollLoop>(*connection_);
    }
    ~SignalLog() { loop_.reset(); }

    [[nodiscard]] std::vector<std::string> events()
    {
        std::lock_guard lock(mutex_);
        return events_;
    }
    [[nodiscard]] size_t count_prefix(const std::string& prefix)
    {
        std::lock_guard lock(mutex_);
        size_t count = 0;
        for (const auto& event : events_)
            count += event.starts_with(prefix) ? 1 : 0;
        return count;
    }
    /// Waits until an event equal to `event` arrived.
    bool wait_for(const std::string& event, std::chrono::milliseconds timeout = 10s)
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] {
            return std::find(events_.begin(), events_.end(), event) != events_.end();
        });
    }

private:
    void add(std::string event)
    {
        {
            std::lock_guard lock(mutex_);
            events_.push_back(std::move(event));
        }
        changed_.notify_all();
    }

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::unique_ptr<PollLoop> loop_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> events_;
};

/// The test bus configuration that also lets other uids connect.
inline constexpr const char* kEveryUserBusConfig =
    "  <type>session</type>\n"
    "  <policy context=\"default\">\n"
    "    <allow user=\"*\"/>\n"
    "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
    "    <allow eavesdrop=\"true\"/>\n"
    "    <allow own=\"*\"/>\n"
    "  </policy>\n";

/// A private bus, a module tree and kmodd serving it in sandbox mode.
class DaemonSetup {
public:
    explicit DaemonSetup(std::string version = "6.1.0-test", bool open_to_all_users = false)
        : bus_(open_to_all_users ? kEveryUserBusConfig : dbus::test::kOpenBusConfig,
               open_to_all_users),
          tree_(std::move(version))
    {
        fs::create_directories(tree_.module_dir() / "kernel");
        state_dir_ = tree_.root() / "state";
    }

    [[nodiscard]] const kmodd::test::TempTree& tree() const { return tree_; }
    [[nodiscard]] const std::string& address() const { return bus_.address(); }
    [[nodiscard]] fs::path state_dir() const { return state_dir_; }
    [[nodiscard]] fs::path log_path() const { return tree_.root() / "kmodd.log"; }

    /// Starts kmodd and waits until it answers (false if it did not within 20 s).
    bool start(std::vector<std::string> extra = {})
    {
        std::vector<std::string> args{"--bus",
                                      bus_.address(),
                                      "--modules-dir",
                                      (tree_.root() / "lib/modules").string(),
                                      "--kernel-release",
                                      tree_.version(),
                                      "--sandbox-kernel",
                                      state_dir_.string(),
                                      "--depmod-config",
                                      "/dev/null",
                                      "--modprobe-config",
                                      "/dev/null",
                                      "--cmdline",
                                      "",
                                      "--no-durable",
                                      "--debounce-ms",
                                      "20",
                                      "--config",
                                      "/dev/null",
                                      "--log-level",
                                      "debug"};
        // Later options win, so `extra` may override the defaults above.
        args.insert(args.end(), extra.begin(), extra.end());
        process_ = std::make_unique<KmoddProcess>(args, log_path());
        client_.reset();
        return wait_until(
            [this] {
                if (!process_->is_running())
                    return false;
                try {
                    if (!client_)
                        client_ = std::make_unique<Client>(bus_.address());
                    return client_->property<uint64_t>("IndexGeneration").has_value();
                } catch (const sdbus::Error&) {
                    client_.reset();
                    return false;
                }
            },
            20s);
    }

    /// SIGTERM; the wait status.
    std::optional<int> stop()
    {
        client_.reset();
        return process_ ? process_->stop() : std::nullopt;
    }

    [[nodiscard]] KmoddProcess& process() { return *process_; }
    /// The bus goes away under kmodd (see PrivateBus::kill_daemon()).
    void kill_bus() { bus_.kill_daemon(); }
    [[nodiscard]] Client& client() { return *client_; }
    [[nodiscard]] std::string log() const { return kmodd::test::slurp(log_path()); }

    /// A shell command line that runs busctl against the private bus.
    [[nodiscard]] std::string busctl() const { return "busctl --address='" + bus_.address() + "'"; }

private:
    PrivateBus bus_;
    kmodd::test::TempTree tree_;
    fs::path state_dir_;
    std::unique_ptr<KmoddProcess> process_;
    std::unique_ptr<Client> client_;
};

} // namespace kmodd::daemon::test
