// SPDX-License-Identifier: LGPL-2.1-or-later
// glibc allocator tuning for processes that rebuild the index.
#include "base/allocator.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/file.hpp"

namespace kmodd::base {

namespace {

constexpr size_t kMiB = size_t{1024} * 1024;
constexpr uintptr_t kHugePage = 2 * kMiB; // x86-64's PMD size, the unit of a transparent huge page
/// The probe stays below glibc's mmap threshold (keep_freed_memory_for_reuse(): 64 MiB).
constexpr size_t kProbeMargin = 4 * kMiB;
/// glibc's default M_TOP_PAD: the heap grows by the probe and this much.
constexpr size_t kProbePad = size_t{128} * 1024;
/// The block kept below the huge pages holds at least this much (glibc's smallest chunk is 32
/// bytes).
constexpr uintptr_t kMinGap = 64;

/// The block that fills the heap below its huge pages (grow_heap_in_huge_pages()).
void* gap_filler = nullptr; // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

/// Milliseconds per MiB a first write to the `bytes` at `at` took, faulted in without writing
/// a byte (MADV_POPULATE_WRITE); negative where the kernel cannot (before Linux 5.14).
double populate_ms_per_mib(void* at, size_t bytes)
{
    const auto started = std::chrono::steady_clock::now();
    if (::madvise(at, bytes, MADV_POPULATE_WRITE) != 0)
        return -1;
    const std::chrono::duration<double, std::milli> took =
        std::chrono::steady_clock::now() - started;
    return took.count() * static_cast<double>(kMiB) / static_cast<double>(bytes);
}

/// What 4 KiB pages of fresh memory cost here, in ms per MiB (negative: not measured), from a
/// mapping of a few of them made for the purpose.
double small_page_ms_per_mib()
{
    constexpr size_t kProbeBytes = size_t{512} * 1024;
    void* mapped =
        ::mmap(nullptr, kProbeBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED)
        return -1;
    double ms = -1;
    if (::madvise(mapped, kProbeBytes, MADV_NOHUGEPAGE) == 0)
        ms = populate_ms_per_mib(mapped, kProbeBytes);
    ::munmap(mapped, kProbeBytes);
    return ms;
}

/// VIRTIO_BALLOON_F_REPORTING: the balloon driver reports free pages to the host.
constexpr size_t kBalloonFreePageReporting = 5;

} // namespace

bool host_takes_back_free_memory(const std::string& sysfs)
{
    // A device the driver is bound to is a link in its directory; its `features` file holds the
    // negotiated feature bits as '0' and '1', bit 0 first.
    const std::string driver = sysfs + "/bus/virtio/drivers/virtio_balloon";
    DIR* dir = ::opendir(driver.c_str());
    if (dir == nullptr)
        return false;
    bool reported = false;
    while (const dirent* entry = ::readdir(dir)) {
        if (!std::string_view(entry->d_name).starts_with("virtio"))
            continue;
        auto features = read_file(AT_FDCWD, driver + "/" + entry->d_name + "/features");
        if (features && features->size() > kBalloonFreePageReporting &&
            (*features)[kBalloonFreePageReporting] == '1')
            reported = true;
    }
    ::closedir(dir);
    return reported;
}

void keep_freed_memory_for_reuse()
{
    ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(64 * kMiB));
    ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(128 * kMiB));
}

void use_one_heap_for_all_threads()
{
    ::mallopt(M_ARENA_MAX, 1);
}

bool grow_heap_in_huge_pages(size_t bytes, HeapPages pages)
{
    keep_freed_memory_for_reuse();
    if (bytes < kProbeMargin + 2 * kHugePage)
        return false; // too little to hold a huge page past the probe's ends
    // Where the host takes back free 2 MiB blocks, a fresh huge page comes from one of them:
    // not worth the fault of a first one to find out (~4 ms).
    if (pages == HeapPages::HugeWhenCheaper && host_takes_back_free_memory())
        return false;
    ::mallopt(M_TOP_PAD, static_cast<int>(kProbePad));
    // A block the heap's top cannot hold makes the heap grow now. Nothing is written inside it
    // but a chunk header at each end: a page touched before the advice is a 4 KiB page, and so
    // are all others of its 2 MiB, which then never become a huge page (measured: ~450 faults,
    // ~5 ms, in a warm run whose probe ended inside the range advised).
    const size_t probe_size = bytes - kProbeMargin;
    // Pages at the heap's top were touched before (blocks freed into it, the header of each
    // earlier top): all lie below its end.
    const auto old_end = reinterpret_cast<uintptr_t>(::sbrk(0));
    void* probe = ::malloc(probe_size); // NOLINT(cppcoreguidelines-no-malloc): the heap itself
    ::mallopt(M_TOP_PAD, static_cast<int>(bytes));
    if (probe == nullptr)
        return false;
    const auto begin = reinterpret_cast<uintptr_t>(probe);
    const auto end = reinterpret_cast<uintptr_t>(::sbrk(0));
    // The whole 2 MiB pages inside the block that the heap never held before (none of their
    // pages was touched, and no table of small pages is left for them): its end header lies
    // past them.
    const uintptr_t fresh = std::max(begin + kMinGap, old_end);
    const uintptr_t first = (fresh + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t last = (begin + probe_size) & ~(kHugePage - 1);
    // Only when the block came from the brk heap just below its end (not from a mapping).
    if (end <= begin || end - begin > probe_size + 2 * kProbePad || first >= last) {
        ::free(probe); // NOLINT(cppcoreguidelines-no-malloc)
        return false;
    }
    // NOLINTNEXTLINE(performance-no-int-to-ptr): an address from the heap
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    // The block, shrunk in place to end at `first`, stays for the process's life: the rest goes
    // back to the heap's top, so the blocks asked for next come from the advised pages and not
    // from the 4 KiB pages below them. (glibc makes a chunk of n bytes from a request of n - 8
    // when n is a multiple of 16; its header is 16 bytes before the block.)
    // The header of the heap's new top is written at `first`: that faults in the first huge
    // page, and the time this takes says what the others would cost.
    const auto shrinking = std::chrono::steady_clock::now();
    gap_filler = ::realloc(probe, first - begin + sizeof(size_t)); // NOLINT
    const std::chrono::duration<double, std::milli> first_fault =
        std::chrono::steady_clock::now() - shrinking;
    if (pages == HeapPages::Huge)
        return true;
    const double huge = first_fault.count() * static_cast<double>(kMiB) / kHugePage;
    const double small = small_page_ms_per_mib();
    if (small < 0 || huge <= small || last - first <= kHugePage)
        return true;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): an address from the heap
    ::madvise(reinterpret_cast<void*>(first + kHugePage), last - first - kHugePage,
              MADV_NOHUGEPAGE);
    return false;
}

} // namespace kmodd::base
