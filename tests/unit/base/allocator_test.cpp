// SPDX-License-Identifier: LGPL-2.1-or-later
// A one-shot rebuild's heap is grown at once and advised for transparent huge pages (where
// they cost no more than small ones).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/allocator.hpp"

namespace kmodd::base {
namespace {

constexpr size_t kMiB = size_t{1024} * 1024;

/// What /proc/self/smaps says of the mapping that holds an address.
struct Mapping {
    bool found = false;
    std::string flags;       ///< its VmFlags line
    size_t rss_kb = 0;       ///< its pages in memory
    size_t anon_huge_kb = 0; ///< of them, in transparent huge pages
};

Mapping mapping_holding(uintptr_t address)
{
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    Mapping mapping;
    bool inside = false;
    while (std::getline(smaps, line)) {
        uintptr_t begin = 0;
        uintptr_t end = 0;
        char dash = 0;
        std::istringstream fields(line);
        if (fields >> std::hex >> begin >> dash >> end && dash == '-') {
            if (mapping.found)
                break;
            inside = mapping.found = begin <= address && address < end;
            continue;
        }
        std::string field;
        size_t kb = 0;
        std::istringstream values(line);
        values >> field >> kb;
        if (inside && field == "VmFlags:")
            mapping.flags = line;
        else if (inside && field == "Rss:")
            mapping.rss_kb = kb;
        else if (inside && field == "AnonHugePages:")
            mapping.anon_huge_kb = kb;
    }
    return mapping;
}

/// The kernel's count of huge-page faults that fell back to small pages.
size_t huge_page_fallbacks()
{
    std::ifstream vmstat("/proc/vmstat");
    std::string name;
    size_t count = 0;
    while (vmstat >> name >> count)
        if (name == "thp_fault_fallback")
            return count;
    return 0;
}

bool transparent_huge_pages_can_be_advised()
{
    std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes;
    return std::getline(mode, modes) && modes.find("[never]") == std::string::npos;
}

TEST(Allocator, AOneShotRebuildsBlocksComeFromAHeapAdvisedForHugePages)
{
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer's allocator does not use the brk heap";
#endif
    if (!transparent_huge_pages_can_be_advised())
        GTEST_SKIP() << "transparent huge pages are off on this kernel";
    // In a child: the allocator's tuning stays with the process that asked for it.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        grow_heap_in_huge_pages(64 * kMiB, HeapPages::Huge);
        // 8 MiB: a block glibc would otherwise map on its own, outside the heap.
        void* block = std::malloc(8 * kMiB); // NOLINT(cppcoreguidelines-no-malloc)
        // Its middle: the advice starts at the first 2 MiB boundary past the heap's old top.
        const std::string flags =
            mapping_holding(reinterpret_cast<uintptr_t>(block) + 4 * kMiB).flags;
        std::free(block); // NOLINT(cppcoreguidelines-no-malloc)
        ::_exit(flags.find(" hg") != std::string::npos ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the block's mapping is not advised for huge pages";
}

TEST(Allocator, AOneShotHeapStaysInHugePagesOnlyWhereItsFirstCostNoMoreThanSmallOnes)
{
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer's allocator does not use the brk heap";
#endif
    if (!transparent_huge_pages_can_be_advised())
        GTEST_SKIP() << "transparent huge pages are off on this kernel";
    // Which way it goes depends on this machine; what is advised must be what it said.
    const bool host_takes_back = host_takes_back_free_memory();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const bool in_huge_pages = grow_heap_in_huge_pages(64 * kMiB, HeapPages::HugeWhenCheaper);
        auto* block = static_cast<char*>(std::malloc(8 * kMiB)); // NOLINT
        const auto address = reinterpret_cast<uintptr_t>(block);
        // The first huge page was faulted in to time it: it stays one, whatever was chosen.
        // Where the host takes back free memory nothing is timed, and nothing advised.
        const bool first_as_expected =
            (mapping_holding(address).flags.find(" hg") != std::string::npos) != host_takes_back;
        if (host_takes_back && in_huge_pages)
            ::_exit(3);
        const std::string rest = mapping_holding(address + 4 * kMiB).flags;
        const bool rest_as_said =
            host_takes_back ? rest.find(" hg") == std::string::npos
                            : rest.find(in_huge_pages ? " hg" : " nh") != std::string::npos;
        std::free(block); // NOLINT(cppcoreguidelines-no-malloc)
        ::_exit(!first_as_expected ? 1 : !rest_as_said ? 2 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 1)
        << (host_takes_back ? "the heap's first 2 MiB are advised for huge pages"
                            : "the heap's first 2 MiB are not advised for huge pages");
    EXPECT_NE(WEXITSTATUS(status), 2) << "the rest of the heap is not advised as was said";
    EXPECT_NE(WEXITSTATUS(status), 3) << "huge pages chosen where the host takes back free memory";
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

/// A sysfs tree with one virtio balloon bound to its driver, whose negotiated features are
/// `features` ("" : no balloon).
class BalloonTree {
public:
    explicit BalloonTree(const std::string& features)
    {
        char name[] = "/tmp/kmodd-balloon-XXXXXX";
        root_ = ::mkdtemp(name);
        if (features.empty())
            return;
        const std::string device = root_ + "/devices/virtio0";
        const std::string driver = root_ + "/bus/virtio/drivers/virtio_balloon";
        std::filesystem::create_directories(device);
        std::filesystem::create_directories(driver);
        std::ofstream(device + "/features") << features << "\n";
        std::filesystem::create_directory_symlink(device, driver + "/virtio0");
        std::ofstream(driver + "/uevent") << "DRIVER=virtio_balloon\n";
    }
    ~BalloonTree() { std::filesystem::remove_all(root_); }
    BalloonTree(const BalloonTree&) = delete;
    BalloonTree& operator=(const BalloonTree&) = delete;
    [[nodiscard]] const std::string& root() const { return root_; }

private:
    std::string root_;
};

TEST(Allocator, AHostTakesBackFreeMemoryWhereABalloonReportsFreePages)
{
    // Bits 1, 2, 5 and 7, as a Firecracker balloon with free page reporting negotiates them.
    EXPECT_TRUE(host_takes_back_free_memory(BalloonTree("0110010100000000").root()));
    // The same balloon without reporting (bit 5): free memory stays with the guest.
    EXPECT_FALSE(host_takes_back_free_memory(BalloonTree("0110000100000000").root()));
    EXPECT_FALSE(host_takes_back_free_memory(BalloonTree("01100").root()));
    EXPECT_FALSE(host_takes_back_free_memory(BalloonTree("").root()));
    EXPECT_FALSE(host_takes_back_free_memory("/nonexistent/sysfs"));
}

constexpr int kNoHugePageFree = 2;
constexpr int kNotFromTheBoundary = 3;
constexpr int kOverTouchedPages = 4;

/// In a child: grows the heap in huge pages and gives how its first block's pages are backed
/// (0: every one in a huge page). Pages of the heap below `touched_end` were touched before.
int grow_heap_and_check_its_pages(uintptr_t touched_end)
{
    const size_t fallbacks = huge_page_fallbacks();
    grow_heap_in_huge_pages(64 * kMiB, HeapPages::Huge);
    // Bigger than any block freed before: it comes from the heap's top, which now starts
    // at the first huge page (the gap below is filled), its header 16 bytes before it.
    auto* block = static_cast<char*>(std::malloc(8 * kMiB)); // NOLINT
    const auto address = reinterpret_cast<uintptr_t>(block);
    if ((address - 2 * sizeof(size_t)) % (2 * kMiB) != 0)
        return kNotFromTheBoundary;
    if (address < touched_end)
        return kOverTouchedPages;
    std::fill(block, block + size_t{64} * 1024, 'x');
    const Mapping mapping = mapping_holding(address);
    if (huge_page_fallbacks() != fallbacks)
        return kNoHugePageFree;
    // Advised, and every page of it in memory is part of a huge page: none was touched
    // before the advice (a page that was stays 4 KiB, and so does its whole 2 MiB).
    const bool advised = mapping.flags.find(" hg") != std::string::npos;
    return advised && mapping.rss_kb > 0 && mapping.rss_kb == mapping.anon_huge_kb ? 0 : 1;
}

/// Runs `child_work` in a child process and checks what grow_heap_and_check_its_pages() gave.
template <typename Work> void expect_only_huge_pages_in_a_child(Work child_work)
{
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0)
        ::_exit(child_work());
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    if (WEXITSTATUS(status) == kNoHugePageFree)
        GTEST_SKIP() << "the kernel had no free huge page";
    EXPECT_NE(WEXITSTATUS(status), kNotFromTheBoundary)
        << "the heap's top does not start at the first huge page";
    EXPECT_NE(WEXITSTATUS(status), kOverTouchedPages)
        << "the heap's huge pages start over pages touched before";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the huge pages hold a small page";
}

TEST(Allocator, TheHeapGrowsFromAHugePageBoundaryWithNoSmallPageInItsHugePages)
{
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer's allocator does not use the brk heap";
#endif
    if (!transparent_huge_pages_can_be_advised())
        GTEST_SKIP() << "transparent huge pages are off on this kernel";
    expect_only_huge_pages_in_a_child([] { return grow_heap_and_check_its_pages(0); });
}

TEST(Allocator, PagesFreedIntoTheHeapsTopAcrossAHugePageBoundaryStayOutOfItsHugePages)
{
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer's allocator does not use the brk heap";
#endif
    if (!transparent_huge_pages_can_be_advised())
        GTEST_SKIP() << "transparent huge pages are off on this kernel";
    expect_only_huge_pages_in_a_child([] {
        // A block across a 2 MiB boundary, every page of it touched, freed into the heap's
        // top, where it stays: the top's first pages are then small pages in memory.
        keep_freed_memory_for_reuse();
        auto* used = static_cast<char*>(std::malloc(3 * kMiB)); // NOLINT
        std::fill(used, used + 3 * kMiB, 'u');
        // Kept: a compiler drops stores to a block that is only freed after them.
        asm volatile("" : : "r"(used) : "memory");
        const auto touched_end = reinterpret_cast<uintptr_t>(used) + 3 * kMiB;
        std::free(used); // NOLINT(cppcoreguidelines-no-malloc)
        return grow_heap_and_check_its_pages(touched_end);
    });
}

} // namespace
} // namespace kmodd::base
