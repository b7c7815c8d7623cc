// SPDX-License-Identifier: LGPL-2.1-or-later
// Fuzzes the reader of kmodd's records of who loaded what (loader::StateStore over
// <state dir>/loaded.json).
//
// Properties: any file content opens or is refused with a message, without a crash; records
// that open survive a change written back and read again (nothing read is lost).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_check.hpp"
#include "loader/state_store.hpp"

using kmodd::fuzz::check;
using kmodd::loader::StateStore;

namespace {

/// A directory of this process for the state file, made once and removed at exit.
const std::string& state_dir()
{
    static const std::string dir = [] {
        std::string pattern = "/tmp/kmodd-state-fuzz.XXXXXX";
        check(::mkdtemp(pattern.data()) != nullptr, "a temporary directory can be made");
        return pattern;
    }();
    static const bool cleaned_at_exit = [] {
        return std::atexit([] {
                   std::error_code ignored;
                   std::filesystem::remove_all(dir, ignored);
               }) == 0;
    }();
    (void)cleaned_at_exit;
    return dir;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    {
        std::ofstream out(state_dir() + "/loaded.json", std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    auto store = StateStore::open(state_dir());
    if (!store) {
        check(!store.error().message.empty(), "a refused state file says why");
        return 0;
    }
    const auto before = store->records();
    store->record_explicit("fuzz_probe_module");
    check(!store->unsaved(), "a change can be written");
    auto again = StateStore::open(state_dir());
    check(again.has_value(), "what was written opens");
    for (const auto& [name, record] : before) {
        const auto* read = again->record_of(name);
        check(read != nullptr, "every record survives a rewrite");
        if (name != "fuzz_probe_module") {
            check(read->origin == record.origin, "its origin too");
            check(read->needed_by == record.needed_by, "and who needs it");
            const auto& was = record.provenance;
            const auto& is = read->provenance;
            check(is.usec == was.usec, "and when it was loaded");
            check(is.requester.has_value() == was.requester.has_value() &&
                      (!is.requester || (is.requester->uid == was.requester->uid &&
                                         is.requester->bus_name == was.requester->bus_name &&
                                         is.requester->command == was.requester->command)),
                  "and who asked");
            check(is.device.has_value() == was.device.has_value() &&
                      (!is.device || (is.device->syspath == was.device->syspath &&
                                      is.device->modalias == was.device->modalias)),
                  "and for which device");
        }
    }
    check(again->origin("fuzz_probe_module") != nullptr, "the change is there");
    return 0;
}
