// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl dev PATH.ko [PARAM=VALUE...]`: a module under development linked into the running
// kernel's tree, loaded, and loaded again each time the build rewrites its file, with the
// kernel's lines about it shown as they come; Ctrl-C unloads and unlinks it.
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "bus_client.hpp"
#include "commands.hpp"
#include "index/names.hpp"
#include "kernel_log.hpp"
#include "kmodd_dbus_names.hpp"
#include "loader/load_check.hpp"
#include "loader/parameters.hpp"

namespace kmodd::client {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// How long a file must stay unchanged after the build's last write before it is loaded: the
/// linker writes in pieces, and `make` may touch it again (signing, stripping).
constexpr milliseconds kQuiet{200};

/// What identifies one version of the file.
struct FileStamp {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    timespec mtime{};

    friend bool operator==(const FileStamp& a, const FileStamp& b)
    {
        return a.device == b.device && a.inode == b.inode && a.size == b.size &&
               a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec;
    }
};

std::optional<FileStamp> stamp_of(const std::string& path)
{
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0 || !S_ISREG(status.st_mode))
        return std::nullopt;
    return FileStamp{status.st_dev, status.st_ino, status.st_size, status.st_mtim};
}

/// Milliseconds from `then` (CLOCK_REALTIME, a file's mtime) to now.
int64_t ms_since(const timespec& then)
{
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return (now.tv_sec - then.tv_sec) * 1000 + (now.tv_nsec - then.tv_nsec) / 1'000'000;
}

/// Whether `text` names `module` as a word ('-' and '_' alike): a driver's lines start with
/// "NAME:" or the device's name, and a module's own printk may quote it anywhere.
bool mentions(const std::string& text, const std::string& module)
{
    std::string line = index::normalize_modname(text);
    auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    for (size_t at = line.find(module); at != std::string::npos; at = line.find(module, at + 1)) {
        const size_t end = at + module.size();
        if ((at == 0 || !is_word(line[at - 1])) && (end == line.size() || !is_word(line[end])))
            return true;
    }
    return false;
}

bool is_error(const sdbus::Error& error, const char* name)
{
    return error.getName() == name;
}

/// The loop of one `kmodctl dev` run.
class DevLoop {
public:
    DevLoop(BusSession& session, std::string file, std::string params)
        : session_(session), file_(std::move(file)), params_(std::move(params)),
          dir_(file_.substr(0, file_.rfind('/'))), basename_(file_.substr(file_.rfind('/') + 1)),
          module_(index::modname_from_path(basename_)), keep_(session.has_flag("--keep")),
          force_holders_(session.has_flag("--force-holders"))
    {
    }

    void run()
    {
        set_up_fds();
        if (!kmsg_.is_open())
            std::fprintf(stderr, "kmodctl: note: the kernel's messages are not shown: neither "
                                 "/dev/kmsg (root) nor the journal's kernel messages (groups adm, "
                                 "systemd-journal) may be read by this user\n");
        while (!is_complete(stamp_of(file_))) {
            std::printf("waiting for %s to be built\n", base::quoted(file_).c_str());
            std::fflush(stdout);
            if (!wait_for_change())
                return;
        }
        const auto linked = link();
        if (linked.size() == 2) {
            module_ = linked[0];
            std::printf("linked %s as %s\n", base::quoted(file_).c_str(),
                        base::quoted(linked[1]).c_str());
        }
        is_linked_ = true;
        reload(/*is_first=*/true);
        while (wait_for_change())
            reload(/*is_first=*/false);
        finish();
    }

private:
    void set_up_fds()
    {
        sigset_t stop;
        ::sigemptyset(&stop);
        ::sigaddset(&stop, SIGINT);
        ::sigaddset(&stop, SIGTERM);
        ::sigaddset(&stop, SIGHUP);
        if (::sigprocmask(SIG_BLOCK, &stop, nullptr) != 0)
            throw CommandError(std::string("sigprocmask: ") + std::strerror(errno));
        signal_fd_ = base::UniqueFd(::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!signal_fd_.is_valid())
            throw CommandError(std::string("signalfd: ") + std::strerror(errno));
        inotify_fd_ = base::UniqueFd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
        if (!inotify_fd_.is_valid())
            throw CommandError(std::string("inotify: ") + std::strerror(errno));
        // `make` replaces the file or rewrites it in place: the folder sees both.
        constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_MOVED_TO |
                                   IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
        if (::inotify_add_watch(inotify_fd_.get(), dir_.c_str(), kMask) < 0)
            throw CommandError("cannot watch " + base::quoted(dir_) + ": " + std::strerror(errno));
    }

