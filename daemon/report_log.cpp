// SPDX-License-Identifier: LGPL-2.1-or-later
// Logging rebuild reports, each diagnostic once while it lasts.
#include "report_log.hpp"

#include <spdlog/spdlog.h>

namespace kmodd::daemon {

namespace {

using Action = service::VersionReport::Action;

const char* action_text(Action action)
{
    switch (action) {
    case Action::Current:
        return "current";
    case Action::Written:
        return "written";
    case Action::Unchanged:
        return "unchanged";
    case Action::Removed:
        return "removed";
    case Action::Failed:
        break;
    }
    return "failed";
}

} // namespace

void ReportLog::note(const std::vector<service::VersionReport>& reports)
{
    for (const auto& report : reports) {
        // Full walks list everything again; single-path updates list only what they met.
        if (report.was_full_walk || report.action == Action::Written)
            note_diagnostics(report.version, report.diagnostics);
        switch (report.action) {
        case Action::Written:
            if (failing_.erase(report.version) > 0)
                spdlog::info("index of '{}' written again after the failure", report.version);
            spdlog::info("index of '{}' written: {} modules, {} files replaced, {} parsed, {} ms",
                         report.version, report.modules, report.stats.files_written,
                         report.stats.files_parsed,
                         static_cast<double>(report.stats.duration.count()) / 1000.0);
            break;
        case Action::Failed:
            if (auto [it, is_new] = failing_.try_emplace(report.version, report.error.message);
                is_new || it->second != report.error.message) {
                it->second = report.error.message;
                spdlog::error("index of '{}' not updated: {} (the previous index files stay; "
                              "every change retries)",
                              report.version, report.error.message);
            } else {
                spdlog::debug("index of '{}' still not updated: {}", report.version,
                              report.error.message);
            }
            break;
        case Action::Removed:
            failing_.erase(report.version);
            spdlog::info("kernel release '{}' is gone: its index is dropped", report.version);
            break;
        default:
            spdlog::debug("index of '{}' {}: {} modules", report.version,
                          action_text(report.action), report.modules);
            break;
        }
    }
}

void ReportLog::note_diagnostics(const std::string& version, const index::Diagnostics& diagnostics)
{
    std::set<std::string>& known = known_[version];
    std::set<std::string> now;
    for (const auto& diagnostic : diagnostics) {
        now.insert(diagnostic.message);
        if (known.contains(diagnostic.message) ||
            diagnostic.level == index::Diagnostic::Level::Info) {
            spdlog::debug("{}: {}", version, diagnostic.message);
            continue;
        }
        if (diagnostic.level == index::Diagnostic::Level::Warning)
            spdlog::warn("{}: {}", version, diagnostic.message);
        else
            spdlog::error("{}: {}", version, diagnostic.message);
    }
    known = std::move(now);
}

} // namespace kmodd::daemon
