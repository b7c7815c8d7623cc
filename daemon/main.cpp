// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd: keeps the module index current and loads modules on request over D-Bus.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include "base/allocator.hpp"
#include "daemon.hpp"
#include "options.hpp"

namespace {

/// Under systemd (JOURNAL_STREAM names our stderr) log to the journal with priorities;
/// otherwise plain lines on stderr.
void set_up_logging(const std::string& level)
{
    std::shared_ptr<spdlog::logger> logger;
    if (std::getenv("JOURNAL_STREAM") != nullptr) {
        logger = std::make_shared<spdlog::logger>(
            "kmodd", std::make_shared<spdlog::sinks::systemd_sink_mt>("kmodd"));
        logger->set_pattern("%v");
    } else {
        logger = std::make_shared<spdlog::logger>(
            "kmodd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_pattern("kmodd: %l: %v");
    }
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

int run(int argc, char** argv)
{
    auto command_line = kmodd::daemon::parse_command_line(argc, argv);
    if (!command_line) {
        std::fprintf(stderr, "kmodd: %s\nTry 'kmodd --help'.\n",
                     command_line.error().message.c_str());
        return 2;
    }
    if (command_line->show_help) {
        std::fputs(kmodd::daemon::usage_text("kmodd").c_str(), stdout);
        return 0;
    }
    if (command_line->show_version) {
        std::printf("kmodd %s\n", KMODD_VERSION);
        return 0;
    }
    set_up_logging(command_line->options.log_level);
    // A long-running process: freed memory is kept for the next rebuild.
    kmodd::base::keep_freed_memory_for_reuse();
    auto daemon = kmodd::daemon::Daemon::create(std::move(command_line->options));
    if (!daemon) {
        spdlog::critical("{}", daemon.error().message);
        return 1;
    }
    if (auto ran = (*daemon)->run(); !ran) {
        spdlog::critical("{}", ran.error().message);
        return 1;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "kmodd: unexpected error: %s\n", error.what());
    } catch (...) {
        std::fputs("kmodd: unexpected error\n", stderr);
    }
    return 1;
}
