// SPDX-License-Identifier: LGPL-2.1-or-later
// Who loaded what: the records kmodd keeps of the modules it loaded, and why.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace kmodd::loader {

/// How a module came to be loaded: a user asked kmodd for it, another module needed it, a
/// device announced a modalias it matches (uevent autoloading), or kmodd did not load it
/// (modprobe, the initramfs; such modules have no record).
enum class Origin { Explicit, Dependency, Autoload, External };

/// What kmodd knows of one module it loaded.
struct Record {
    Origin origin = Origin::Explicit;
    std::set<std::string, std::less<>> needed_by; ///< for a dependency: the modules it was
                                                  ///< loaded (or found loaded) for
};

/// Who loaded what, persisted as JSON in `<state_dir>/loaded.json` and replaced atomically on
/// every change, so that a restart keeps the records. Modules kmodd did not load have no
/// record (they are "external").
class StateStore {
public:
    /// Loads the records (none when the file does not exist). Errors: a file that cannot be
    /// read or is not the JSON this class writes (EBADMSG, naming the file).
    [[nodiscard]] static base::Result<StateStore> open(std::string state_dir);

    /// The origin of `module`, if kmodd loaded it.
    [[nodiscard]] const Origin* origin(std::string_view module) const;
    /// The record of `module`, if kmodd loaded it.
    [[nodiscard]] const Record* record_of(std::string_view module) const;
    [[nodiscard]] const std::map<std::string, Record, std::less<>>& records() const
    {
        return records_;
    }

    /// Records that a user asked for `module` (an earlier dependency or autoload record
    /// becomes explicit). Writes the file.
    [[nodiscard]] base::Result<void> record_explicit(std::string_view module);
    /// Records that `module` was loaded for a device (an earlier dependency record becomes
    /// autoload; an explicit one stays). Writes the file.
    [[nodiscard]] base::Result<void> record_autoload(std::string_view module);
    /// Records that `module` was loaded, or found loaded, as a dependency of `user`. Changes
    /// nothing for an explicit record, or for a module kmodd did not load when
    /// `is_new` is false. Writes the file.
    [[nodiscard]] base::Result<void> record_dependency(std::string_view module,
                                                       std::string_view user, bool is_new);
    /// `user` no longer needs `module`; returns whether anything still does (always true for
    /// an explicit record, false for a module without record). Writes the file.
    [[nodiscard]] base::Result<bool> release(std::string_view module, std::string_view user);
    /// Forgets `module` (it was unloaded). Writes the file.
    [[nodiscard]] base::Result<void> forget(std::string_view module);

private:
    explicit StateStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}
    [[nodiscard]] base::Result<void> save() const;

    std::string state_dir_;
    std::map<std::string, Record, std::less<>> records_;
};

} // namespace kmodd::loader
