// SPDX-License-Identifier: LGPL-2.1-or-later
// The sandbox kernel: module bookkeeping as the kernel does it, kept in one JSON file.
#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "sys/kernel.hpp"
#include "sys/messages.hpp"

namespace kmodd::sys {

namespace {

using Json = nlohmann::json;

constexpr const char* kStateFormat = "kmodd-sandbox-kernel";
constexpr int kStateVersion = 1;

/// A loaded module as the sandbox remembers it.
struct SandboxModule {
    std::string name;
    std::string path;
    std::string params;
    uint64_t size = 0;
    std::vector<std::string> exports; ///< sorted, distinct
    std::vector<std::string> uses;    ///< the modules it imports from: sorted, distinct
};

/// Builds a Json document from nlohmann's SAX events, keeping the parse error as text: the
/// DOM parser would report it by throwing.
class JsonBuilder final : public nlohmann::json_sax<Json> {
public:
    explicit JsonBuilder(Json& root) : root_(root) {}

    bool null() override { return add(Json(nullptr)); }
    bool boolean(bool value) override { return add(Json(value)); }
    bool number_integer(number_integer_t value) override { return add(Json(value)); }
    bool number_unsigned(number_unsigned_t value) override { return add(Json(value)); }
    bool number_float(number_float_t value, const string_t& /*text*/) override
    {
        return add(Json(value));
    }
    bool string(string_t& value) override { return add(Json(std::move(value))); }
    bool binary(binary_t& value) override { return add(Json::binary(std::move(value))); }
    bool start_object(std::size_t /*elements*/) override
    {
        open_.push_back(place(Json::object()));
        return true;
    }
    bool key(string_t& value) override
    {
        key_ = std::move(value);
        return true;
    }
    bool end_object() override
    {
        open_.pop_back();
        return true;
    }
    bool start_array(std::size_t /*elements*/) override
    {
        open_.push_back(place(Json::array()));
        return true;
    }
    bool end_array() override
    {
        open_.pop_back();
        return true;
    }
    bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                     const nlohmann::detail::exception& error) override
    {
        std::string_view what = error.what();
        // Drop the "[json.exception.parse_error.101] " tag: the rest is the sentence.
        if (size_t end = what.find("] "); what.starts_with("[json.") && end != what.npos)
            what.remove_prefix(end + 2);
        error_ = what;
        return false;
    }

    [[nodiscard]] const std::string& error() const { return error_; }

private:
    bool add(Json value)
    {
        place(std::move(value));
        return true;
    }
    /// Puts `value` where the parser is (root, array element or object member); returns it.
    Json* place(Json value)
    {
        if (open_.empty()) {
            root_ = std::move(value);
            return &root_;
        }
        Json& parent = *open_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(value));
            return &parent.back();
        }
        Json& member = parent[key_];
        member = std::move(value);
        return &member;
    }

    Json& root_;
    std::vector<Json*> open_; ///< the arrays and objects being filled, innermost last
    std::string key_;
    std::string error_;
};

base::Unexpected state_error(const std::string& what)
{
    return base::make_error(EINVAL, what);
}

base::Result<std::string> string_member(const Json& object, const char* key,
                                        const std::string& where)
{
    auto it = object.find(key);
    if (it == object.end() || !it->is_string())
        return state_error(where + ": \"" + key + "\" is not a string");
    return it->get<std::string>();
}

