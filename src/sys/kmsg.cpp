// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading the kernel's log from a point on (/dev/kmsg, Documentation/ABI/testing/dev-kmsg).
#include "sys/kmsg.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace kmodd::sys {

KmsgCursor::KmsgCursor(const std::string& path)
    : fd_(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC))
{
    // Reading starts after the last message logged so far.
    if (fd_.is_valid() && ::lseek(fd_.get(), 0, SEEK_END) < 0)
        fd_ = base::UniqueFd();
}

std::vector<std::string> KmsgCursor::read(std::size_t limit)
{
    std::vector<std::string> messages;
    if (!fd_.is_valid() || limit == 0)
        return messages;
    // One read() returns one record; the kernel caps a record's text at about 1 KiB (8 KiB
    // with its dictionary), and refuses a smaller buffer with EINVAL.
    std::array<char, 8192> record{};
    for (;;) {
        ssize_t got = ::read(fd_.get(), record.data(), record.size());
        if (got < 0) {
            if (errno == EINTR)
                continue;
            // EPIPE: records were overwritten before they were read; the next read goes on
            // with the oldest one left.
            if (errno == EPIPE)
                continue;
            break; // EAGAIN: nothing more
        }
        if (got == 0)
            break;
        std::string text = kmsg_record_text({record.data(), static_cast<std::size_t>(got)});
        if (text.empty())
            continue;
        if (messages.size() == limit)
            messages.erase(messages.begin());
        messages.push_back(std::move(text));
    }
    return messages;
}

std::string kmsg_record_text(std::string_view record)
{
    std::size_t semicolon = record.find(';');
    if (semicolon == std::string_view::npos)
        return {};
    std::string_view text = record.substr(semicolon + 1);
    return std::string(text.substr(0, text.find('\n')));
}

std::vector<std::string> messages_about_module(const std::vector<std::string>& messages,
                                               std::string_view name)
{
    std::vector<std::string> about;
    for (const std::string& message : messages) {
        std::string_view text(message);
        bool is_its_own = text.size() > name.size() + 1 && text.substr(0, name.size()) == name &&
                          text[name.size()] == ':';
        // "word: ..." where word has no blank: a driver's or subsystem's prefix.
        std::size_t colon = text.find(": ");
        bool has_prefix = colon != std::string_view::npos &&
                          text.substr(0, colon).find(' ') == std::string_view::npos;
        bool is_loader_own = !has_prefix || text.substr(0, colon) == "Lockdown";
        if (is_its_own || is_loader_own)
            about.push_back(message);
    }
    return about;
}

} // namespace kmodd::sys
