// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the modprobe.d parser and the kernel command line parser (loader::ModprobeConfig).
//
// The input is a modprobe.d file, then optionally a NUL and a kernel command line. Properties:
// parsing and every lookup on the result never crash or read out of bounds, and whatever the
// text, a module it cannot name gets no options from it (alias patterns are globs: "alias * m"
// matches every name).
#include <string_view>

#include "fuzz_check.hpp"
#include "loader/modprobe_config.hpp"

using kmodd::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string_view cmdline;
    if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
        cmdline = text.substr(nul + 1);
        text = text.substr(0, nul);
    }
    kmodd::loader::ModprobeConfig config;
    kmodd::index::Diagnostics diagnostics;
    config.parse(text, "fuzz.conf", diagnostics);
    config.parse_kernel_cmdline(cmdline, diagnostics);
    for (std::string_view name : {"snd_hda_intel", "e1000", "pci:v00008086d0000100Esv*", "a"}) {
        (void)config.modules_for_alias(name);
        (void)config.options_for(name, name);
        (void)config.install_command_for(name);
        (void)config.remove_command_for(name);
        (void)config.is_blacklisted(name);
        (void)config.softdep_for(name);
        (void)config.weakdep_for(name);
    }
    // A name no text of this size can mention (the parser may not invent one).
    const std::string unknown(size + 1, 'q');
    check(config.options_for(unknown).empty(), "an unknown name has no options");
    return 0;
}