base::Result<std::vector<std::string>> strings_member(const Json& object, const char* key,
                                                      const std::string& where)
{
    auto it = object.find(key);
    if (it == object.end() || !it->is_array())
        return state_error(where + ": \"" + key + "\" is not an array");
    std::vector<std::string> values;
    for (const Json& value : *it) {
        if (!value.is_string())
            return state_error(where + ": \"" + key + "\" holds something other than a string");
        values.push_back(value.get<std::string>());
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

/// The loaded modules described by a state file, most recently loaded first, checked for
/// what the kernel would never show: duplicates, users loaded before what they use, a
/// symbol exported twice.
base::Result<std::vector<SandboxModule>> parse_state(std::string_view text)
{
    Json root;
    JsonBuilder builder(root);
    if (!Json::sax_parse(text, &builder))
        return state_error(builder.error().empty() ? "not JSON" : builder.error());
    if (!root.is_object())
        return state_error("not a JSON object");
    auto format = root.find("format");
    if (format == root.end() || !format->is_string() || format->get<std::string>() != kStateFormat)
        return state_error(std::string("\"format\" is not \"") + kStateFormat + "\"");
    auto version = root.find("version");
    if (version == root.end() || !version->is_number_integer() ||
        version->get<int64_t>() != kStateVersion)
        return state_error("unsupported \"version\" (expected " + std::to_string(kStateVersion) +
                           ")");
    auto list = root.find("modules");
    if (list == root.end() || !list->is_array())
        return state_error("\"modules\" is not an array");

    std::vector<SandboxModule> modules;
    for (const Json& entry : *list) {
        std::string where = "module " + std::to_string(modules.size() + 1);
        if (!entry.is_object())
            return state_error(where + ": not a JSON object");
        SandboxModule module;
        auto name = string_member(entry, "name", where);
        if (!name)
            return base::Unexpected(name.error());
        if (name->empty())
            return state_error(where + ": the name is empty");
        module.name = std::move(*name);
        where += " (" + base::quoted(module.name) + ")";
        auto path = string_member(entry, "path", where);
        if (!path)
            return base::Unexpected(path.error());
        auto params = string_member(entry, "params", where);
        if (!params)
            return base::Unexpected(params.error());
        auto exports = strings_member(entry, "exports", where);
        if (!exports)
            return base::Unexpected(exports.error());
        auto uses = strings_member(entry, "uses", where);
        if (!uses)
            return base::Unexpected(uses.error());
        auto size = entry.find("size");
        if (size == entry.end() || !size->is_number_unsigned())
            return state_error(where + ": \"size\" is not an unsigned integer");
        module.path = std::move(*path);
        module.params = std::move(*params);
        module.size = size->get<uint64_t>();
        module.exports = std::move(*exports);
        module.uses = std::move(*uses);
        modules.push_back(std::move(module));
    }

    // Walk from the oldest: what a module uses must already be loaded.
    std::set<std::string_view> older;
    std::map<std::string_view, std::string_view> owners;
    for (auto it = modules.rbegin(); it != modules.rend(); ++it) {
        const SandboxModule& module = *it;
        if (older.contains(module.name))
            return state_error("module " + base::quoted(module.name) + " is listed twice");
        for (const std::string& used : module.uses) {
            if (!older.contains(used))
                return state_error("module " + base::quoted(module.name) + " uses " +
                                   base::quoted(used) + ", which is not loaded before it");
        }
        for (const std::string& symbol : module.exports) {
            auto [owner, added] = owners.emplace(symbol, module.name);
            if (!added)
                return state_error("symbol " + symbol + " is exported by both " +
                                   base::quoted(owner->second) + " and " +
                                   base::quoted(module.name));
        }
        older.insert(module.name);
    }
    return modules;
}

std::string serialize_state(const std::vector<SandboxModule>& modules)
{
    Json list = Json::array();
    for (const SandboxModule& module : modules) {
        list.push_back(Json{{"name", module.name},
                            {"path", module.path},
                            {"size", module.size},
                            {"params", module.params},
                            {"exports", module.exports},
                            {"uses", module.uses}});
    }
    Json root = {{"format", kStateFormat}, {"version", kStateVersion}, {"modules", list}};
    // Replacing invalid UTF-8 keeps dump() from throwing; kernel names and symbols are ASCII.
    return root.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

/// Reads the state file in `dir_fd`: no modules when there is none.
base::Result<std::vector<SandboxModule>> read_state(int dir_fd, const std::string& state_path)
{
    auto text = base::read_file(dir_fd, kSandboxStateFile);
    if (!text && text.error().code == ENOENT)
        return std::vector<SandboxModule>();
    if (!text)
        return base::make_error(text.error().code, "cannot read the sandbox state " +
                                                       base::quoted(state_path) + ": " +
                                                       std::strerror(text.error().code));
    auto parsed = parse_state(*text);
    if (!parsed)
        return base::Unexpected(parsed.error().with_context(base::quoted(state_path)));
    return parsed;
}

/// An exclusive flock on the state directory for as long as it lives: processes sharing a
/// sandbox (a modprobe an install command runs, beside its parent) change it one at a time, as
/// the kernel serialises module loading.
class DirectoryLock {
public:
    explicit DirectoryLock(int fd) : fd_(fd)
    {
        while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
        }
    }
    ~DirectoryLock() { ::flock(fd_, LOCK_UN); }
    DirectoryLock(const DirectoryLock&) = delete;
    DirectoryLock& operator=(const DirectoryLock&) = delete;

private:
    int fd_;
};

class SandboxKernel final : public Kernel {
public:
    SandboxKernel(base::UniqueFd dir, std::string state_path, ModuleInspector inspect,
                  ModuleSymbolPredicate is_module_symbol)
        : dir_(std::move(dir)), state_path_(std::move(state_path)), inspect_(std::move(inspect)),
          is_module_symbol_(std::move(is_module_symbol))
    {
    }

    base::Result<void> insert_module(const std::string& path, const std::string& params) override
    {
        // Outside the lock: it reads the file, and it does not touch the sandbox's state.
        auto facts = inspect_(path);
        if (!facts)
            return base::Unexpected(
                facts.error().with_context("cannot insert " + base::quoted(path)));
        const std::string& name = facts->name;
        if (name.empty())
            return base::make_error(ENOEXEC, "cannot insert " + base::quoted(path) +
                                                 ": the module has no name");

        std::lock_guard lock(mutex_);
        DirectoryLock changing(dir_.get());
        if (auto read = refresh(); !read)
            return base::Unexpected(
                read.error().with_context("cannot insert " + base::quoted(name)));
        // The kernel's order: the name first, then the symbols it imports, then its exports.
        if (find(name) != modules_.end())
            return insert_error(name, EEXIST);
        std::map<std::string_view, std::string_view> owners;
        for (const SandboxModule& module : modules_) {
            for (const std::string& symbol : module.exports)
                owners.emplace(symbol, module.name);
        }
        std::vector<std::string> uses;
        for (const std::string& symbol : facts->imports) {
            if (auto owner = owners.find(symbol); owner != owners.end())
                uses.emplace_back(owner->second);
            else if (is_module_symbol_ && is_module_symbol_(symbol))
                return base::make_error(ENOENT, "cannot insert " + base::quoted(name) +
                                                    ": unknown symbol " + symbol);
        }
        std::sort(uses.begin(), uses.end());
        uses.erase(std::unique(uses.begin(), uses.end()), uses.end());
        std::vector<std::string> exports = facts->exports;
        std::sort(exports.begin(), exports.end());
        exports.erase(std::unique(exports.begin(), exports.end()), exports.end());
        for (const std::string& symbol : exports) {
            if (auto owner = owners.find(symbol); owner != owners.end())
                return base::make_error(
                    ENOEXEC, "cannot insert " + base::quoted(name) + ": it exports " + symbol +
                                 ", which " + base::quoted(owner->second) + " already exports");
        }

        std::vector<SandboxModule> next;
        next.reserve(modules_.size() + 1);
        next.push_back(
            SandboxModule{name, path, params, facts->size, std::move(exports), std::move(uses)});
        next.insert(next.end(), modules_.begin(), modules_.end());
        return commit(std::move(next), "cannot insert " + base::quoted(name));
    }

    base::Result<void> remove_module(const std::string& name) override
    {
        std::lock_guard lock(mutex_);
        DirectoryLock changing(dir_.get());
        if (auto read = refresh(); !read)
            return base::Unexpected(
                read.error().with_context("cannot remove " + base::quoted(name)));
        auto it = find(name);
        if (it == modules_.end())
            return remove_error(name, ENOENT);
        // The kernel refuses with EWOULDBLOCK while other modules use this one's symbols.
        if (std::vector<std::string> holders = holders_of(name); !holders.empty())
            return remove_error(name, EWOULDBLOCK, holders);
        std::vector<SandboxModule> next = modules_;
        next.erase(next.begin() + (it - modules_.begin()));
        return commit(std::move(next), "cannot remove " + base::quoted(name));
    }

    base::Result<std::vector<LoadedModule>> loaded_modules() const override
    {
        std::lock_guard lock(mutex_);
        if (auto read = refresh(); !read)
            return base::Unexpected(read.error());
        std::vector<LoadedModule> loaded;
        loaded.reserve(modules_.size());
        for (const SandboxModule& module : modules_)
            loaded.push_back(describe(module));
        return loaded;
    }

    ModuleState module_state(const std::string& name) const override
    {
        std::lock_guard lock(mutex_);
        // An unreadable state keeps what was read last: the question has no error to give.
        (void)refresh();
        return find(name) != modules_.end() ? ModuleState::Live : ModuleState::NotLoaded;
    }

    base::Result<LoadedModule> loaded_module(const std::string& name) const override
    {
        std::lock_guard lock(mutex_);
        if (auto read = refresh(); !read)
            return base::Unexpected(read.error());
        auto it = find(name);
        if (it == modules_.end())
            return base::make_error(ENOENT, base::quoted(name) + " is not loaded");
        return describe(*it);
    }

private:
    /// Reads the state as it is on disk now: another process sharing the directory may have
    /// changed it, as another modprobe changes the real kernel's. Caller holds mutex_.
    [[nodiscard]] base::Result<void> refresh() const
    {
        auto modules = read_state(dir_.get(), state_path_);
        if (!modules)
            return base::Unexpected(modules.error());
        modules_ = std::move(*modules);
        return {};
    }

    [[nodiscard]] std::vector<SandboxModule>::const_iterator find(const std::string& name) const
    {
        return std::find_if(modules_.begin(), modules_.end(),
                            [&](const SandboxModule& module) { return module.name == name; });
    }

    /// The modules using `name`'s symbols, sorted.
    [[nodiscard]] std::vector<std::string> holders_of(const std::string& name) const
    {
        std::vector<std::string> holders;
        for (const SandboxModule& module : modules_) {
            if (std::binary_search(module.uses.begin(), module.uses.end(), name))
                holders.push_back(module.name);
        }
        std::sort(holders.begin(), holders.end());
        return holders;
    }

    [[nodiscard]] LoadedModule describe(const SandboxModule& module) const
    {
        LoadedModule loaded;
        loaded.name = module.name;
        loaded.size = module.size;
        loaded.holders = holders_of(module.name);
        // Each user holds one reference, as ref_module() takes one per distinct provider.
        loaded.refcount = static_cast<int>(loaded.holders.size());
        loaded.state = ModuleState::Live;
        loaded.params = module.params;
        return loaded;
    }

    /// Publishes `next` and only then makes it the state, so memory and disk agree.
    base::Result<void> commit(std::vector<SandboxModule> next, const std::string& context)
    {
        std::string text = serialize_state(next);
        if (auto published = base::publish_file(dir_.get(), kSandboxStateFile, text); !published)
            return base::Unexpected(published.error().with_context(
                context + ": cannot save the sandbox state " + base::quoted(state_path_)));
        modules_ = std::move(next);
        return {};
    }

    base::UniqueFd dir_;
    std::string state_path_;
    ModuleInspector inspect_;
    ModuleSymbolPredicate is_module_symbol_;
    mutable std::mutex mutex_;
    /// As last read or written, most recently loaded first (as /proc/modules). Guarded by
    /// mutex_; the file behind it is written only under the directory lock.
    mutable std::vector<SandboxModule> modules_;
};

} // namespace

base::Result<std::unique_ptr<Kernel>> make_sandbox_kernel(const std::string& state_dir,
                                                          ModuleInspector inspect,
                                                          ModuleSymbolPredicate is_module_symbol)
{
    if (!inspect)
        return base::make_error(EINVAL, "the sandbox kernel needs a module inspector");
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec)
        return base::make_error(ec.value(), "cannot create the sandbox state directory " +
                                                base::quoted(state_dir) + ": " + ec.message());
    auto dir = base::open_directory(AT_FDCWD, state_dir);
    if (!dir)
        return base::Unexpected(dir.error());
    std::string state_path = state_dir + "/" + kSandboxStateFile;
    // Read once here so that a broken state is an error at start, not at the first request.
    if (auto modules = read_state(dir->get(), state_path); !modules)
        return base::Unexpected(modules.error());
    return std::make_unique<SandboxKernel>(std::move(*dir), std::move(state_path),
                                           std::move(inspect), std::move(is_module_symbol));
}

} // namespace kmodd::sys
