// SPDX-License-Identifier: LGPL-2.1-or-later
// What every fuzz target shares: the libFuzzer entry point's declaration and a check that
// stops the run (a crash libFuzzer keeps as an input) when a property does not hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace kmodd::fuzz {

/// Aborts with `what` when `holds` is false.
inline void check(bool holds, const char* what)
{
    if (!holds) {
        std::fprintf(stderr, "fuzz property violated: %s\n", what);
        std::abort();
    }
}

} // namespace kmodd::fuzz
