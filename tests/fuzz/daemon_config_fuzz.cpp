// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the reader of kmodd.conf (daemon::apply_config_json over a JSON object of options).
//
// Properties: any text is applied or refused with a message naming the file, without a crash
// (kmodd then exits, so what a refused file set before its bad key does not matter); applied
// options stay usable: a modules dir that ends in /lib/modules, a state path, a base dir.
#include <string>

#include "fuzz_check.hpp"
#include "options.hpp"

using kmodd::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    kmodd::daemon::DaemonOptions options;
    auto applied = kmodd::daemon::apply_config_json(text, "/etc/kmodd/kmodd.conf", options);
    if (!applied) {
        check(applied.error().message.find("/etc/kmodd/kmodd.conf") != std::string::npos,
              "a refused configuration names its file");
        return 0;
    }
    check(options.modules_dir.ends_with("/lib/modules"), "the modules dir ends in /lib/modules");
    check(options.base_dir().size() < options.modules_dir.size(), "the base dir is above it");
    check(!options.state_path().empty(), "there is a state path");
    return 0;
}
