// SPDX-License-Identifier: LGPL-2.1-or-later
// What the index keeps of a parsed module, and its symbol table: names interned once, symbols
// packed and sorted for lookups.
#include <algorithm>
#include <cstring>
#include <iterator>
#include <thread>

#include "base/byte_io.hpp"
#include "base/threads.hpp"

#include "index/kmod_hash.hpp"
#include "index/module_index.hpp"

namespace kmodd::index {

namespace {

/// The name an export is known by: without the -P prefix.
std::string_view export_lookup_name(std::string_view name, char prefix)
{
    if (prefix != '\0' && !name.empty() && name[0] == prefix)
        name.remove_prefix(1);
    return name;
}

/// The name an import is looked up by: without PPC64's '.', then without the -P prefix.
/// `flags` gets the ParsedModule::kImport* bits of what was cut.
std::string_view import_lookup_name(std::string_view name, char prefix, uint8_t& flags)
{
    flags = 0;
    if (!name.empty() && name[0] == '.') {
        name.remove_prefix(1);
        flags |= ParsedModule::kImportHasDot;
    }
    if (prefix != '\0' && !name.empty() && name[0] == prefix) {
        name.remove_prefix(1);
        flags |= ParsedModule::kImportHasPrefix;
    }
    return name;
}

/// The CRCs of `symbols` split into low and high halves (the high ones only when needed).
template <typename Symbols>
void split_crcs(const Symbols& symbols, std::vector<uint32_t>& low, std::vector<uint32_t>& high)
{
    low.reserve(symbols.size());
    bool is_wide = false;
    for (const auto& sym : symbols) {
        low.push_back(static_cast<uint32_t>(sym.crc));
        is_wide |= (sym.crc >> 32) != 0;
    }
    if (!is_wide)
        return;
    high.reserve(symbols.size());
    for (const auto& sym : symbols)
        high.push_back(static_cast<uint32_t>(sym.crc >> 32));
}

} // namespace

bool ParsedModule::keeps_modinfo_key(std::string_view key)
{
    return std::find(std::begin(kKeptModinfoKeys), std::end(kKeptModinfoKeys), key) !=
           std::end(kKeptModinfoKeys);
}

std::shared_ptr<const ParsedModule> ParsedModule::make(const elf::ModuleInfoView& info, char prefix,
                                                       bool keep_import_crcs)
{
    return make(info, prefix, keep_import_crcs, {}, nullptr);
}

std::shared_ptr<const ParsedModule> ParsedModule::make(const elf::ModuleInfoView& info, char prefix,
                                                       bool keep_import_crcs,
                                                       std::string_view cached_modinfo,
                                                       std::shared_ptr<const void> backing)
{
    auto parsed = std::make_shared<ParsedModule>();
    if (backing) {
        parsed->cached_modinfo = cached_modinfo;
        parsed->backing = std::move(backing);
    } else {
        size_t modinfo_bytes = 0;
        for (const auto& entry : info.modinfo) {
            if (keeps_modinfo_key(entry.key))
                modinfo_bytes += entry.key.size() + entry.value.size() + 2;
        }
        parsed->modinfo.reserve(modinfo_bytes);
        for (const auto& entry : info.modinfo) {
            if (keeps_modinfo_key(entry.key))
                parsed->modinfo.append(entry.key).append("=").append(entry.value).push_back('\0');
        }
    }
    split_crcs(info.exports, parsed->export_crcs_low, parsed->export_crcs_high);
    if (keep_import_crcs)
        split_crcs(info.imports, parsed->import_crcs_low, parsed->import_crcs_high);
    std::vector<uint8_t> import_flags(info.imports.size());
    bool has_flags = false;
    for (size_t i = 0; i < info.imports.size(); ++i) {
        import_lookup_name(info.imports[i].name, prefix, import_flags[i]);
        if (info.imports[i].is_weak)
            import_flags[i] |= ParsedModule::kImportIsWeak;
        has_flags |= import_flags[i] != 0;
    }
    if (has_flags)
        parsed->import_flags = std::move(import_flags);
    return parsed;
}

uint32_t ModuleIndex::intern(std::string_view name, uint32_t hash)
{
    if ((symbol_names_.size() + 1) * 2 > symbol_slots_.size())
        grow_symbol_slots();
    const size_t mask = symbol_slots_.size() - 1;
    size_t slot = slot_of(hash, mask);
    for (uint32_t id = symbol_slots_[slot]; id != kNoSymbol; id = symbol_slots_[slot]) {
        if (symbol_hashes_[id] == hash && symbol_names_[id] == name)
            return id;
        slot = (slot + 1) & mask;
    }
    auto id = static_cast<uint32_t>(symbol_names_.size());
    symbol_slots_[slot] = id;
    symbol_names_.push_back(store_symbol_name(name));
    symbol_hashes_.push_back(hash);
    is_vmlinux_.push_back(0);
    vmlinux_crc_.push_back(0);
    return id;
}

size_t ModuleIndex::slot_of(uint32_t hash, size_t mask)
{
    // Fibonacci hashing spreads the hash over the table before linear probing.
    return (uint64_t{hash} * 0x9E3779B97F4A7C15ULL >> 32) & mask;
}

void ModuleIndex::grow_symbol_slots(size_t count)
{
    size_t size = std::max<size_t>(1024, symbol_slots_.size() * 2);
    while (size < (count + 1) * 2)
        size *= 2;
    std::vector<uint32_t> slots(size, kNoSymbol);
    const size_t mask = slots.size() - 1;
    for (uint32_t id = 0; id < symbol_names_.size(); ++id) {
        size_t slot = slot_of(symbol_hashes_[id], mask);
        while (slots[slot] != kNoSymbol)
            slot = (slot + 1) & mask;
        slots[slot] = id;
    }
    symbol_slots_ = std::move(slots);
}

std::string_view ModuleIndex::store_symbol_name(std::string_view name)
{
    // Packed one after the other in blocks that never move: a std::string per name would
    // take about twice the bytes (most names are longer than the small-string buffer).
    constexpr size_t kBlockSize = size_t{64} * 1024;
    if (name.empty())
        return {};
    char* at = nullptr;
    if (name.size() > kBlockSize / 8) {
        // A rare long name gets a block of its own; the current one stays in use.
        name_blocks_.push_back(std::make_unique_for_overwrite<char[]>(name.size()));
        at = name_blocks_.back().get();
    } else {
        if (name.size() > name_block_free_) {
            name_blocks_.push_back(std::make_unique_for_overwrite<char[]>(kBlockSize));
            name_block_next_ = name_blocks_.back().get();
            name_block_free_ = kBlockSize;
        }
        at = name_block_next_;
        name_block_next_ += name.size();
        name_block_free_ -= name.size();
    }
    std::memcpy(at, name.data(), name.size());
    return std::string_view(at, name.size());
}

void ModuleIndex::look_up_symbols(const elf::ModuleInfoView& info, SymbolLookups& lookups) const
{
    const char prefix = settings_.symbol_prefix;
    lookups.names.clear();
    lookups.hashes.clear();
    for (const auto& sym : info.exports)
        lookups.names.push_back(export_lookup_name(sym.name, prefix));
    lookups.export_count = lookups.names.size();
    uint8_t flags = 0;
    for (const auto& sym : info.imports)
        lookups.names.push_back(import_lookup_name(sym.name, prefix, flags));
    for (std::string_view name : lookups.names)
        lookups.hashes.push_back(kmod_hash(name));
}

void ModuleIndex::intern_symbols(Candidate& candidate, const SymbolLookups& lookups)
{
    const size_t total = lookups.names.size();
    const size_t exports = lookups.export_count;
    uint32_t* export_ids = candidate.export_ids.fill(exports);
    uint32_t* import_ids = candidate.import_ids.fill(total - exports);
    for (size_t i = 0; i < total; ++i) {
        const uint32_t id = intern(lookups.names[i], lookups.hashes[i]);
        if (i < exports)
            export_ids[i] = id;
        else
            import_ids[i - exports] = id;
    }
}

void ModuleIndex::sort_new_symbols()
{
    const size_t total = symbol_names_.size();
    if (sorted_symbol_count_ == total)
        return;
    auto by_hash = [this](uint32_t a, uint32_t b) { return is_before_in_hash_order(a, b); };
    auto by_name = [this](uint32_t a, uint32_t b) { return is_before_in_name_order(a, b); };
    auto add_sorted = [&](std::vector<uint32_t>& order, auto less) {
        auto middle = static_cast<std::ptrdiff_t>(order.size());
        for (size_t id = sorted_symbol_count_; id < total; ++id)
            order.push_back(static_cast<uint32_t>(id));
        std::sort(order.begin() + middle, order.end(), less);
        std::inplace_merge(order.begin(), order.begin() + middle, order.end(), less);
    };
    // A whole tree's symbols (tens of thousands, compared by name) are sorted both ways at
    // once; the few a rebuild adds are not worth a thread.
    constexpr size_t kSymbolsWorthAThread = 4096;
    auto sort_by_hash = [&] { add_sorted(ids_in_hash_order_, by_hash); };
    std::thread by_hash_sort;
    if (total - sorted_symbol_count_ >= kSymbolsWorthAThread)
        by_hash_sort = base::try_start_thread(sort_by_hash);
    if (!by_hash_sort.joinable())
        sort_by_hash();
    add_sorted(ids_in_name_order_, by_name);
    if (by_hash_sort.joinable())
        by_hash_sort.join();
    sorted_symbol_count_ = total;

    // The per-symbol arrays grew by doubling; they live as long as the index, so they keep
    // room for a few more symbols only (new ones are rare once the tree is indexed).
    auto fit = [total](auto& values) {
        if (values.capacity() > total + total / 16 + 64) {
            std::remove_reference_t<decltype(values)> fitted;
            fitted.reserve(total + total / 32);
            fitted.assign(values.begin(), values.end());
            values = std::move(fitted);
        }
    };
    fit(symbol_names_);
    fit(symbol_hashes_);
    fit(is_vmlinux_);
    fit(vmlinux_crc_);
    fit(ids_in_hash_order_);
    fit(ids_in_name_order_);
}

bool ModuleIndex::is_before_in_hash_order(uint32_t a, uint32_t b) const
{
    const uint32_t bucket_a = symbol_hashes_[a] & (kSymbolTableBuckets - 1);
    const uint32_t bucket_b = symbol_hashes_[b] & (kSymbolTableBuckets - 1);
    return bucket_a != bucket_b ? bucket_a < bucket_b : symbol_names_[a] < symbol_names_[b];
}

bool ModuleIndex::adopt_cached_symbols()
{
    if (!cache_ || !cache_->symbols() || cache_->symbols()->prefix != settings_.symbol_prefix)
        return false;
    const CachedSymbols& table = *cache_->symbols();
    const size_t had = symbol_names_.size();
    if (table.count > had) {
        const size_t room = table.count + table.count / 32;
        symbol_names_.reserve(room);
        symbol_hashes_.reserve(room);
        is_vmlinux_.reserve(room);
        vmlinux_crc_.reserve(room);
        // One table of the final size instead of one per doubling on the way there.
        if ((size_t{table.count} + 1) * 2 > symbol_slots_.size())
            grow_symbol_slots(table.count);
    }
    base::ByteReader names(table.names);
    for (uint32_t id = 0; id < table.count; ++id) {
        std::string_view name;
        (void)names.get_string(name); // checked when the cache was read
        if (id < had) {
            if (symbol_names_[id] != name)
                return false; // nothing added yet
        } else if (intern(name, kmod_hash(name)) != id) {
            truncate_symbols(had); // the cache names a symbol twice
            return false;
        }
    }
    if (had == 0 && take_cached_orders(table))
        sorted_symbol_count_ = table.count;
    return true;
}

bool ModuleIndex::take_cached_orders(const CachedSymbols& table)
{
    std::vector<uint32_t> by_hash(table.count), by_name(table.count);
    std::memcpy(by_hash.data(), table.hash_order.data(), table.hash_order.size());
    std::memcpy(by_name.data(), table.name_order.data(), table.name_order.size());
    // Each must hold every id once, in its order: anything else is sorted again.
    auto is_order = [this](const std::vector<uint32_t>& ids, auto is_before) {
        std::vector<bool> seen(ids.size());
        for (size_t i = 0; i < ids.size(); ++i) {
            if (ids[i] >= ids.size() || seen[ids[i]])
                return false;
            seen[ids[i]] = true;
            if (i != 0 && !(this->*is_before)(ids[i - 1], ids[i]))
                return false;
        }
        return true;
    };
    if (!is_order(by_hash, &ModuleIndex::is_before_in_hash_order) ||
        !is_order(by_name, &ModuleIndex::is_before_in_name_order))
        return false;
    ids_in_hash_order_ = std::move(by_hash);
    ids_in_name_order_ = std::move(by_name);
    return true;
}

void ModuleIndex::truncate_symbols(size_t count)
{
    symbol_names_.resize(count);
    symbol_hashes_.resize(count);
    is_vmlinux_.resize(count);
    vmlinux_crc_.resize(count);
    std::fill(symbol_slots_.begin(), symbol_slots_.end(), kNoSymbol);
    const size_t mask = symbol_slots_.size() - 1;
    for (uint32_t id = 0; id < count; ++id) {
        size_t slot = slot_of(symbol_hashes_[id], mask);
        while (symbol_slots_[slot] != kNoSymbol)
            slot = (slot + 1) & mask;
        symbol_slots_[slot] = id;
    }
}

void ModuleIndex::take_cached_ids(Candidate& candidate, size_t export_count, std::string_view ids,
                                  bool in_place)
{
    const std::string_view exports = ids.substr(0, export_count * sizeof(uint32_t));
    const std::string_view imports = ids.substr(exports.size());
    if (in_place) {
        candidate.export_ids.view(exports);
        candidate.import_ids.view(imports);
        return;
    }
    candidate.export_ids.assign_bytes(exports);
    candidate.import_ids.assign_bytes(imports);
}

size_t ModuleIndex::unused_symbol_count() const
{
    std::vector<bool> used(is_vmlinux_.begin(), is_vmlinux_.end());
    for (const auto& [path, candidate] : candidates_) {
        for (size_t i = 0; i < candidate->export_ids.size(); ++i)
            used[candidate->export_ids[i]] = true;
        for (size_t i = 0; i < candidate->import_ids.size(); ++i)
            used[candidate->import_ids[i]] = true;
    }
    return static_cast<size_t>(std::count(used.begin(), used.end(), false));
}

std::string ModuleIndex::symbol_table_record() const
{
    std::string out;
    size_t bytes = 8 + 8 * symbol_names_.size();
    for (std::string_view name : symbol_names_)
        bytes += 4 + name.size();
    out.reserve(bytes);
    append_symbol_table(out, settings_.symbol_prefix, symbol_names_, ids_in_hash_order_,
                        ids_in_name_order_);
    return out;
}

} // namespace kmodd::index
