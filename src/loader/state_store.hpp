// SPDX-License-Identifier: LGPL-2.1-or-later
// Who loaded what: the records kmodd keeps of the modules it loaded, and why.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace kmodd::loader {

/// How a module came to be loaded: a user asked kmodd for it, another module needed it, a
/// device announced a modalias it matches (uevent autoloading), or kmodd did not load it
/// (modprobe, the initramfs; such modules have no record).
enum class Origin { Explicit, Dependency, Autoload, External };

/// Now, in CLOCK_REALTIME microseconds since the Unix epoch (the records' times).
[[nodiscard]] uint64_t realtime_usec();

/// Who asked kmodd for a module: the D-Bus caller of Load.
struct Requester {
    int64_t uid = -1;     ///< -1: unknown
    std::string bus_name; ///< the caller's unique bus name, e.g. ":1.42" (empty: unknown)
    std::string command;  ///< the caller's process name (/proc/PID/comm), e.g. "kmodctl"
};

/// The device a module was autoloaded for.
struct DeviceRef {
    std::string syspath;  ///< e.g. /sys/devices/pci0000:00/0000:00:1f.3
    std::string modalias; ///< its MODALIAS
};

/// Where a load came from, as the records keep it (each part optional: a record written by
/// an older kmodd has none of them).
struct Provenance {
    uint64_t usec = 0; ///< when kmodd loaded it, CLOCK_REALTIME microseconds (0: unknown)
    std::optional<Requester> requester; ///< for an explicit load
    std::optional<DeviceRef> device;    ///< for an autoload
};

/// What kmodd knows of one module it loaded.
struct Record {
    Origin origin = Origin::Explicit;
    std::set<std::string, std::less<>> needed_by; ///< for a dependency: the modules it was
                                                  ///< loaded (or found loaded) for
    Provenance provenance; ///< when, and for an explicit or autoload record who or what asked
};

/// Who loaded what, persisted as JSON in `<state_dir>/loaded.json` and replaced atomically on
/// every change, so that a restart keeps the records. Modules kmodd did not load have no
/// record (they are "external").
///
/// A change is made in memory first and then written. When the file cannot be written (a
/// full disk, a read-only state directory) the change stays in memory, unsaved() says why,
/// and the next change (or flush()) writes every record again: the modules are in the
/// kernel either way, and taking them back out because a file could not be written would
/// undo what the user asked for.
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
    /// becomes explicit and keeps its time; an explicit one stays as it is unless `is_new`:
    /// the module was inserted just now, so the record is of this load). Writes the file.
    void record_explicit(std::string_view module, const Provenance& provenance = {},
                         bool is_new = false);
    /// Records that `module` was loaded for a device (an earlier dependency record becomes
    /// autoload; an explicit or autoload one stays unless `is_new`). Writes the file.
    void record_autoload(std::string_view module, const Provenance& provenance = {},
                         bool is_new = false);
    /// Records that `module` was loaded, or found loaded, as a dependency of `user`, at
    /// `usec` when new. Changes nothing for an explicit record, or for a module kmodd did not
    /// load when `is_new` is false. Writes the file.
    void record_dependency(std::string_view module, std::string_view user, bool is_new,
                           uint64_t usec = 0);
    /// `user` no longer needs `module`; returns whether anything still does (always true for
    /// an explicit record, false for a module without record). Writes the file.
    bool release(std::string_view module, std::string_view user);
    /// Forgets `module` (it was unloaded). Writes the file.
    void forget(std::string_view module);

    /// Why the file is behind the records in memory (the last write failed), or nothing.
    [[nodiscard]] const std::optional<base::Error>& unsaved() const { return unsaved_; }
    /// Writes the records again if the last write failed; returns unsaved().
    const std::optional<base::Error>& flush();

private:
    explicit StateStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}
    /// Writes the file; a failure is kept in unsaved_.
    void save();

    std::string state_dir_;
    std::map<std::string, Record, std::less<>> records_;
    std::optional<base::Error> unsaved_;
};

} // namespace kmodd::loader
