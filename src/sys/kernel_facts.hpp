// SPDX-License-Identifier: LGPL-2.1-or-later
// What the running kernel says about loading modules: signature enforcement, lockdown,
// modules_disabled, its trusted keys, the symbols it exports, what is loaded.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kmodd::sys {

/// Facts of the running kernel for predicting a load. Each part is empty or nullopt when the
/// kernel does not say (a kernel without module signatures has no sig_enforce; /proc/keys
/// and /proc/kallsyms show little to an unprivileged user).
struct KernelFacts {
    std::string release;                  ///< uname -r
    std::optional<bool> sig_enforce;      ///< /sys/module/module/parameters/sig_enforce
    std::string lockdown;                 ///< "none", "integrity", "confidentiality" or ""
    std::optional<bool> modules_disabled; ///< /proc/sys/kernel/modules_disabled
    /// The names of the asymmetric keys the kernel holds (/proc/keys: "Debian Secure Boot
    /// CA", the part of the description before ": <key id>"); nullopt when none is visible.
    std::optional<std::vector<std::string>> key_names;
    /// Symbols exported by the kernel and its loaded modules (/proc/kallsyms' __ksymtab_
    /// entries); nullopt when not readable.
    std::optional<std::set<std::string, std::less<>>> exports;
    std::set<std::string, std::less<>> loaded; ///< the modules of /proc/modules
    /// Tools and keys found for signing a module: scripts/sign-file of the release's headers
    /// or of a linux-kbuild package, and DKMS's machine owner key (mok.key, mok.pub).
    std::string sign_file;
    std::string dkms_key;
    std::string dkms_cert;
};

/// Reads the facts from `root` (normally "/": root + "proc/...", root + "sys/..."), for
/// `release` (the running one when empty: uname -r), the exported symbols only `with_exports`.
/// Never fails: what cannot be read stays unknown.
[[nodiscard]] KernelFacts read_kernel_facts(const std::string& root = "/",
                                            const std::string& release = "",
                                            bool with_exports = true);

/// The lockdown mode of /sys/kernel/security/lockdown's text ("none [integrity]
/// confidentiality" -> "integrity"), "" when none is marked.
[[nodiscard]] std::string parse_lockdown(std::string_view text);

/// The names of the asymmetric keys in /proc/keys' text (see KernelFacts::key_names).
[[nodiscard]] std::vector<std::string> parse_key_names(std::string_view text);

} // namespace kmodd::sys
