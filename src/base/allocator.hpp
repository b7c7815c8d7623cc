// SPDX-License-Identifier: LGPL-2.1-or-later
// Keeping freed memory for the next rebuild instead of returning it to the kernel.
#pragma once

#include <cstddef>
#include <string>

namespace kmodd::base {

/// Tunes glibc's allocator for index rebuilds: the multi-megabyte buffers of one generation
/// come from the heap and stay there for the next one, instead of being mapped fresh and
/// unmapped each time. On VMs every first touch of a fresh page is a costly fault: measured
/// here, an incremental rebuild of the amd64 tree drops from 34 ms to 11 ms. For processes
/// that rebuild again and again (the daemon, the benchmark); a one-shot depmod run takes it
/// with grow_heap_in_huge_pages(), where it puts the big buffers into the advised heap. What
/// is kept is one rebuild's temporaries per thread that allocates them (glibc gives each
/// thread its own arena), so the daemon builds on one thread only.
void keep_freed_memory_for_reuse();

/// For a process that builds the index once and exits (kmodctl depmod): keeps freed memory as
/// above, grows the main heap by about `bytes` (4 MiB less: glibc maps blocks of 64 MiB apart)
/// at once and asks the kernel to back it with transparent huge pages (where THP is `madvise`
/// or `always`), so the main thread's working set is faulted in 2 MiB at a time instead of
/// 4 KiB. A fresh heap's page faults were most of a one-shot rebuild's time beyond its work
/// (perf stat on the amd64 tree: ~5200 faults, each ~10 µs in a VM). Worker threads keep arenas
/// of their own: sharing the main one made the full run's parallel parse wait on its lock
/// (0.24 s → 0.28 s). The blocks asked for next start at the first 2 MiB boundary past the
/// heap's old end (up to 2 MiB below it, and what was free at the heap's top, stay unused: pages
/// touched before the advice stay 4 KiB pages, and so does their whole 2 MiB). Does nothing more
/// for `bytes` below 8 MiB, or where the heap does not grow by brk.
///
/// What a huge page costs differs from machine to machine: on one VM here 1–1.6 ms per MiB
/// against ~3 in 4 KiB pages, on another 1–3 ms per MiB against 0.5 (a 2 MiB block freed a
/// couple of seconds before had been handed back to the host, a 4 KiB page had not). With
/// HeapPages::HugeWhenCheaper the heap's first huge page (which the header of its new top
/// faults in here) is timed against 512 KiB of 4 KiB pages of a mapping made for the purpose
/// (~0.2–1 ms); where it cost more per MiB, the rest of the heap is advised against huge pages.
/// Where the host takes back free memory (host_takes_back_free_memory()), nothing is advised
/// and nothing timed: there a fresh huge page was 0.8–3.4 ms per MiB against 0.4–0.6 (a warm
/// content-changed run 68.5 ms without huge pages against 88.9 with them), and its first fault,
/// timed, cost ~4 ms of every run's start (~3 ms of a whole warm run). Returns whether the heap
/// grows in huge pages (its first 2 MiB are one either way when something was advised).
enum class HeapPages { Huge, HugeWhenCheaper };
bool grow_heap_in_huge_pages(size_t bytes, HeapPages pages = HeapPages::HugeWhenCheaper);

/// Whether this machine is a virtual one whose host takes back the memory it leaves free: a
/// virtio balloon under `sysfs` with free page reporting (VIRTIO_BALLOON_F_REPORTING)
/// negotiated. Linux reports free blocks of 2 MiB (x86-64's pageblock) a couple of seconds
/// after they were freed, so a fresh huge page then costs a fault on the host too; 4 KiB pages
/// taken from split blocks mostly do not.
[[nodiscard]] bool host_takes_back_free_memory(const std::string& sysfs = "/sys");

/// Makes every thread allocate from the main heap (glibc's M_ARENA_MAX = 1) instead of an
/// arena of its own, whose pages would all be faulted in fresh: for a one-shot run whose other
/// threads make a few MiB each (a warm depmod run's second output thread and cache save:
/// ~1,100 fewer page faults, ~10 ms on amd64). Threads that allocate much at once then wait
/// on the heap's lock, as a full parse would (see above). Takes effect only when called before
/// a second thread allocates.
void use_one_heap_for_all_threads();

} // namespace kmodd::base
