// SPDX-License-Identifier: LGPL-2.1-or-later
// What the sandbox kernel reads from module files, and the real or sandbox kernel chosen.
#include "loader/sandbox_support.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "elf/force_strip.hpp"
#include "elf/module_file.hpp"
#include "index/names.hpp"

namespace kmodd::loader {

sys::ModuleInspector make_module_inspector()
{
    return [](const std::string& path) -> base::Result<sys::ModuleFacts> {
        struct stat st {};
        auto info = elf::load_module_file(AT_FDCWD, path, st);
        if (!info)
            return base::make_error(info.error().code == ENOENT ? ENOENT : ENOEXEC,
                                    "'" + path + "': " + info.error().message);
        sys::ModuleFacts facts;
        auto names = info->values("name");
        facts.name = names.empty() ? index::modname_from_path(path) : std::string(names.front());
        facts.size = static_cast<uint64_t>(st.st_size);
        for (const auto& sym : info->exports)
            facts.exports.push_back(sym.name);
        for (const auto& sym : info->imports) {
            if (!sym.is_weak)
                facts.imports.push_back(sym.name);
        }
        return facts;
    };
}

sys::ModuleSymbolPredicate make_module_symbol_predicate(const depmod::ModuleDatabase& database)
{
    return [&database](const std::string& symbol) {
        return database.module_for_symbol(symbol).has_value();
    };
}

std::unique_ptr<sys::Kernel> make_system_kernel()
{
    return sys::make_real_kernel(
        [](std::string_view image) { return elf::decompress(image); }, "/sys", "/proc",
        [](std::string image, sys::ForceFlags force) {
            return elf::strip_for_force(std::move(image), force.vermagic, force.modversions);
        });
}

} // namespace kmodd::loader
