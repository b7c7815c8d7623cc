// SPDX-License-Identifier: LGPL-2.1-or-later
// Load, Unload and Rebuild through sd-bus, with ALLOW_INTERACTIVE_AUTHORIZATION and a polkit
// text agent when kmodctl may ask for a password.
#include "privileged_call.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include <systemd/sd-bus.h>

#include "base/unique_fd.hpp"
#include "bus_client.hpp"
#include "kmodd_dbus_names.hpp"
#include "sdbus_compat.hpp"

extern char** environ;

namespace kmodd::client {

namespace {

// How long a load, unload or rebuild may take. D-Bus's default of 25 s is too short: kmodd gives
// polkit two minutes for a person typing a password, a module's init may wait a minute for its
// firmware, and a full rebuild of a compressed tree on a slow machine takes longer than 25 s
// (Debian 13's 4230 .ko.xz under qemu without a parse cache: about 40 s).
constexpr std::uint64_t kCallTimeoutUsec = 5ULL * 60 * 1000 * 1000;
// How long pkttyagent may take to register with polkitd before the call goes ahead without it.
constexpr int kAgentStartTimeoutMs = 10'000;

struct BusUnref {
    void operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }
};
struct MessageUnref {
    void operator()(sd_bus_message* message) const { sd_bus_message_unref(message); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;

/// polkit's text agent, registered for this process, while the object lives.
class TtyAgent {
public:
    /// Starts `pkttyagent --notify-fd N --process PID` and waits until it has registered (it
    /// closes N). Empty when it is not installed or exits before registering; the call then
    /// goes ahead without it.
    static std::optional<TtyAgent> start()
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            return std::nullopt;
        base::UniqueFd read_end(fds[0]);
        base::UniqueFd write_end(fds[1]);
        // The write end only is inherited: pkttyagent closes it once it is registered.
        if (::fcntl(write_end.get(), F_SETFD, 0) != 0)
            return std::nullopt;
        std::string notify_fd = std::to_string(write_end.get());
        std::string pid = std::to_string(::getpid());
        const char* argv[] = {"pkttyagent", "--notify-fd", notify_fd.c_str(),
                              "--process",  pid.c_str(),   nullptr};
        // The agent starts with no signal blocked: a caller that waits for SIGINT in a
        // signalfd (kmodctl dev) has them blocked, and the agent must still end on SIGTERM.
        posix_spawnattr_t attributes;
        if (::posix_spawnattr_init(&attributes) != 0)
            return std::nullopt;
        sigset_t none;
        ::sigemptyset(&none);
        ::posix_spawnattr_setsigmask(&attributes, &none);
        ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
        pid_t agent = -1;
        int spawned = ::posix_spawnp(&agent, "pkttyagent", nullptr, &attributes,
                                     const_cast<char**>(argv), environ);
        ::posix_spawnattr_destroy(&attributes);
        if (spawned != 0)
            return std::nullopt;
        write_end.reset();
        pollfd wait{read_end.get(), POLLIN, 0};
        char byte = 0;
        // EOF (registered, or exited) or a timeout end the wait.
        while (::poll(&wait, 1, kAgentStartTimeoutMs) > 0 && ::read(read_end.get(), &byte, 1) > 0) {
        }
        int status = 0;
        if (::waitpid(agent, &status, WNOHANG) == agent)
            return std::nullopt;
        return TtyAgent(agent);
    }

    TtyAgent(TtyAgent&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
    TtyAgent& operator=(TtyAgent&&) = delete;
    TtyAgent(const TtyAgent&) = delete;
    TtyAgent& operator=(const TtyAgent&) = delete;
    ~TtyAgent()
    {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }

private:
    explicit TtyAgent(pid_t pid) : pid_(pid) {}
    pid_t pid_;
};

BusPtr open_sd_bus(const dbus::BusChoice& choice)
{
    sd_bus* raw = nullptr;
    int r = 0;
    switch (choice.kind) {
    case dbus::BusChoice::Kind::System:
        r = sd_bus_open_system(&raw);
        break;
    case dbus::BusChoice::Kind::Session:
        r = sd_bus_open_user(&raw);
        break;
    case dbus::BusChoice::Kind::Address:
        r = sd_bus_new(&raw);
        if (r >= 0) {
            BusPtr owned(raw);
            r = sd_bus_set_address(raw, choice.address.c_str());
            if (r >= 0)
                r = sd_bus_set_bus_client(raw, 1);
            if (r >= 0)
                r = sd_bus_start(raw);
            if (r >= 0)
                raw = owned.release();
        }
        break;
    }
    if (r < 0)
        throw bus_unreachable(choice, -r);
    return BusPtr(raw);
}

void check(int r, const char* what)
{
    if (r < 0)
        throw dbus::make_error("org.freedesktop.DBus.Error.Failed",
                               std::string(what) + ": " + std::strerror(-r));
}

} // namespace

bool may_ask_password(bool allowed)
{
    return allowed && ::isatty(STDIN_FILENO) == 1;
}

std::vector<std::string> call_privileged(const dbus::BusChoice& bus, const char* method,
                                         const std::vector<std::string>& args, Reply reply,
                                         bool interactive)
{
    BusPtr connection = open_sd_bus(bus);
    check(sd_bus_set_allow_interactive_authorization(connection.get(), interactive ? 1 : 0),
          "cannot allow interactive authorization");
    sd_bus_message* raw_call = nullptr;
    check(sd_bus_message_new_method_call(connection.get(), &raw_call, kmodd::dbus::kBusName,
                                         kmodd::dbus::kObjectPath, kmodd::dbus::kInterfaceName,
                                         method),
          "cannot make the call");
    MessagePtr call(raw_call);
    for (const auto& arg : args)
        check(sd_bus_message_append_basic(call.get(), 's', arg.c_str()), "cannot make the call");

    // polkit asks agents of the caller's session; pkttyagent serves this process on its terminal.
    std::optional<TtyAgent> agent =
        interactive && bus.kind == dbus::BusChoice::Kind::System ? TtyAgent::start() : std::nullopt;

    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* raw_reply = nullptr;
    int r = sd_bus_call(connection.get(), call.get(), kCallTimeoutUsec, &error, &raw_reply);
    MessagePtr answer(raw_reply);
    agent.reset();
    if (r < 0) {
        std::string name =
            sd_bus_error_is_set(&error) != 0 ? error.name : "org.freedesktop.DBus.Error.Failed";
        std::string message = error.message != nullptr ? error.message : std::strerror(-r);
        sd_bus_error_free(&error);
        throw dbus::make_error(name, message);
    }
    std::vector<std::string> strings;
    if (reply == Reply::Strings) {
        char** list = nullptr;
        check(sd_bus_message_read_strv(answer.get(), &list), "cannot read kmodd's reply");
        for (char** item = list; item != nullptr && *item != nullptr; ++item) {
            strings.emplace_back(*item);
            std::free(*item); // NOLINT(cppcoreguidelines-no-malloc): sd-bus allocates with malloc
        }
        std::free(list); // NOLINT(cppcoreguidelines-no-malloc)
    } else if (reply == Reply::Texts) {
        char type = 0;
        while (sd_bus_message_peek_type(answer.get(), &type, nullptr) > 0 && type == 's') {
            const char* text = nullptr;
            check(sd_bus_message_read_basic(answer.get(), 's', &text), "cannot read kmodd's reply");
            strings.emplace_back(text);
        }
    }
    return strings;
}

} // namespace kmodd::client
