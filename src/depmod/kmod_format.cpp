// SPDX-License-Identifier: LGPL-2.1-or-later
// Parsing and choosing the kmod release whose output depmod reproduces.
#include "depmod/kmod_format.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <charconv>

#include "base/unique_fd.hpp"
#include "depmod/index_format.hpp"

namespace kmodd::depmod {

namespace {

constexpr std::string_view kToolPrefix = "kmod version ";

/// The major release in "34", "34.2" or "kmod version 34.2\n..."; nullopt when `text` is
/// none of these.
std::optional<unsigned> major_release(std::string_view text)
{
    if (text.starts_with(kToolPrefix))
        text.remove_prefix(kToolPrefix.size());
    unsigned version = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), version);
    const std::string_view after(end, static_cast<size_t>(text.data() + text.size() - end));
    const bool ends_well = after.empty() || after.front() == '.' || after.front() == '\n' ||
                           after.front() == '-' || after.front() == '+';
    if (error != std::errc() || !ends_well)
        return std::nullopt;
    return version;
}

} // namespace

base::Result<KmodFormat> parse_kmod_format(std::string_view text)
{
    const std::optional<unsigned> version = major_release(text);
    if (!version)
        return base::make_error(EINVAL, "'" + std::string(text) +
                                            "' is not a kmod release (such as 30 or 34)");
    if (*version < KmodFormat::kOldest)
        return base::make_error(EINVAL, "kmod " + std::to_string(*version) +
                                            " is older than the oldest format written (" +
                                            std::to_string(KmodFormat::kOldest) + ")");
    return KmodFormat{*version};
}

std::optional<KmodFormat> format_of_index_files(const std::string& module_dir)
{
    using namespace index_format;
    base::UniqueFd fd(::open((module_dir + "/modules.dep.bin").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_valid())
        return std::nullopt;
    std::array<unsigned char, kHeaderSize + 1> head{};
    if (::pread(fd.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()))
        return std::nullopt; // empty (a header only) tells nothing
    auto word = [&](size_t at) {
        return uint32_t{head[at]} << 24 | uint32_t{head[at + 1]} << 16 |
               uint32_t{head[at + 2]} << 8 | uint32_t{head[at + 3]};
    };
    if (word(0) != kMagic || word(4) >> 16 != kVersionMajor)
        return std::nullopt;
    if ((word(8) & kOffsetMask) == kHeaderSize)
        return KmodFormat{34};
    const bool has_weakdep = ::access((module_dir + "/modules.weakdep").c_str(), F_OK) == 0;
    return KmodFormat{has_weakdep ? 33U : 30U};
}

ChosenFormat choose_kmod_format(std::optional<KmodFormat> forced,
                                const std::optional<std::string>& kmod_version_output,
                                const std::string& module_dir)
{
    if (forced)
        return {*forced, "as asked"};
    if (kmod_version_output) {
        std::string_view first_line(*kmod_version_output);
        first_line = first_line.substr(0, first_line.find('\n'));
        const std::optional<unsigned> version =
            first_line.starts_with(kToolPrefix) ? major_release(first_line) : std::nullopt;
        if (version && *version > 0) {
            const KmodFormat format{std::max(*version, KmodFormat::kOldest)};
            return {format, "as the installed " + std::string(first_line) + " writes"};
        }
    }
    if (auto on_disk = format_of_index_files(module_dir))
        return {*on_disk, "as the index files in " + module_dir + " are laid out"};
    return {KmodFormat{}, "the newest known, no kmod being installed"};
}

} // namespace kmodd::depmod