    /// LinkModule: the module's name and the link.
    std::vector<std::string> link()
    {
        try {
            return session_.call_privileged("LinkModule", {file_}, Reply::Texts);
        } catch (const sdbus::Error& error) {
            // kmodd.service has a /tmp of its own (PrivateTmp=yes): the file is not there.
            if (is_error(error, dbus::kErrorNotFound) &&
                (file_.starts_with("/tmp/") || file_.starts_with("/var/tmp/")))
                throw CommandError(describe_error(error, session_.bus()) +
                                   " kmodd cannot see files in /tmp and /var/tmp (its service "
                                   "has a private /tmp): build the module in another directory");
            throw;
        }
    }

    /// Whether the file at `stamp` is a whole module; says once per version when it is not.
    bool is_complete(const std::optional<FileStamp>& stamp)
    {
        if (!stamp)
            return false;
        auto image = loader::read_module_image(file_);
        if (image)
            return true;
        if (!(refused_ && *refused_ == *stamp)) {
            std::printf("waiting: %s is not a complete module (%s)\n", base::quoted(file_).c_str(),
                        image.error().message.c_str());
            std::fflush(stdout);
        }
        refused_ = stamp;
        return false;
    }

    /// Waits until the file is written anew, whole, and quiet for kQuiet; shows the kernel's
    /// lines meanwhile. False when a signal (or the folder's removal) ends the run.
    bool wait_for_change()
    {
        std::optional<Clock::time_point> last_event;
        for (;;) {
            int timeout = -1;
            if (last_event) {
                auto left =
                    std::chrono::duration_cast<milliseconds>(*last_event + kQuiet - Clock::now());
                timeout = static_cast<int>(std::max<int64_t>(left.count(), 0));
            }
            std::array<pollfd, 3> fds{{{signal_fd_.get(), POLLIN, 0},
                                       {inotify_fd_.get(), POLLIN, 0},
                                       {kmsg_.fd(), POLLIN, 0}}};
            int ready = ::poll(fds.data(), kmsg_.is_open() ? 3 : 2, timeout);
            if (ready < 0 && errno != EINTR)
                throw CommandError(std::string("poll: ") + std::strerror(errno));
            if ((fds[0].revents & POLLIN) != 0)
                return false;
            if ((fds[2].revents & POLLIN) != 0)
                show_kernel_lines();
            if ((fds[1].revents & POLLIN) != 0) {
                if (!read_events())
                    return false;
                if (is_touched_)
                    last_event = Clock::now();
                is_touched_ = false;
                continue;
            }
            if (!last_event || Clock::now() < *last_event + kQuiet)
                continue;
            last_event.reset();
            auto stamp = stamp_of(file_);
            if (!stamp || (loaded_ && *loaded_ == *stamp))
                continue;
            if (is_complete(stamp))
                return true;
        }
    }

