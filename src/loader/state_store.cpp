// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading and atomically writing loaded.json, the records of who loaded what.
#include "loader/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "base/file.hpp"
#include "base/strings.hpp"

namespace kmodd::loader {

namespace {

constexpr const char* kFileName = "loaded.json";

const char* origin_name(Origin origin)
{
    switch (origin) {
    case Origin::Explicit:
        return "explicit";
    case Origin::Autoload:
        return "autoload";
    case Origin::Dependency:
    case Origin::External: // never recorded
        break;
    }
    return "dependency";
}

/// The optional provenance fields of a record ("since", "requested_by", "device"); false
/// when one is present but malformed.
bool read_provenance(const nlohmann::json& value, Provenance& provenance)
{
    if (value.contains("since")) {
        if (!value["since"].is_number_unsigned())
            return false;
        provenance.usec = value["since"].get<uint64_t>();
    }
    if (value.contains("requested_by")) {
        const nlohmann::json& by = value["requested_by"];
        if (!by.is_object())
            return false;
        Requester requester;
        if (by.contains("uid")) {
            if (!by["uid"].is_number_integer())
                return false;
            requester.uid = by["uid"].get<int64_t>();
        }
        for (auto [key, field] : {std::pair{"bus_name", &requester.bus_name},
                                  std::pair{"command", &requester.command}}) {
            if (!by.contains(key))
                continue;
            if (!by[key].is_string())
                return false;
            *field = by[key].get<std::string>();
        }
        provenance.requester = std::move(requester);
    }
    if (value.contains("device")) {
        const nlohmann::json& device = value["device"];
        if (!device.is_object() || !device.contains("syspath") || !device["syspath"].is_string() ||
            !device.contains("modalias") || !device["modalias"].is_string())
            return false;
        provenance.device =
            DeviceRef{device["syspath"].get<std::string>(), device["modalias"].get<std::string>()};
    }
    return true;
}

void write_provenance(const Provenance& provenance, nlohmann::json& entry)
{
    if (provenance.usec != 0)
        entry["since"] = provenance.usec;
    if (provenance.requester) {
        const Requester& requester = *provenance.requester;
        entry["requested_by"] = {{"uid", requester.uid},
                                 {"bus_name", requester.bus_name},
                                 {"command", requester.command}};
    }
    if (provenance.device)
        entry["device"] = {{"syspath", provenance.device->syspath},
                           {"modalias", provenance.device->modalias}};
}

/// Who asked belongs to an explicit record, the device to an autoload one (as needed_by to a
/// dependency): anything else is dropped, so two reads of one file agree.
void keep_what_belongs(Record& record)
{
    if (record.origin != Origin::Explicit)
        record.provenance.requester.reset();
    if (record.origin != Origin::Autoload)
        record.provenance.device.reset();
}

/// Makes `record` one of `origin` for `provenance`. A record that is not `fresh` (the
/// module was there before this load: a dependency that a user or a device now claims)
/// keeps the time it came.
void claim(Record& record, Origin origin, const Provenance& provenance, bool fresh)
{
    const uint64_t since = fresh ? 0 : record.provenance.usec;
    record.origin = origin;
    record.needed_by.clear();
    record.provenance = provenance;
    if (since != 0)
        record.provenance.usec = since;
    keep_what_belongs(record);
}

} // namespace

uint64_t realtime_usec()
{
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1000000U +
           static_cast<uint64_t>(now.tv_nsec) / 1000U;
}

base::Result<StateStore> StateStore::open(std::string state_dir)
{
    if (::mkdir(state_dir.c_str(), 0755) < 0 && errno != EEXIST)
        return base::errno_error(errno, "cannot create state directory '" + state_dir + "'");
    StateStore store(std::move(state_dir));
    // A write that a kill interrupted leaves its temp file; the records are in the old file.
    if (auto dir = base::open_directory(AT_FDCWD, store.state_dir_))
        base::remove_stale_temp_files(dir->get());
    const std::string path = store.state_dir_ + "/" + kFileName;
    auto text = base::read_file(AT_FDCWD, path);
    if (!text) {
        if (text.error().code == ENOENT)
            return store;
        return base::Unexpected(text.error());
    }
    auto json = nlohmann::json::parse(*text, nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("modules") ||
        !json["modules"].is_object())
        return base::make_error(EBADMSG, "'" + path + "' is not a kmodd state file");
    for (const auto& [name, value] : json["modules"].items()) {
        auto bad = [&, &module = name]() {
            std::string message = base::quoted(path);
            message.append(": bad record for module ").append(base::quoted(module));
            return base::make_error(EBADMSG, std::move(message));
        };
        if (!value.is_object() || !value.contains("origin") || !value["origin"].is_string())
            return bad();
        Record record;
        const std::string origin = value["origin"];
        if (origin == "explicit")
            record.origin = Origin::Explicit;
        else if (origin == "dependency")
            record.origin = Origin::Dependency;
        else if (origin == "autoload")
            record.origin = Origin::Autoload;
        else
            return bad();
        if (value.contains("needed_by")) {
            if (!value["needed_by"].is_array())
                return bad();
            for (const auto& user : value["needed_by"]) {
                if (!user.is_string())
                    return bad();
                record.needed_by.insert(user.get<std::string>());
            }
            // Only a dependency is needed by others; an explicit or autoload record never
            // has users (kmodd clears them when a record becomes one), so a list there is
            // not kept: it would vanish at the next write anyway (found by fuzzing).
            if (record.origin != Origin::Dependency)
                record.needed_by.clear();
        }
        if (!read_provenance(value, record.provenance))
            return bad();
        keep_what_belongs(record);
        store.records_[name] = std::move(record);
    }
    return store;
}

const Record* StateStore::record_of(std::string_view module) const
{
    auto it = records_.find(module);
    return it == records_.end() ? nullptr : &it->second;
}

const Origin* StateStore::origin(std::string_view module) const
{
    const Record* record = record_of(module);
    return record == nullptr ? nullptr : &record->origin;
}

void StateStore::record_explicit(std::string_view module, const Provenance& provenance, bool is_new)
{
    auto [it, inserted] = records_.try_emplace(std::string(module));
    if (!inserted && !is_new && it->second.origin == Origin::Explicit)
        return;
    claim(it->second, Origin::Explicit, provenance, inserted || is_new);
    save();
}
void StateStore::record_autoload(std::string_view module, const Provenance& provenance, bool is_new)
{
    auto [it, inserted] = records_.try_emplace(std::string(module));
    if (!inserted && !is_new && it->second.origin != Origin::Dependency)
        return;
    claim(it->second, Origin::Autoload, provenance, inserted || is_new);
    save();
}
void StateStore::record_dependency(std::string_view module, std::string_view user, bool is_new,
                                   uint64_t usec)
{
    auto it = records_.find(module);
    if (it == records_.end()) {
        if (!is_new)
            return; // loaded by someone else: not ours to record
        Record record{Origin::Dependency, {}, {}};
        record.provenance.usec = usec;
        it = records_.emplace(std::string(module), std::move(record)).first;
    }
    if (it->second.origin != Origin::Dependency)
        return;
    if (!it->second.needed_by.emplace(user).second && !is_new)
        return;
    save();
}

bool StateStore::release(std::string_view module, std::string_view user)
{
    auto it = records_.find(module);
    if (it == records_.end())
        return false;
    if (it->second.origin != Origin::Dependency)
        return true;
    auto user_it = it->second.needed_by.find(user);
    if (user_it != it->second.needed_by.end()) {
        it->second.needed_by.erase(user_it);
        save();
    }
    return !it->second.needed_by.empty();
}

void StateStore::forget(std::string_view module)
{
    auto it = records_.find(module);
    if (it == records_.end())
        return;
    records_.erase(it);
    save();
}

const std::optional<base::Error>& StateStore::flush()
{
    if (unsaved_)
        save();
    return unsaved_;
}

void StateStore::save()
{
    nlohmann::json modules = nlohmann::json::object();
    for (const auto& [name, record] : records_) {
        nlohmann::json entry = {{"origin", origin_name(record.origin)}};
        if (record.origin == Origin::Dependency)
            entry["needed_by"] = record.needed_by;
        write_provenance(record.provenance, entry);
        modules[name] = entry;
    }
    nlohmann::json json = {{"version", 1}, {"modules", modules}};
    auto dir = base::open_directory(AT_FDCWD, state_dir_);
    auto written = dir ? base::publish_file(dir->get(), kFileName, json.dump(2) + "\n")
                       : base::Result<void>(base::Unexpected(dir.error()));
    if (written) {
        unsaved_.reset();
        return;
    }
    // The same words for each failed try (the temp file's name changes), naming the file.
    const int code = written.error().code;
    unsaved_ = base::Error{code, "cannot write '" + state_dir_ + "/" + kFileName +
                                     "': " + std::strerror(code)};
}

} // namespace kmodd::loader
