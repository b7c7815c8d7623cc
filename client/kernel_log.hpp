// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel's log as it grows, for a person watching a module (kmodctl dev): /dev/kmsg where
// it may be read, else the kernel's messages in the journal.
#pragma once

#include <string>
#include <vector>

#include "sys/kmsg.hpp"

struct sd_journal;

namespace kmodd::client {

/// New kernel log lines, from /dev/kmsg when this process may read it (root, or
/// kernel.dmesg_restrict=0), else from the system journal's kernel transport (readable by
/// members of adm and systemd-journal on Debian): the policy of the system decides, kmodctl
/// gets no more than its user may read. Starts at the end of the log.
class KernelLog {
public:
    KernelLog();
    ~KernelLog();
    KernelLog(const KernelLog&) = delete;
    KernelLog& operator=(const KernelLog&) = delete;

    /// Whether either source could be opened.
    [[nodiscard]] bool is_open() const { return kmsg_.is_open() || journal_ != nullptr; }
    /// "/dev/kmsg" or "the journal" (empty when none).
    [[nodiscard]] std::string source() const;
    /// The descriptor to poll for POLLIN; -1 when none.
    [[nodiscard]] int fd() const;
    /// The lines logged since the last read (or the start), oldest first. Never blocks.
    [[nodiscard]] std::vector<std::string> read();

private:
    sys::KmsgCursor kmsg_;
    sd_journal* journal_ = nullptr;
};

} // namespace kmodd::client
