// SPDX-License-Identifier: LGPL-2.1-or-later
// ModuleDatabase: the indexes of a module directory, from the .bin files or their text forms.
#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <deque>

#include "base/file.hpp"
#include "depmod/index_reader.hpp"
#include "depmod/index_writer.hpp"
#include "index/names.hpp"

namespace kmodd::depmod {

namespace {

struct DatabaseIndexes {
    IndexReader dep;
    std::optional<IndexReader> alias;
    std::optional<IndexReader> symbols;
    std::optional<IndexReader> builtin;
    std::optional<IndexReader> builtin_alias;
};

/// Calls `visit` with each line of `text`, without its '\n', and its 0-based number.
template <typename Visit> void for_each_line(std::string_view text, Visit&& visit)
{
    uint32_t number = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        visit(line, number++);
    }
}

/// Splits "alias KEY VALUE" (depmod writes single spaces; tabs and repeated blanks are
/// tolerated). False for any other line, e.g. the comment on top of modules.alias.
bool parse_alias_line(std::string_view line, std::string_view& key, std::string_view& value)
{
    constexpr std::string_view kBlanks = " \t\r";
    constexpr std::string_view kKeyword = "alias";
    if (!line.starts_with(kKeyword))
        return false;
    line.remove_prefix(kKeyword.size());
    size_t start = line.find_first_not_of(kBlanks);
    if (start == 0 || start == std::string_view::npos)
        return false;
    line.remove_prefix(start);
    size_t end = line.find_first_of(kBlanks);
    if (end == std::string_view::npos)
        return false;
    key = line.substr(0, end);
    line.remove_prefix(end);
    start = line.find_first_not_of(kBlanks);
    if (start == std::string_view::npos)
        return false;
    line.remove_prefix(start);
    value = line.substr(0, line.find_first_of(kBlanks));
    return true;
}

/// Builds the trie of a text index. The line number is the priority, so lookups return
/// values in file order. Keys computed from a line live in `keys` (a deque: the writer
/// borrows them, so they must not move).
class TextIndex {
public:
    void add(std::string key, std::string_view value, uint32_t line)
    {
        keys_.push_back(std::move(key));
        // Non-ASCII entries cannot be stored; depmod would not have written them either.
        (void)writer_.add(keys_.back(), value, line);
    }
    void add_view(std::string_view key, std::string_view value, uint32_t line)
    {
        (void)writer_.add(key, value, line);
    }
    [[nodiscard]] base::Result<IndexReader> build()
    {
        return IndexReader::from_bytes(writer_.serialize());
    }

private:
    std::deque<std::string> keys_;
    IndexWriter writer_;
};

/// modules.dep: "kernel/a/b.ko: dep.ko ..." under the module name of the path.
base::Result<IndexReader> dep_index_from_text(std::string_view text)
{
    TextIndex index;
    for_each_line(text, [&index](std::string_view line, uint32_t number) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            return;
        std::string name = index::modname_from_path(line.substr(0, colon));
        if (!name.empty())
            index.add(std::move(name), line, number);
    });
    return index.build();
}

/// modules.alias: "alias PATTERN MODULE", the pattern normalised as depmod stores it in
/// modules.alias.bin (an unmatched bracket drops the line, as depmod does).
base::Result<IndexReader> alias_index_from_text(std::string_view text)
{
    TextIndex index;
    for_each_line(text, [&index](std::string_view line, uint32_t number) {
        std::string_view pattern;
        std::string_view module;
        if (!parse_alias_line(line, pattern, module))
            return;
        if (auto normalized = index::normalize_alias(pattern))
            index.add(std::move(*normalized), module, number);
    });
    return index.build();
}

/// modules.symbols: "alias symbol:NAME MODULE", stored as is.
base::Result<IndexReader> symbol_index_from_text(std::string_view text)
{
    TextIndex index;
    for_each_line(text, [&index](std::string_view line, uint32_t number) {
        std::string_view key;
        std::string_view module;
        if (parse_alias_line(line, key, module))
            index.add_view(key, module, number);
    });
    return index.build();
}

