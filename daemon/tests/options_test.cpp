// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd's command line and configuration file: defaults, precedence, bad input.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "options.hpp"

namespace kmodd::daemon {
namespace {

namespace fs = std::filesystem;

/// argv for parse_command_line, with "--config" pointing at `config` unless it is empty
/// (then at a file that does not exist, so the machine's own file never leaks in).
class Args {
public:
    Args(std::vector<std::string> args, const std::string& config = "")
    {
        storage_.push_back("kmodd");
        if (!config.empty()) {
            storage_.push_back("--config");
            storage_.push_back(config);
        }
        for (auto& arg : args)
            storage_.push_back(std::move(arg));
        for (auto& arg : storage_)
            argv_.push_back(arg.data());
    }
    int argc() { return static_cast<int>(argv_.size()); }
    char** argv() { return argv_.data(); }

private:
    std::vector<std::string> storage_;
    std::vector<char*> argv_;
};

class ConfigFile {
public:
    explicit ConfigFile(const std::string& text)
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-conf-XXXXXX").string();
        int fd = ::mkstemp(pattern.data());
        ::close(fd);
        path_ = pattern;
        std::ofstream(path_) << text;
    }
    ~ConfigFile() { fs::remove(path_); }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST(DaemonOptions, DefaultsServeTheRunningKernelOnTheSystemBus)
{
    ConfigFile empty("{}");
    Args args({}, empty.path());
    auto parsed = parse_command_line(args.argc(), args.argv());
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->options.bus.kind, dbus::BusChoice::Kind::System);
    EXPECT_EQ(parsed->options.modules_dir, "/lib/modules");
    EXPECT_EQ(parsed->options.base_dir(), "");
    EXPECT_TRUE(parsed->options.kernel_release.empty());
    EXPECT_EQ(parsed->options.state_path(), "/run/kmodd");
    EXPECT_FALSE(parsed->options.autoload.has_value());
}

TEST(DaemonOptions, EveryOptionOfTheIssueIsAccepted)
{
    ConfigFile empty("{}");
    Args args({"--bus", "unix:path=/tmp/x", "--modules-dir", "/tmp/root/lib/modules/",
               "--kernel-release", "6.1.0-test", "--sandbox-kernel", "/tmp/sandbox",
               "--debounce-ms", "20", "--autoload=unbound-only", "--log-level", "debug"},
              empty.path());
    auto parsed = parse_command_line(args.argc(), args.argv());
    ASSERT_TRUE(parsed) << parsed.error().message;
    const DaemonOptions& options = parsed->options;
    EXPECT_EQ(options.bus.kind, dbus::BusChoice::Kind::Address);
    EXPECT_EQ(options.bus.address, "unix:path=/tmp/x");
    EXPECT_EQ(options.modules_dir, "/tmp/root/lib/modules");
    EXPECT_EQ(options.base_dir(), "/tmp/root");
    EXPECT_EQ(options.kernel_release, "6.1.0-test");
    EXPECT_EQ(options.state_path(), "/tmp/sandbox");
    EXPECT_EQ(options.debounce.count(), 20);
    EXPECT_EQ(options.autoload, AutoloadMode::UnboundOnly);
    EXPECT_EQ(options.log_level, "debug");
}

TEST(DaemonOptions, TheShippedExampleConfigurationIsAcceptedAsItIs)
{
    // packaging/examples/kmodd.conf, installed under /usr/share/doc/kmodd/examples.
    Args args({}, KMODD_EXAMPLE_CONFIG);
    auto parsed = parse_command_line(args.argc(), args.argv());
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->options.debounce.count(), 50);
    EXPECT_EQ(parsed->options.max_delay.count(), 1000);
    EXPECT_EQ(parsed->options.log_level, "info");
    EXPECT_EQ(parsed->options.modules_dir, "/lib/modules");
    EXPECT_FALSE(parsed->options.autoload) << "commented out: decided at start";
}

TEST(DaemonOptions, TheCommandLineWinsOverTheConfigurationFile)
{
    ConfigFile file(R"({"bus": "session", "debounce-ms": 200, "log-level": "warning",
                        "modprobe-config": ["/etc/a.conf", "/etc/b.conf"], "durable": false})");
    Args args({"--debounce-ms", "10", "--modprobe-config", "/tmp/c.conf"}, file.path());
    auto parsed = parse_command_line(args.argc(), args.argv());
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->options.bus.kind, dbus::BusChoice::Kind::Session);
    EXPECT_EQ(parsed->options.debounce.count(), 10);
    EXPECT_EQ(parsed->options.log_level, "warn");
    EXPECT_EQ(parsed->options.modprobe_config, std::vector<std::string>{"/tmp/c.conf"});
    EXPECT_FALSE(parsed->options.durable);
}

TEST(DaemonOptions, BadInputIsRefusedWithTheOptionNamed)
{
    ConfigFile empty("{}");
    for (std::vector<std::string> bad :
         std::vector<std::vector<std::string>>{{"--bogus"},
                                               {"--debounce-ms", "soon"},
                                               {"--debounce-ms", "-5"},
                                               {"--autoload=maybe"},
                                               {"--bus", "nowhere"},
                                               {"--modules-dir", "/tmp/modules"},
                                               {"--kernel-release", "../etc"},
                                               {"--log-level", "loud"},
                                               {"--debounce-ms"},
                                               {"positional"}}) {
        Args args(bad, empty.path());
        auto parsed = parse_command_line(args.argc(), args.argv());
        ASSERT_FALSE(parsed) << bad.front();
        EXPECT_EQ(parsed.error().code, EINVAL) << bad.front();
    }
}

TEST(DaemonOptions, ABadConfigurationFileIsRefusedWithItsName)
{
    for (const char* text :
         {"not json", "[1, 2]", R"({"unknown-key": 1})", R"({"modprobe-config": "/not/an/array"})",
          R"({"debounce-ms": "x"})"}) {
        ConfigFile file(text);
        Args args({}, file.path());
        auto parsed = parse_command_line(args.argc(), args.argv());
        ASSERT_FALSE(parsed) << text;
        EXPECT_NE(parsed.error().message.find(file.path()), std::string::npos)
            << parsed.error().message;
    }
    Args missing({}, "/nonexistent/kmodd.conf");
    auto parsed = parse_command_line(missing.argc(), missing.argv());
    ASSERT_FALSE(parsed) << "an explicit --config must exist";
    EXPECT_EQ(parsed.error().code, ENOENT);
}

TEST(DaemonOptions, HelpStopsParsing)
{
    Args args({"--help", "--bogus"});
    auto parsed = parse_command_line(args.argc(), args.argv());
    ASSERT_TRUE(parsed);
    EXPECT_TRUE(parsed->show_help);
}

} // namespace
} // namespace kmodd::daemon
