// SPDX-License-Identifier: LGPL-2.1-or-later
// What the sandbox kernel reads from module files, and the real or sandbox kernel chosen.
#pragma once

#include "depmod/index_reader.hpp"
#include "sys/kernel.hpp"

namespace kmodd::loader {

/// Reads what the sandbox kernel needs from a module file with the ELF reader: the name the
/// kernel would use (.modinfo "name=", else the file name), the size of the file, exports
/// and non-weak imports.
[[nodiscard]] sys::ModuleInspector make_module_inspector();

/// A symbol is "only provided by modules" when the module database names an owner for it.
/// The database must outlive the predicate.
[[nodiscard]] sys::ModuleSymbolPredicate
make_module_symbol_predicate(const depmod::ModuleDatabase& database);

/// The real kernel, with the ELF layer's decompression for the userspace fallback.
[[nodiscard]] std::unique_ptr<sys::Kernel> make_system_kernel();

} // namespace kmodd::loader