/// modules.builtin: one path per line; depmod skips lines that do not start with a letter.
base::Result<IndexReader> builtin_index_from_text(std::string_view text)
{
    TextIndex index;
    for_each_line(text, [&index](std::string_view line, uint32_t /*number*/) {
        if (line.empty() || std::isalpha(static_cast<unsigned char>(line[0])) == 0)
            return;
        std::string name = index::modname_from_path(line);
        if (!name.empty())
            index.add(std::move(name), "", 0);
    });
    return index.build();
}

using OpenBin = std::function<base::Result<IndexReader>(const std::string& name)>;
using ReadText = std::function<base::Result<std::string>(const std::string& name)>;
using FromText = base::Result<IndexReader> (*)(std::string_view);

/// One index: the .bin when it can be read, else its text form. nullopt when neither is
/// there, or when the .bin exists but is unusable (libkmod then finds nothing in it either).
base::Result<std::optional<IndexReader>>
load_index(const OpenBin& open_bin, const ReadText& read_text, const std::string& bin_name,
           const std::string& text_name, FromText from_text)
{
    auto bin = open_bin(bin_name);
    if (bin)
        return std::optional<IndexReader>(std::move(*bin));
    if (bin.error().code != ENOENT || text_name.empty())
        return std::optional<IndexReader>();
    auto text = read_text(text_name);
    if (!text)
        return std::optional<IndexReader>();
    auto index = from_text(*text);
    if (!index)
        return base::Unexpected(index.error().with_context(text_name));
    return std::optional<IndexReader>(std::move(*index));
}

base::Result<DatabaseIndexes> load_indexes(const std::string& module_dir, const OpenBin& open_bin,
                                           const ReadText& read_text)
{
    // modules.dep is the one index modprobe cannot do without: its errors are reported.
    auto dep_bin = open_bin("modules.dep.bin");
    std::optional<IndexReader> dep;
    if (dep_bin) {
        dep = std::move(*dep_bin);
    } else if (dep_bin.error().code != ENOENT) {
        return base::Unexpected(dep_bin.error());
    } else {
        auto text = read_text("modules.dep");
        if (!text && text.error().code == ENOENT)
            return base::make_error(
                ENOENT, "'" + module_dir + "': neither modules.dep.bin nor modules.dep exists");
        if (!text)
            return base::Unexpected(text.error());
        auto index = dep_index_from_text(*text);
        if (!index)
            return base::Unexpected(index.error().with_context("modules.dep"));
        dep = std::move(*index);
    }

    DatabaseIndexes indexes{std::move(*dep), {}, {}, {}, {}};
    struct Other {
        std::optional<IndexReader>& slot;
        const char* bin;
        const char* text;
        FromText from_text;
    };
    const Other others[] = {
        {indexes.alias, "modules.alias.bin", "modules.alias", alias_index_from_text},
        {indexes.symbols, "modules.symbols.bin", "modules.symbols", symbol_index_from_text},
        {indexes.builtin, "modules.builtin.bin", "modules.builtin", builtin_index_from_text},
        {indexes.builtin_alias, "modules.builtin.alias.bin", "", nullptr},
    };
    for (const Other& other : others) {
        auto index = load_index(open_bin, read_text, other.bin, other.text, other.from_text);
        if (!index)
            return base::Unexpected(index.error());
        other.slot = std::move(*index);
    }
    return indexes;
}

/// kmod_module_new_from_lookup()'s alias_normalize(), without a copy when nothing changes.
/// nullopt for an unmatched bracket.
std::optional<std::string_view> normalize(std::string_view name, std::string& scratch)
{
    if (name.find_first_of("-[]") == std::string_view::npos)
        return name;
    auto normalized = index::normalize_alias(name);
    if (!normalized)
        return std::nullopt;
    scratch = std::move(*normalized);
    return scratch;
}

std::vector<std::string> values_of(const std::optional<IndexReader>& index, std::string_view key)
{
    std::vector<std::string> out;
    if (!index)
        return out;
    std::string scratch;
    auto normalized = normalize(key, scratch);
    if (!normalized)
        return out;
    auto values = index->search_wildcard(*normalized);
    out.reserve(values.size());
    for (const IndexReader::Value& v : values)
        out.emplace_back(v.text);
    return out;
}

} // namespace

