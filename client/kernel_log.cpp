// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel's log from /dev/kmsg or, where that is closed to the user, from the journal.
#include "kernel_log.hpp"

#include <string_view>

#include <systemd/sd-journal.h>

namespace kmodd::client {

namespace {

constexpr std::size_t kMaxLines = 256;

} // namespace

KernelLog::KernelLog()
{
    if (kmsg_.is_open())
        return;
    sd_journal* journal = nullptr;
    if (sd_journal_open(&journal, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM) < 0)
        return;
    static constexpr char kKernel[] = "_TRANSPORT=kernel";
    // The user may read the kernel's messages only when the journal shows one at all (the
    // kernel logs hundreds at boot); positioned on the last, the next read starts after it.
    if (sd_journal_add_match(journal, kKernel, sizeof kKernel - 1) < 0 ||
        sd_journal_seek_tail(journal) < 0 || sd_journal_previous(journal) <= 0 ||
        sd_journal_get_fd(journal) < 0) {
        sd_journal_close(journal);
        return;
    }
    journal_ = journal;
}

KernelLog::~KernelLog()
{
    if (journal_ != nullptr)
        sd_journal_close(journal_);
}

std::string KernelLog::source() const
{
    if (kmsg_.is_open())
        return "/dev/kmsg";
    return journal_ != nullptr ? "the journal" : "";
}

int KernelLog::fd() const
{
    if (kmsg_.is_open())
        return kmsg_.fd();
    return journal_ != nullptr ? sd_journal_get_fd(journal_) : -1;
}

std::vector<std::string> KernelLog::read()
{
    if (kmsg_.is_open())
        return kmsg_.read(kMaxLines);
    std::vector<std::string> lines;
    if (journal_ == nullptr)
        return lines;
    sd_journal_process(journal_);
    while (lines.size() < kMaxLines && sd_journal_next(journal_) > 0) {
        const void* data = nullptr;
        std::size_t length = 0;
        if (sd_journal_get_data(journal_, "MESSAGE", &data, &length) < 0)
            continue;
        std::string field(static_cast<const char*>(data), length);
        static constexpr std::string_view kPrefix = "MESSAGE=";
        if (field.starts_with(kPrefix))
            lines.push_back(field.substr(kPrefix.size()));
    }
    return lines;
}

} // namespace kmodd::client
