// SPDX-License-Identifier: LGPL-2.1-or-later
// `kmodctl dev` end to end against kmodd in sandbox mode: the developer's file linked, loaded,
// loaded again each time it is written anew (a truncated file waited out), refused while
// another module uses it (or its holders unloaded and loaded back with --force-holders), and
// unloaded and unlinked at Ctrl-C; LinkModule's refusals.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "daemon_harness.hpp"

namespace kmodd::daemon::test {
namespace {

using kmodd::test::run_shell;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;

/// Occurrences of `needle` in `text`.
size_t count_of(const std::string& text, const std::string& needle)
{
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++count;
    return count;
}

/// `kmodctl dev ...` running, its stdout and stderr in one file.
class DevProcess {
public:
    DevProcess(const std::string& address, std::vector<std::string> args, fs::path log)
        : log_(std::move(log))
    {
        std::vector<std::string> all{KMODD_KMODCTL, "--bus", address, "dev"};
        all.insert(all.end(), args.begin(), args.end());
        int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            throw std::system_error(errno, std::generic_category(), "open " + log_.string());
        kmodd::test::SpawnOptions options;
        options.stdout_fd = fd;
        options.stderr_fd = fd;
        options.parent_death_signal = SIGKILL;
        pid_ = kmodd::test::spawn(all, options);
        ::close(fd);
    }
    DevProcess(const DevProcess&) = delete;
    DevProcess& operator=(const DevProcess&) = delete;
    ~DevProcess()
    {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    [[nodiscard]] std::string output() const { return kmodd::test::slurp(log_); }

    /// Waits until the output holds `needle` `count` times.
    bool wait_for(const std::string& needle, size_t count = 1)
    {
        return wait_until([&] { return count_of(output(), needle) >= count; }, 20s);
    }

    /// Ctrl-C; the exit status (-1 when it had to be killed).
    int interrupt()
    {
        ::kill(pid_, SIGINT);
        int status = 0;
        bool is_done = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 20s);
        if (!is_done)
            return -1;
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

private:
    fs::path log_;
    pid_t pid_ = -1;
};

/// A module tree with mod1 (which mod2 and mod3 need; it needs mod3 first, a softdep) and a
/// developer's folder outside it.
class Dev : public ::testing::Test {
protected:
    void SetUp() override
    {
        setup_.tree().add("kernel/a/mod1.ko", kFixtures / "mod1.ko");
        setup_.tree().add("kernel/a/mod3.ko", kFixtures / "mod3.ko");
        source_ = setup_.tree().root() / "home" / "driver";
        fs::create_directories(source_);
        fs::copy_file(kFixtures / "mod2.ko", source_ / "mod2.ko");
        fs::copy_file(kFixtures / "mod1.ko", source_ / "mod1.ko");
        ASSERT_TRUE(setup_.start({"--state-dir", (setup_.tree().root() / "records").string()}));
    }

    /// The build writing the module anew, as the linker does: a new file renamed over it.
    void rebuild(const std::string& name)
    {
        fs::copy_file(kFixtures / (name + ".ko"), source_ / (name + ".ko.tmp"),
                      fs::copy_options::overwrite_existing);
        fs::rename(source_ / (name + ".ko.tmp"), source_ / (name + ".ko"));
    }

    std::vector<std::string> loaded()
    {
        std::vector<std::string> names;
        if (auto rows = setup_.client().list_loaded()) {
            for (const auto& row : *rows.value)
                names.push_back(row.get<0>());
        }
        std::sort(names.begin(), names.end());
        return names;
    }

    [[nodiscard]] std::string modules_dep() const
    {
        return kmodd::test::slurp(setup_.tree().module_dir() / "modules.dep");
    }

    [[nodiscard]] fs::path log() const { return setup_.tree().root() / "dev.log"; }