    /// Reads the inotify events; notes whether one concerned the file. False when the folder
    /// went away.
    bool read_events()
    {
        alignas(inotify_event) std::array<char, 8192> buffer{};
        for (;;) {
            ssize_t got = ::read(inotify_fd_.get(), buffer.data(), buffer.size());
            if (got <= 0)
                return true;
            for (size_t at = 0; at < static_cast<size_t>(got);) {
                inotify_event event{};
                std::memcpy(&event, buffer.data() + at, sizeof event);
                std::string name =
                    event.len > 0 ? std::string(buffer.data() + at + sizeof event) : std::string();
                at += sizeof event + event.len;
                if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0) {
                    std::fprintf(stderr, "kmodctl: %s went away; stopping\n",
                                 base::quoted(dir_).c_str());
                    return false;
                }
                if (name == basename_)
                    is_touched_ = true;
            }
        }
    }

    void show_kernel_lines()
    {
        for (const auto& line : kmsg_.read()) {
            if (mentions(line, module_))
                std::printf("kernel: %s\n", line.c_str());
        }
        std::fflush(stdout);
    }

    /// Unloads the module (and its holders with --force-holders, which it returns in the order
    /// to load them back). False when it stays loaded, said on stderr (for a reload, or at
    /// the end: `is_reloading` false, where holders are never unloaded).
    bool unload(std::vector<std::string>& holders, bool is_reloading = true)
    {
        try {
            std::ignore = session_.call_privileged("Unload", {module_}, Reply::Strings);
            return true;
        } catch (const sdbus::Error& error) {
            if (is_error(error, dbus::kErrorNotFound))
                return true; // not loaded
            if (!is_error(error, dbus::kErrorInUse))
                throw;
            auto [users, index_users, plan, why] = session_.manager().ListHolders(module_);
            std::ignore = index_users;
            std::ignore = plan;
            std::string names;
            for (const auto& user : users)
                names += (names.empty() ? "" : ", ") + base::quoted(user);
            if (!force_holders_ && !is_reloading) {
                std::fprintf(stderr, "kmodctl: %s stays loaded: %s%s\n",
                             base::quoted(module_).c_str(),
                             users.empty() ? why.c_str() : "it is used by ", names.c_str());
                return false;
            }
            if (!force_holders_ || users.empty()) {
                std::fprintf(stderr,
                             "kmodctl: %s is not reloaded: %s%s; unload %s, or run kmodctl dev "
                             "with --force-holders\n",
                             base::quoted(module_).c_str(),
                             users.empty() ? why.c_str() : "it is used by ", names.c_str(),
                             users.empty()       ? "what uses it"
                             : users.size() == 1 ? "it"
                                                 : "them");
                return false;
            }
            for (const auto& user : users) {
                std::ignore = session_.call_privileged("Unload", {user}, Reply::Strings);
                holders.insert(holders.begin(), user);
            }
            std::printf("unloaded %s, which used %s\n", names.c_str(),
                        base::quoted(module_).c_str());
            std::ignore = session_.call_privileged("Unload", {module_}, Reply::Strings);
            return true;
        }
    }

    void reload(bool is_first)
    {
        const std::optional<FileStamp> stamp = stamp_of(file_);
        if (!stamp)
            return;
        loaded_ = stamp;
        std::vector<std::string> holders;
        try {
            if (!unload(holders))
                return;
            is_loaded_ = false;
            if (kmsg_.is_open())
                show_kernel_lines();
            auto inserted = session_.call_privileged("Load", {module_, params_}, Reply::Strings);
            const int64_t took = ms_since(stamp->mtime);
            is_loaded_ = true;
            std::string also;
            for (const auto& name : inserted) {
                if (name != module_)
                    also += (also.empty() ? " (with " : ", ") + name;
            }
            if (!also.empty())
                also += ")";
            if (is_first) {
                std::printf("loaded %s%s\n", module_.c_str(), also.c_str());
            } else {
                reload_ms_.push_back(took);
                std::printf("reloaded %s in %lld ms (file written -> live)%s\n", module_.c_str(),
                            static_cast<long long>(took), also.c_str());
            }
        } catch (const sdbus::Error& error) {
            std::fprintf(stderr, "kmodctl: %s\n", describe_error(error, session_.bus()).c_str());
        }
        for (const auto& holder : holders) {
            try {
                std::ignore = session_.call_privileged("Load", {holder, ""}, Reply::Strings);
                std::printf("loaded %s back\n", base::quoted(holder).c_str());
            } catch (const sdbus::Error& error) {
                std::fprintf(stderr, "kmodctl: %s\n",
                             describe_error(error, session_.bus()).c_str());
            }
        }
        if (kmsg_.is_open())
            show_kernel_lines();
        std::fflush(stdout);
    }

    /// Ctrl-C: the module unloaded and unlinked unless --keep; the reload figures.
    void finish()
    {
        if (kmsg_.is_open())
            show_kernel_lines();
        if (!reload_ms_.empty()) {
            std::vector<int64_t> sorted = reload_ms_;
            std::sort(sorted.begin(), sorted.end());
            std::printf("%zu reloads: file written -> live p50 %lld ms, max %lld ms\n",
                        sorted.size(), static_cast<long long>(sorted[(sorted.size() - 1) / 2]),
                        static_cast<long long>(sorted.back()));
        }
        force_holders_ = false; // what uses the module at the end stays
        if (keep_) {
            std::printf("kept %s loaded and linked (kmodctl dev --unlink %s removes the link)\n",
                        module_.c_str(), module_.c_str());
            return;
        }
        std::vector<std::string> holders;
        try {
            if (is_loaded_ && unload(holders, /*is_reloading=*/false))
                std::printf("unloaded %s\n", module_.c_str());
            if (kmsg_.is_open())
                show_kernel_lines();
        } catch (const sdbus::Error& error) {
            std::fprintf(stderr, "kmodctl: %s\n", describe_error(error, session_.bus()).c_str());
        }
        if (is_linked_) {
            auto removed = session_.call_privileged("UnlinkModule", {module_}, Reply::Texts);
            std::printf("unlinked %s\n",
                        removed.empty() ? module_.c_str() : base::quoted(removed[0]).c_str());
        }
    }

    BusSession& session_;
    std::string file_;
    std::string params_;
    std::string dir_;
    std::string basename_;
    std::string module_;
    const bool keep_;
    bool force_holders_;
    KernelLog kmsg_;
    base::UniqueFd signal_fd_;
    base::UniqueFd inotify_fd_;
    bool is_touched_ = false;
    bool is_linked_ = false;
    bool is_loaded_ = false;           ///< the last Load succeeded and no Unload followed
    std::optional<FileStamp> loaded_;  ///< the version last loaded
    std::optional<FileStamp> refused_; ///< the version last found incomplete
    std::vector<int64_t> reload_ms_;
};

} // namespace

