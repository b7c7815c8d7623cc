// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading and atomically writing loaded.json, the records of who loaded what.
#include "loader/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>

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

} // namespace

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

base::Result<void> StateStore::record_explicit(std::string_view module)
{
    auto [it, inserted] = records_.try_emplace(std::string(module));
    if (!inserted && it->second.origin == Origin::Explicit)
        return {};
    it->second.origin = Origin::Explicit;
    it->second.needed_by.clear();
    return save();
}

base::Result<void> StateStore::record_autoload(std::string_view module)
{
    auto [it, inserted] = records_.try_emplace(std::string(module));
    if (!inserted && it->second.origin != Origin::Dependency)
        return {};
    it->second.origin = Origin::Autoload;
    it->second.needed_by.clear();
    return save();
}

base::Result<void> StateStore::record_dependency(std::string_view module, std::string_view user,
                                                 bool is_new)
{
    auto it = records_.find(module);
    if (it == records_.end()) {
        if (!is_new)
            return {}; // loaded by someone else: not ours to record
        it = records_.emplace(std::string(module), Record{Origin::Dependency, {}}).first;
    }
    if (it->second.origin != Origin::Dependency)
        return {};
    if (!it->second.needed_by.emplace(user).second && !is_new)
        return {};
    return save();
}

base::Result<bool> StateStore::release(std::string_view module, std::string_view user)
{
    auto it = records_.find(module);
    if (it == records_.end())
        return false;
    if (it->second.origin != Origin::Dependency)
        return true;
    auto user_it = it->second.needed_by.find(user);
    if (user_it != it->second.needed_by.end()) {
        it->second.needed_by.erase(user_it);
        if (auto saved = save(); !saved)
            return base::Unexpected(saved.error());
    }
    return !it->second.needed_by.empty();
}

base::Result<void> StateStore::forget(std::string_view module)
{
    auto it = records_.find(module);
    if (it == records_.end())
        return {};
    records_.erase(it);
    return save();
}

base::Result<void> StateStore::save() const
{
    nlohmann::json modules = nlohmann::json::object();
    for (const auto& [name, record] : records_) {
        nlohmann::json entry = {{"origin", origin_name(record.origin)}};
        if (record.origin == Origin::Dependency)
            entry["needed_by"] = record.needed_by;
        modules[name] = entry;
    }
    nlohmann::json json = {{"version", 1}, {"modules", modules}};
    auto dir = base::open_directory(AT_FDCWD, state_dir_);
    if (!dir)
        return base::Unexpected(dir.error());
    return base::publish_file(dir->get(), kFileName, json.dump(2) + "\n");
}

} // namespace kmodd::loader
