// SPDX-License-Identifier: LGPL-2.1-or-later
// The file-system work a warm depmod run with one module's content changed cannot avoid,
// whatever it computes: for depmod_bench, which prints it beside kmod's full run.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kmodd::bench {

/// One measurement of the floor, in milliseconds.
struct IoFloor {
    double stat_ms = 0;        ///< every module file stat'ed, on two threads
    double cache_read_ms = 0;  ///< the parse cache read, every page of it
    double outputs_ms = 0;     ///< the outputs written and published (temp file, fsync, rename)
    double fsync_wait_ms = 0;  ///< of outputs_ms: the wait for the fsyncs before the renames
    double cache_write_ms = 0; ///< its delta or the whole parse cache written (temp file, rename)
    size_t cache_bytes_written = 0; ///< the size of what was written
    bool wrote_delta = false;       ///< whether that was the cache's delta
    [[nodiscard]] double total_ms() const
    {
        return stat_ms + cache_read_ms + outputs_ms + cache_write_ms;
    }
};

/// Does that work once: stats `module_files` (from `module_dir`, as the run does), reads
/// `cache_file`, writes files of the names and sizes of the modules.* files in `outputs_dir`
/// into `publish_dir` (created when missing) the way kmodctl depmod publishes them (each
/// fsync'ed on a thread of its own, then renamed over the last round's), and writes the bytes
/// of `cache_file`'s delta, when there is one (as a run that parsed a few modules does), else
/// of `cache_file`, into `publish_dir`. Nothing is built in fresh memory: the outputs come from
/// one small buffer used over and over.
IoFloor measure_io_floor(const std::string& module_dir,
                         const std::vector<std::string>& module_files,
                         const std::string& cache_file, const std::string& outputs_dir,
                         const std::string& publish_dir);

/// What a first touch of fresh anonymous memory costs here, in ms per MiB, with 4 KiB pages and
/// with 2 MiB (transparent huge) pages: on a VM it is mostly the host's work of backing the
/// page, and a 2 MiB page freed a few seconds ago may have been handed back to the host (free
/// page reporting) while 4 KiB pages come back warm. The warm depmod runs grow their heap in
/// huge pages where they cost less (base::grow_heap_in_huge_pages()), so this says which
/// regime their figures were measured in. `huge_ms_per_mib` is 0 where huge pages cannot be
/// advised.
struct FreshMemory {
    double small_ms_per_mib = 0;
    double huge_ms_per_mib = 0;
};
/// Touches `mib` MiB of each kind once (the huge pages first), each in a mapping of its own,
/// in a child process, as a depmod run touches its heap.
FreshMemory measure_fresh_memory(size_t mib);

} // namespace kmodd::bench