    DaemonSetup setup_;
    fs::path source_;
};

TEST_F(Dev, TheModuleIsLoadedAgainEachTimeItsFileIsWrittenAndRemovedAtCtrlC)
{
    DevProcess dev(setup_.address(), {(source_ / "mod2.ko").string(), "debug=2"}, log());
    ASSERT_TRUE(dev.wait_for("loaded mod2 (with mod1, mod3)")) << dev.output();
    EXPECT_NE(modules_dep().find("updates/kmodd-dev/mod2.ko: kernel/a/mod1.ko"), std::string::npos)
        << modules_dep();
    EXPECT_EQ(loaded(), (std::vector<std::string>{"mod1", "mod2", "mod3"}));

    for (size_t round = 1; round <= 3; ++round) {
        rebuild("mod2");
        ASSERT_TRUE(dev.wait_for("reloaded mod2 in ", round)) << dev.output();
    }
    // A build caught half-written is not loaded; the whole file then is.
    {
        const std::string whole = kmodd::test::slurp(kFixtures / "mod2.ko");
        std::ofstream(source_ / "mod2.ko", std::ios::trunc) << whole.substr(0, 700);
    }
    ASSERT_TRUE(dev.wait_for("is not a complete module")) << dev.output();
    EXPECT_EQ(count_of(dev.output(), "reloaded mod2 in "), 3U) << dev.output();
    rebuild("mod2");
    ASSERT_TRUE(dev.wait_for("reloaded mod2 in ", 4)) << dev.output();
    EXPECT_EQ(loaded(), (std::vector<std::string>{"mod1", "mod2", "mod3"}));
    // Each load had the parameters given on the command line.
    auto outcome = setup_.client().call<std::map<std::string, sdbus::Variant>>("Diagnose", "mod2");
    ASSERT_TRUE(outcome) << outcome.error_message;
    EXPECT_EQ(outcome.value->at("params").get<std::string>(), "debug=2");

    EXPECT_EQ(dev.interrupt(), 0) << dev.output();
    const std::string output = dev.output();
    EXPECT_NE(output.find("4 reloads: file written -> live p50 "), std::string::npos) << output;
    EXPECT_NE(output.find("unloaded mod2"), std::string::npos) << output;
    EXPECT_NE(output.find("unlinked "), std::string::npos) << output;
    EXPECT_TRUE(loaded().empty());
    EXPECT_FALSE(fs::exists(setup_.tree().module_dir() / "updates/kmodd-dev"));
    EXPECT_EQ(modules_dep().find("kmodd-dev"), std::string::npos) << modules_dep();
    EXPECT_TRUE(fs::exists(source_ / "mod2.ko"));
}

TEST_F(Dev, AModuleInUseIsNotReloadedUnlessItsHoldersMayGo)
{
    {
        DevProcess dev(setup_.address(), {(source_ / "mod1.ko").string()}, log());
        ASSERT_TRUE(dev.wait_for("loaded mod1")) << dev.output();
        // The linked mod1 is the one the index gives: updates/ comes first.
        EXPECT_NE(modules_dep().find("kernel/a/mod3.ko: updates/kmodd-dev/mod1.ko"),
                  std::string::npos)
            << modules_dep();
        ASSERT_TRUE(setup_.client().load("mod3")) << dev.output();
        rebuild("mod1");
        ASSERT_TRUE(dev.wait_for("is not reloaded: it is used by 'mod3'")) << dev.output();
        EXPECT_NE(dev.output().find("--force-holders"), std::string::npos);
        EXPECT_EQ(count_of(dev.output(), "reloaded mod1"), 0U) << dev.output();
        EXPECT_EQ(loaded(), (std::vector<std::string>{"mod1", "mod3"}));
        EXPECT_EQ(dev.interrupt(), 0) << dev.output();
        // Still used: it stays loaded (said so), and the link goes.
        EXPECT_NE(dev.output().find("'mod1' stays loaded: it is used by 'mod3'"), std::string::npos)
            << dev.output();
        EXPECT_EQ(count_of(dev.output(), "unloaded mod1"), 0U) << dev.output();
        EXPECT_EQ(loaded(), (std::vector<std::string>{"mod1", "mod3"}));
        EXPECT_FALSE(fs::exists(setup_.tree().module_dir() / "updates/kmodd-dev/mod1.ko"));
    }
    DevProcess dev(setup_.address(), {"--force-holders", (source_ / "mod1.ko").string()},
                   setup_.tree().root() / "dev2.log");
    ASSERT_TRUE(dev.wait_for("unloaded 'mod3', which used 'mod1'")) << dev.output();
    ASSERT_TRUE(dev.wait_for("loaded 'mod3' back")) << dev.output();
    rebuild("mod1");
    ASSERT_TRUE(dev.wait_for("reloaded mod1 in ")) << dev.output();
    ASSERT_TRUE(dev.wait_for("loaded 'mod3' back", 2)) << dev.output();
    EXPECT_EQ(loaded(), (std::vector<std::string>{"mod1", "mod3"}));
    EXPECT_EQ(dev.interrupt(), 0) << dev.output();
}

TEST_F(Dev, WhatCannotBeLinkedOrUnlinkedIsRefusedWithTheReason)
{
    auto unlinked = setup_.client().call<std::string>("UnlinkModule", "mod2");
    EXPECT_EQ(unlinked.error_name, "org.kmodd1.Error.NotFound");
    auto relative = setup_.client().call<std::string>("LinkModule", "home/driver/mod2.ko");
    EXPECT_EQ(relative.error_name, "org.kmodd1.Error.InvalidName");
    std::string output;
    EXPECT_EQ(run_shell(std::string(KMODD_KMODCTL) + " --bus '" + setup_.address() + "' dev '" +
                            (source_ / "notes.txt").string() + "' 2>&1",
                        &output),
              2)
        << output;
    EXPECT_NE(output.find("is not a module file"), std::string::npos) << output;
    EXPECT_EQ(run_shell(std::string(KMODD_KMODCTL) + " --bus '" + setup_.address() +
                            "' dev --unlink mod2 2>&1",
                        &output),
              1)
        << output;
    EXPECT_NE(output.find("Module 'mod2' is not linked"), std::string::npos) << output;
}

} // namespace
} // namespace kmodd::daemon::test