int run_dev(int argc, char** argv)
{
    static constexpr BusCommandSpec kSpec{
        "dev", "PATH.ko [PARAM=VALUE...] | --unlink MODULE", 1, SIZE_MAX, true,
        false, {"--keep", "--force-holders", "--unlink"}};
    return run_bus_command(argc, argv, kSpec, [](BusSession& session) {
        const auto& operands = session.operands();
        if (session.json())
            throw UsageError("'dev' does not take --json: it prints as things happen");
        if (session.has_flag("--unlink")) {
            if (operands.size() != 1)
                throw UsageError("--unlink takes one module name");
            auto removed = session.call_privileged("UnlinkModule", {operands[0]}, Reply::Texts);
            if (!removed.empty())
                print_line("unlinked " + base::quoted(removed[0]));
            return;
        }
        std::string file = base::absolute_from_cwd(operands[0]);
        const std::string basename = file.substr(file.rfind('/') + 1);
        if (!index::has_module_extension(basename))
            throw UsageError(base::quoted(operands[0]) +
                             " is not a module file (NAME.ko, .ko.xz, .ko.zst or .ko.gz)");
        if (char* real = ::realpath(file.substr(0, file.rfind('/')).c_str(), nullptr)) {
            file = std::string(real) + "/" + basename;
            std::free(real); // NOLINT(cppcoreguidelines-no-malloc): realpath allocates with malloc
        } else {
            throw CommandError("cannot find the folder of " + base::quoted(operands[0]) + ": " +
                               std::strerror(errno));
        }
        DevLoop loop(session, std::move(file),
                     loader::join_parameters(std::span(operands).subspan(1)));
        loop.run();
    });
}

} // namespace kmodd::client
