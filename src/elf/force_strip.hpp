// SPDX-License-Identifier: LGPL-2.1-or-later
// insmod -f for init_module: the image changed so that the kernel skips its version checks.
#pragma once

#include <string>

#include "base/result.hpp"

namespace kmodd::elf {

/// What kmod changes in a module image before init_module(2) (which takes no flags) when it
/// is asked to force a load: with `modversions`, the __versions section loses SHF_ALLOC, so
/// the kernel finds no symbol CRCs to compare; with `vermagic`, the "vermagic=..." string of
/// .modinfo is overwritten with zero bytes, so the kernel finds none to compare. The kernel
/// then loads the module only if built with CONFIG_MODULE_FORCE_LOAD, and taints itself.
/// Works on ELF32 and ELF64 of either byte order; never reads or writes outside the image. A
/// module without those sections or that string comes back unchanged. Errors: ENOEXEC for an
/// image that is not ELF or whose section headers or .modinfo lie outside it.
[[nodiscard]] base::Result<std::string> strip_for_force(std::string image, bool vermagic,
                                                        bool modversions);

} // namespace kmodd::elf
