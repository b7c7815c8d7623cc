// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading the running kernel's facts for kmodctl check.
#include "sys/kernel_facts.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "sys/kernel.hpp"

namespace kmodd::sys {
namespace {

std::optional<std::string> read_text(const std::string& path)
{
    auto text = base::read_file(AT_FDCWD, path);
    if (!text)
        return std::nullopt;
    return std::move(*text);
}

std::optional<bool> read_flag(const std::string& path)
{
    auto text = read_text(path);
    if (!text)
        return std::nullopt;
    std::string_view value = base::trim(*text);
    return value == "1" || value == "Y" || value == "y";
}

/// The first path `pattern` matches, "" when none.
std::string first_match(const std::string& pattern)
{
    glob_t found{};
    std::string path;
    if (::glob(pattern.c_str(), 0, nullptr, &found) == 0 && found.gl_pathc > 0)
        path = found.gl_pathv[0];
    ::globfree(&found);
    return path;
}

std::string existing(const std::string& path)
{
    return ::access(path.c_str(), F_OK) == 0 ? path : std::string();
}

} // namespace

std::string parse_lockdown(std::string_view text)
{
    size_t open = text.find('[');
    size_t close = text.find(']', open);
    if (open == std::string_view::npos || close == std::string_view::npos)
        return "";
    return std::string(text.substr(open + 1, close - open - 1));
}

std::vector<std::string> parse_key_names(std::string_view text)
{
    std::vector<std::string> names;
    for (std::string_view line : base::split_lines(text)) {
        // id flags usage timeout "perm" permissions uid gid type description: summary
        std::vector<std::string_view> fields = base::split_tokens(line, " ");
        // The type column is cut to nine characters: "asymmetri".
        if (fields.size() < 9 || !std::string_view("asymmetric").starts_with(fields[7]) ||
            fields[7].size() < 9)
            continue;
        std::string_view rest = line.substr(static_cast<size_t>(fields[8].data() - line.data()));
        // The description ends at the summary's ": "; a key's description is "name: key id".
        size_t summary = rest.rfind(": ");
        std::string_view description = rest.substr(0, summary);
        size_t id = description.rfind(": ");
        names.emplace_back(description.substr(0, id));
    }
    return names;
}

KernelFacts read_kernel_facts(const std::string& root, const std::string& release,
                              bool with_exports)
{
    KernelFacts facts;
    facts.release = release;
    if (facts.release.empty()) {
        utsname names{};
        if (::uname(&names) == 0)
            facts.release = names.release;
    }
    facts.sig_enforce = read_flag(root + "sys/module/module/parameters/sig_enforce");
    if (auto text = read_text(root + "sys/kernel/security/lockdown"))
        facts.lockdown = parse_lockdown(*text);
    facts.modules_disabled = read_flag(root + "proc/sys/kernel/modules_disabled");
    if (auto text = read_text(root + "proc/keys")) {
        auto names = parse_key_names(*text);
        if (!names.empty())
            facts.key_names = std::move(names);
    }
    if (auto text = with_exports ? read_text(root + "proc/kallsyms") : std::nullopt) {
        std::set<std::string, std::less<>> exports;
        for (std::string_view line : base::split_lines(*text)) {
            size_t at = line.find(" __ksymtab_");
            if (at == std::string_view::npos)
                continue;
            std::string_view name = line.substr(at + 11);
            name = name.substr(0, name.find_first_of(" \t"));
            exports.emplace(name);
        }
        // Without root every address reads 0 but the names are there; an empty set means the
        // file told nothing (a kernel without kallsyms of its exports).
        if (!exports.empty())
            facts.exports = std::move(exports);
    }
    if (auto text = read_text(root + "proc/modules")) {
        for (std::string_view line : base::split_lines(*text)) {
            std::string_view name = line.substr(0, line.find(' '));
            if (!name.empty())
                facts.loaded.emplace(name);
        }
    }
    facts.sign_file =
        existing(root + "usr/src/linux-headers-" + facts.release + "/scripts/sign-file");
    if (facts.sign_file.empty())
        facts.sign_file = first_match(root + "usr/lib/linux-kbuild-*/scripts/sign-file");
    facts.dkms_key = existing(root + "var/lib/dkms/mok.key");
    facts.dkms_cert = existing(root + "var/lib/dkms/mok.pub");
    return facts;
}

KernelFacts Kernel::facts(const std::string& release, bool with_exports)
{
    (void)with_exports;
    KernelFacts facts;
    facts.release = release;
    if (auto loaded = loaded_modules()) {
        for (const LoadedModule& module : *loaded)
            facts.loaded.insert(module.name);
    }
    return facts;
}

} // namespace kmodd::sys
