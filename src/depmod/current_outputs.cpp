// SPDX-License-Identifier: LGPL-2.1-or-later
// Whether a depmod run has anything to do: the outputs on disk proven to be those of the tree as
// it is now, from the output state and the parse cache, without building them.
#include <fcntl.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/digest.hpp"
#include "depmod/depmod.hpp"
#include "depmod/output_state.hpp"
#include "elf/module_file.hpp"
#include "index/parse_cache.hpp"

namespace kmodd::depmod {

using index::Diagnostic;
using index::Diagnostics;

namespace {

/// At most this many changed module files are parsed to prove the outputs current; beyond it a
/// full run (which parses them again) costs about as much.
constexpr size_t kMaxReparsed = 32;
/// At most this many files are kept in the output state as renewed (OutputState::renewed).
constexpr size_t kMaxRenewed = 64;

index::FileKey file_key_of(const index::CacheKey& key)
{
    return index::FileKey{static_cast<dev_t>(key.dev), static_cast<ino_t>(key.ino),
                          static_cast<off_t>(key.size), key.mtime_ns, key.ctime_ns};
}

} // namespace

bool Depmod::outputs_are_current(Diagnostics& diagnostics)
{
    finish_cache_save(diagnostics);
    files_reparsed_unchanged_ = 0;
    files_spliced_ = 0;
    if (options_.parse_cache.empty())
        return false;
    auto state = OutputState::load(output_state_path(options_.parse_cache));
    if (!state)
        return false;
    // Should the outputs be made again, they are made in buffers of the sizes they had.
    for (const OutputState::File& file : state->files)
        outputs_.expect_size(file.name, file.size);
    auto digest_of = [&](const char* name) {
        return base::Digest64::of_read(base::read_file(AT_FDCWD, module_dir() + "/" + name));
    };
    const uint64_t order = digest_of("modules.order");
    const uint64_t builtin = digest_of("modules.builtin");
    const uint64_t builtin_modinfo = digest_of("modules.builtin.modinfo");
    const uint64_t plain = inputs_digest(order, builtin, builtin_modinfo, false);
    const uint64_t with_v = inputs_digest(order, builtin, builtin_modinfo, true);
    // A -v run's state serves a run without -v too: what -v adds are INFO lines (a line per
    // dependency), which such a run leaves out. A -v run needs a -v run's state, for them.
    if (state->inputs != with_v && state->inputs != plain)
        return false;
    if (resolve_options_.verbose && state->inputs != with_v)
        return false;
    if (!resolve_options_.verbose && state->inputs == with_v) {
        // Saved again by this run (below), it is a state without -v.
        std::erase_if(state->diagnostics,
                      [](const Diagnostic& d) { return d.level == Diagnostic::Level::Info; });
        state->inputs = plain;
    }
    // Should the outputs be made again, what can stay as it is stays.
    published_ = Published{state->inputs, state->files};
    outputs_.expect_symbols(state->symbols);
    outputs_.expect_alias_order(state->alias_order); // a copy: `state` may be saved again

    Walk walk;
    walk.started_ns = index::realtime_ns();
    index::WalkMemo memo;
    memo.previous = std::move(state->listings);
    memo.since_ns = walk.started_ns;
    auto files = index_.list_files(walk.said, &memo);
    if (!files)
        return false;
    keep_listings(memo);
    // What the directories hold now (listings_), for the state saved below or after the scan.
    const bool listings_changed = memo.complete ? !memo.recorded_unchanged : !memo.previous.empty();
    // Whatever is decided below, a scan() that follows needs this walk, not another.
    const auto keep_walk = [&] {
        walk.files = std::move(*files);
        last_walk_ = std::move(walk);
        return false;
    };
    if (files->size() != state->module_count)
        return keep_walk();
    bool same_keys = true;
    uint64_t sum = 0;
    for (const auto& file : *files) {
        if (!file.has_stat)
            return keep_walk();
        const index::FileKey key = index::file_key_of(file.st);
        if (index::is_racy(key.mtime_ns, key.ctime_ns, state->keys_since_ns)) {
            same_keys = false;
            break;
        }
        sum += index::ModuleIndex::file_digest(file.path, key, file.symlink_target);
    }
    // The outputs are read last: a module whose content changed fails the proof sooner.
    const bool proven_by_keys = same_keys && sum == state->modules;
    if (proven_by_keys ? !state->describes_files_in(output_dir_)
                       : !prove_reparsed_unchanged(*state, *files, walk.started_ns))
        return keep_walk();
    // Nothing to write but the listings of directories that changed (a file came and went).
    if (proven_by_keys && listings_changed) {
        state->listings = std::move(listings_);
        (void)state->save(output_state_path(options_.parse_cache)); // else read again next run
    }
    diagnostics.insert(diagnostics.end(), walk.said.begin(), walk.said.end());
    diagnostics.insert(diagnostics.end(), state->diagnostics.begin(), state->diagnostics.end());
    return true;
}

bool Depmod::prove_reparsed_unchanged(OutputState& state,
                                      const std::vector<index::ModuleIndex::FoundFile>& files,
                                      int64_t started_ns)
{
    if (!options_.save_parse_cache)
        return false;
    auto loaded = index::ParseCache::load(options_.parse_cache);
    if (!loaded)
        return false; // scan() loads it again and says what is wrong with it
    auto cache = std::make_shared<const index::ParseCache>(std::move(*loaded));
    // When nothing is proven, the scan() that follows takes this one instead of reading it again.
    proof_cache_ = cache;
    std::unordered_map<std::string_view, const OutputState::Renewed*> renewed_before;
    for (const OutputState::Renewed& file : state.renewed)
        renewed_before.emplace(file.path, &file);
    std::vector<OutputState::Renewed> renewed;
    // Files that parse to another record, whose outputs a splice may make.
    std::vector<Reparsed> differing;
    const bool may_differ = may_splice(state);
    size_t reparsed = 0;
    uint64_t published = 0; // the digest of the files as the published generation saw them
    uint64_t current = 0;   // ... and as they are now
    elf::LoadBuffers buffers;
    std::string record;
    for (const auto& file : files) {
        auto stored = cache->stored_entry(file.path);
        if (!file.has_stat || !stored)
            return false;
        // The key the published generation saw: the cache entry's, or the one an earlier proof
        // found parsing to that entry.
        const index::CacheKey* then = stored->key;
        if (auto it = renewed_before.find(file.path);
            it != renewed_before.end() && it->second->cached == *stored->key)
            then = &it->second->now;
        // A key that changed shortly before that generation began proves nothing about content.
        if (index::is_racy(then->mtime_ns, then->ctime_ns, state.keys_since_ns))
            return false;
        const uint64_t then_digest =
            index::ModuleIndex::file_digest(file.path, file_key_of(*then), then->symlink_target);
        published += then_digest;
        index::CacheKey now = index::CacheKey::of(file.st, file.symlink_target);
        if (now == *then) {
            current += then_digest;
        } else {
            // Changed since: the outputs stand when it parses to what the cache has for it.
            if (reparsed++ == kMaxReparsed)
                return false;
            struct stat st = file.st;
            auto info = elf::load_module_file(AT_FDCWD, file.path, st, buffers);
            if (!info)
                return false;
            record.clear();
            index::append_info_record(record, *info);
            now = index::CacheKey::of(st, file.symlink_target);
            current +=
                index::ModuleIndex::file_digest(file.path, file_key_of(now), file.symlink_target);
            if (record != stored->info) {
                // Another record: made into the outputs by a splice, when one may do it.
                if (!may_differ)
                    return false;
                differing.push_back({static_cast<size_t>(&file - files.data()), std::move(*info),
                                     stored->info, std::move(now)});
                continue;
            }
        }
        if (now != *stored->key)
            renewed.push_back({file.path, std::move(now), *stored->key});
    }
    // Beyond a few renewed files a full run, which rewrites the cache, is the better deal.
    if (published != state.modules || renewed.size() > kMaxRenewed)
        return false;
    // A splice checks the files it reads or keeps itself, and replaces the others.
    if (!differing.empty())
        return splice_outputs(state, files, differing, started_ns, current, std::move(renewed));
    if (!state.describes_files_in(output_dir_))
        return false;
    // Proven: the state takes the files' keys now (the cache stays as it is), and modules.dep the
    // time of this run (depmod -A compares it with the modules'). When the state cannot be saved,
    // this run does the work as if nothing had been proven.
    state.modules = current;
    state.keys_since_ns = started_ns;
    state.renewed = std::move(renewed);
    state.listings = std::move(listings_);
    if (!state.save(output_state_path(options_.parse_cache))) {
        listings_ = std::move(state.listings); // for the scan that follows
        return false;
    }
    ::utimensat(AT_FDCWD, (output_dir_ + "/modules.dep").c_str(), nullptr, 0);
    files_reparsed_unchanged_ = reparsed;
    proof_cache_.reset();
    return true;
}

} // namespace kmodd::depmod
