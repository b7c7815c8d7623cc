// SPDX-License-Identifier: LGPL-2.1-or-later
// glibc allocator tuning for long-running processes.
#include "base/allocator.hpp"

#include <malloc.h>

namespace kmodd::base {

void keep_freed_memory_for_reuse()
{
    constexpr int kMiB = 1024 * 1024;
    ::mallopt(M_MMAP_THRESHOLD, 64 * kMiB);
    ::mallopt(M_TRIM_THRESHOLD, 128 * kMiB);
}

} // namespace kmodd::base
