// SPDX-License-Identifier: LGPL-2.1-or-later
// glibc allocator tuning for processes that rebuild the index.
#include "base/allocator.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace kmodd::base {

namespace {

constexpr size_t kMiB = size_t{1024} * 1024;
constexpr uintptr_t kHugePage = 2 * kMiB; // x86-64's PMD size, the unit of a transparent huge page

} // namespace

void keep_freed_memory_for_reuse()
{
    ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(64 * kMiB));
    ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(128 * kMiB));
}

void use_one_heap_for_all_threads()
{
    ::mallopt(M_ARENA_MAX, 1);
}

void grow_heap_in_huge_pages(size_t bytes)
{
    keep_freed_memory_for_reuse();
    ::mallopt(M_TOP_PAD, static_cast<int>(bytes));
    // A block the heap's top cannot hold makes the heap grow now, by `bytes` past it.
    constexpr size_t kProbe = 4 * kMiB;
    void* probe = ::malloc(kProbe); // NOLINT(cppcoreguidelines-no-malloc): the heap itself
    if (probe == nullptr)
        return;
    const auto begin = reinterpret_cast<uintptr_t>(probe);
    const auto end = reinterpret_cast<uintptr_t>(::sbrk(0));
    ::free(probe); // NOLINT(cppcoreguidelines-no-malloc)
    // Only when the block came from the brk heap just below its end (not from a mapping).
    if (end <= begin || end - begin > bytes + 2 * kProbe)
        return;
    const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t last = end & ~(kHugePage - 1);
    if (first < last) // NOLINTNEXTLINE(performance-no-int-to-ptr): an address from sbrk
        ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

} // namespace kmodd::base
