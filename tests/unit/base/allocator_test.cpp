// SPDX-License-Identifier: LGPL-2.1-or-later
// A one-shot rebuild's heap is grown at once and advised for transparent huge pages.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "base/allocator.hpp"

namespace kmodd::base {
namespace {

constexpr size_t kMiB = size_t{1024} * 1024;

/// The VmFlags line of the mapping in /proc/self/smaps that holds `address`; empty if none.
std::string flags_of_mapping_holding(uintptr_t address)
{
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(smaps, line)) {
        uintptr_t begin = 0;
        uintptr_t end = 0;
        char dash = 0;
        std::istringstream fields(line);
        if (fields >> std::hex >> begin >> dash >> end && dash == '-') {
            inside = begin <= address && address < end;
            continue;
        }
        if (inside && line.rfind("VmFlags:", 0) == 0)
            return line;
    }
    return {};
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
        grow_heap_in_huge_pages(64 * kMiB);
        // 8 MiB: a block glibc would otherwise map on its own, outside the heap.
        void* block = std::malloc(8 * kMiB); // NOLINT(cppcoreguidelines-no-malloc)
        // Its middle: the advice starts at the first 2 MiB boundary past the heap's old top.
        const std::string flags =
            flags_of_mapping_holding(reinterpret_cast<uintptr_t>(block) + 4 * kMiB);
        std::free(block); // NOLINT(cppcoreguidelines-no-malloc)
        ::_exit(flags.find(" hg") != std::string::npos ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the block's mapping is not advised for huge pages";
}

} // namespace
} // namespace kmodd::base