struct ModuleDatabase::Indexes : DatabaseIndexes {
    explicit Indexes(DatabaseIndexes indexes) : DatabaseIndexes(std::move(indexes)) {}
};

base::Result<ModuleDatabase> ModuleDatabase::open(const std::string& module_dir)
{
    auto open_bin = [&module_dir](const std::string& name) {
        return IndexReader::open(module_dir + "/" + name);
    };
    auto read_text = [&module_dir](const std::string& name) {
        return base::read_file(AT_FDCWD, module_dir + "/" + name);
    };
    auto indexes = load_indexes(module_dir, open_bin, read_text);
    if (!indexes)
        return base::Unexpected(indexes.error());
    ModuleDatabase db;
    db.module_dir_ = module_dir;
    db.indexes_ = std::make_shared<const Indexes>(std::move(*indexes));
    return db;
}

base::Result<ModuleDatabase>
ModuleDatabase::from_files(std::string module_dir,
                           const std::vector<std::pair<std::string, std::string>>& files)
{
    auto find = [&files](const std::string& name) -> const std::string* {
        auto it = std::find_if(files.begin(), files.end(),
                               [&name](const auto& file) { return file.first == name; });
        return it == files.end() ? nullptr : &it->second;
    };
    auto open_bin = [&find](const std::string& name) -> base::Result<IndexReader> {
        const std::string* content = find(name);
        if (content == nullptr)
            return base::make_error(ENOENT, "'" + name + "': not among the files");
        return base::with_context(IndexReader::from_bytes(*content), "'" + name + "'");
    };
    auto read_text = [&find](const std::string& name) -> base::Result<std::string> {
        const std::string* content = find(name);
        if (content == nullptr)
            return base::make_error(ENOENT, "'" + name + "': not among the files");
        return *content;
    };
    auto indexes = load_indexes(module_dir, open_bin, read_text);
    if (!indexes)
        return base::Unexpected(indexes.error());
    ModuleDatabase db;
    db.module_dir_ = std::move(module_dir);
    db.indexes_ = std::make_shared<const Indexes>(std::move(*indexes));
    return db;
}

std::optional<std::string> ModuleDatabase::dependency_line(std::string_view name) const
{
    std::string scratch;
    auto key = normalize(name, scratch);
    if (!key)
        return std::nullopt;
    auto line = indexes_->dep.lookup(*key);
    if (!line)
        return std::nullopt;
    return std::string(*line);
}

std::vector<std::string> ModuleDatabase::modules_for_alias(std::string_view alias) const
{
    return values_of(indexes_->alias, alias);
}

std::optional<std::string> ModuleDatabase::module_for_symbol(std::string_view symbol) const
{
    std::string key = "symbol:";
    key.append(symbol);
    auto owners = values_of(indexes_->symbols, key);
    if (owners.empty())
        return std::nullopt;
    return std::move(owners.front());
}

bool ModuleDatabase::is_builtin(std::string_view name) const
{
    if (!indexes_->builtin)
        return false;
    std::string scratch;
    auto key = normalize(name, scratch);
    return key && indexes_->builtin->lookup(*key).has_value();
}

std::vector<std::string> ModuleDatabase::builtin_modules_for_alias(std::string_view alias) const
{
    return values_of(indexes_->builtin_alias, alias);
}

void ModuleDatabase::for_each_module(
    const std::function<void(std::string_view name, std::string_view line)>& visit) const
{
    indexes_->dep.dump(
        [&](std::string_view key, const IndexReader::Value& value) { visit(key, value.text); });
}

void ModuleDatabase::for_each_alias(
    const std::function<void(std::string_view alias, std::string_view module)>& visit) const
{
    if (indexes_->alias)
        indexes_->alias->dump(
            [&](std::string_view key, const IndexReader::Value& value) { visit(key, value.text); });
}

void ModuleDatabase::for_each_builtin(const std::function<void(std::string_view name)>& visit) const
{
    if (indexes_->builtin)
        indexes_->builtin->dump(
            [&](std::string_view key, const IndexReader::Value&) { visit(key); });
}

} // namespace kmodd::depmod
