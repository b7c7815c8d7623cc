// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel's log as it grows: the lines it writes while one module call runs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.hpp"

namespace kmodd::sys {

/// A reader of /dev/kmsg placed at its end when made: read() returns the messages the kernel
/// logged since. A log that cannot be opened (no /dev/kmsg, no permission) reads as empty.
class KmsgCursor {
public:
    explicit KmsgCursor(const std::string& path = "/dev/kmsg");

    /// The text of each message logged since the cursor was made or last read, oldest first,
    /// at most `limit` of them (the latest are kept). Never blocks.
    [[nodiscard]] std::vector<std::string> read(std::size_t limit = 64);

    /// Whether the log could be opened (else read() is always empty).
    [[nodiscard]] bool is_open() const { return fd_.is_valid(); }
    /// The descriptor to poll for new messages (POLLIN); -1 when not open.
    [[nodiscard]] int fd() const { return fd_.get(); }

private:
    base::UniqueFd fd_;
};

/// The text of one /dev/kmsg record ("6,1234,5678,-;dev_a: live\n SUBSYSTEM=x\n" gives
/// "dev_a: live"): the part after the first ';' up to the first newline; "" when the record
/// has no ';'. The kernel's \xNN escapes of unprintable bytes are kept as they are.
[[nodiscard]] std::string kmsg_record_text(std::string_view record);

/// The messages of `messages` about the insertion of module `name`: those that start with
/// "NAME: " (the kernel's module loader prefixes most), and the loader's own messages that name
/// no module ("Loading of unsigned module is rejected", "Lockdown: ...") — a message that starts
/// with another "word: " is another driver's and is left out.
[[nodiscard]] std::vector<std::string>
messages_about_module(const std::vector<std::string>& messages, std::string_view name);

} // namespace kmodd::sys
