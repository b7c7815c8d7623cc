// SPDX-License-Identifier: LGPL-2.1-or-later
// The journal's view of index rebuilds: one line per version rebuilt, each complaint once.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "index/diagnostic.hpp"
#include "service/index_service.hpp"

namespace kmodd::daemon {

/// Logs what rebuilds did. The same complaint comes with every rebuild of a tree (a missing
/// modules.builtin, a bad alias): it is logged at its level when it is new, then at debug.
/// A write that fails (a full disk, a read-only tree) is logged once per failure, not per
/// change retried, and its end once.
/// Loop thread only.
class ReportLog {
public:
    void note(const std::vector<service::VersionReport>& reports);

private:
    void note_diagnostics(const std::string& version, const index::Diagnostics& diagnostics);

    std::map<std::string, std::set<std::string>> known_; ///< by version: messages said already
    std::map<std::string, std::string> failing_; ///< by version: the write failure said last
};

} // namespace kmodd::daemon
