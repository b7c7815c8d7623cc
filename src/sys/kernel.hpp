// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel seam: inserting and removing modules and reading their state, real or sandbox.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "sys/kernel_facts.hpp"

namespace kmodd::sys {

/// What /proc/modules and /sys/module/<name>/initstate say about a module.
enum class ModuleState { NotLoaded, Coming, Live, Going };

/// One line of /proc/modules, completed from /sys/module/<name>.
struct LoadedModule {
    std::string name;
    uint64_t size = 0;                ///< bytes, /proc/modules column 2
    int refcount = 0;                 ///< /sys/module/<m>/refcnt, else /proc/modules column 3
                                      ///< (-1 when unknown: kernel without module unloading)
    std::vector<std::string> holders; ///< /sys/module/<m>/holders/, else /proc/modules column 4
                                      ///< (without "[permanent]"), sorted
    ModuleState state = ModuleState::Live; ///< /proc/modules column 5 (Live/Loading/Unloading)
    std::string params; ///< the parameter string it was loaded with: sandbox only, always
                        ///< empty on the real kernel
};

/// The checks a forced insertion asks the kernel to skip (insmod -f, modprobe --force,
/// --force-vermagic, --force-modversion). The kernel skips them only when built with
/// CONFIG_MODULE_FORCE_LOAD, and taints itself; otherwise the insertion fails with ENOEXEC.
struct ForceFlags {
    bool vermagic = false;    ///< the module's vermagic string
    bool modversions = false; ///< the CRCs of the symbols it imports (__versions)

    [[nodiscard]] bool any() const { return vermagic || modversions; }
};

/// The kernel's module interface. Errors keep the kernel's errno in Error::code and say in the
/// message which module and what happened. Module names are the kernel's (underscores, not
/// dashes); nothing here normalizes them. Implementations are safe to call from several
/// threads.
class Kernel {
public:
    virtual ~Kernel() = default;

    /// Loads the module file at `path` (.ko or compressed) with parameter string `params`.
    /// Errors: the errno of open/read for the file; EEXIST: a module of that name is loaded;
    /// ENOENT: unknown symbol or unknown parameter; ENOEXEC: invalid module format (also an
    /// exported symbol that a loaded module already exports); EKEYREJECTED: signature
    /// rejected; EPERM: not permitted (no CAP_SYS_MODULE, kernel.modules_disabled,
    /// module_blacklist=, lockdown); EBUSY: that name is being loaded or unloaded; ENOSYS: no
    /// module support; the decompressor's error for a compressed file it cannot expand.
    [[nodiscard]] virtual base::Result<void> insert_module(const std::string& path,
                                                           const std::string& params) = 0;
    /// What the kernel says about loading modules (signature enforcement, its keys and
    /// exports...) for predicting or explaining a load, `release` its release; its exported
    /// symbols only `with_exports` (/proc/kallsyms is the costly part). By default only the
    /// loaded modules are known.
    [[nodiscard]] virtual KernelFacts facts(const std::string& release, bool with_exports);
    /// The kernel's log lines about the last insertion (insert_module or
    /// insert_module_forcing) on this thread when it failed: on the real kernel, the /dev/kmsg
    /// messages written while it ran that name the module or no other driver
    /// (sys::messages_about_module), e.g. "dev_a: unknown parameter 'x' ignored". Empty when the
    /// log cannot be read, and by default.
    [[nodiscard]] virtual std::vector<std::string> insert_messages() const { return {}; }
    /// Unloads `name` without waiting (O_NONBLOCK). Errors: ENOENT: not loaded; EWOULDBLOCK
    /// (== EAGAIN): in use, by other modules (named in the message) or by other references;
    /// EBUSY: not live (still coming or already going) or cannot be unloaded (no exit
    /// function); EPERM: not permitted.
    [[nodiscard]] virtual base::Result<void> remove_module(const std::string& name) = 0;
    /// insert_module, asking the kernel to skip the checks `force` names: finit_module's
    /// MODULE_INIT_IGNORE_* flags, or for init_module an image stripped of what would be
    /// checked. A kernel that cannot be asked (the sandbox, which checks neither) inserts as
    /// insert_module does. Errors: those of insert_module.
    [[nodiscard]] virtual base::Result<void>
    insert_module_forcing(const std::string& path, const std::string& params, ForceFlags force)
    {
        (void)force;
        return insert_module(path, params);
    }
    /// rmmod -f: unloads `name` even while it is in use (O_NONBLOCK|O_TRUNC), which only a
    /// kernel built with CONFIG_MODULE_FORCE_UNLOAD honours; any other kernel (Debian's, and
    /// this default) answers as remove_module. Errors: those of remove_module.
    [[nodiscard]] virtual base::Result<void> force_remove_module(const std::string& name)
    {
        return remove_module(name);
    }
    /// Every loaded module, in /proc/modules order (most recently loaded first).
    [[nodiscard]] virtual base::Result<std::vector<LoadedModule>> loaded_modules() const = 0;
    /// One module's state; NotLoaded when the kernel does not know it. On the real kernel a
    /// /sys/module/<name> directory without initstate reads as Coming: that is also what a
    /// builtin module looks like, so callers must tell builtin modules apart first
    /// (modules.builtin), as libkmod does.
    [[nodiscard]] virtual ModuleState module_state(const std::string& name) const = 0;
    /// One module's entry (ENOENT when not loaded).
    [[nodiscard]] virtual base::Result<LoadedModule>
    loaded_module(const std::string& name) const = 0;
};

/// Turns a compressed module image into the plain ELF image (the ELF layer's decompress(),
/// injected: sys/ sits below it).
using Decompressor = std::function<base::Result<std::string>(std::string_view image)>;

/// Changes a plain ELF image so that the kernel skips the checks `force` names, for
/// init_module, which takes no flags (the ELF layer's strip_for_force, injected).
using ForceStripper = std::function<base::Result<std::string>(std::string image, ForceFlags force)>;

/// The running kernel: finit_module for plain files, and with MODULE_INIT_COMPRESSED_FILE
/// when <sysfs>/module/compression (read once, here) names the file's compression (told by
/// its magic: zstd, xz, gzip); otherwise (or on ENOSYS, or EINVAL from the in-kernel xz
/// decoder) `decompress` in userspace and init_module; delete_module(O_NONBLOCK); state from
/// <procfs>/modules and <sysfs>/module. The roots exist for tests. `decompress` may be empty:
/// a compressed file the kernel cannot take itself then fails with EOPNOTSUPP. A forced
/// insertion by init_module goes through `strip` (when empty, or when it fails, the image is
/// given as it is, as kmod does, and the kernel decides).
[[nodiscard]] std::unique_ptr<Kernel> make_real_kernel(Decompressor decompress,
                                                       std::string sysfs_root = "/sys",
                                                       std::string procfs_root = "/proc",
                                                       ForceStripper strip = {});

/// What the sandbox kernel needs to know of a module file; the caller parses it (the sandbox
/// lives below the ELF reader in the layering).
struct ModuleFacts {
    std::string name;                 ///< the module's name as the kernel would see it
    uint64_t size = 0;                ///< reported as its size
    std::vector<std::string> exports; ///< symbols it exports
    std::vector<std::string> imports; ///< symbols it needs (weak ones left out)
};
using ModuleInspector = std::function<base::Result<ModuleFacts>(const std::string& path)>;

/// Which symbols only modules provide: an import of such a symbol that no loaded module
/// exports is refused, as the kernel refuses it ("Unknown symbol"). Any other symbol counts
/// as exported by the kernel image itself.
using ModuleSymbolPredicate = std::function<bool(const std::string& symbol)>;

/// The file in the sandbox's state directory that holds its state (JSON).
inline constexpr const char* kSandboxStateFile = "sandbox-kernel.json";

/// A simulated kernel whose state lives in <state_dir>/sandbox-kernel.json (the directory is
/// created if needed). Like the real kernel's, the state is shared: every call reads the file
/// as it is now, and a change is made under an flock of the directory and replaced
/// atomically, so processes on one directory (kmodd and kmodctl, a modprobe an install
/// command runs and its parent) see each other's loads, and the state survives restarts.
/// Like the kernel, it refuses a module already loaded (EEXIST), a module with an unknown symbol
/// (ENOENT: "cannot insert 'mod2': unknown symbol mod1_fn"), a module exporting a symbol a loaded
/// module exports (ENOEXEC), removing a module not loaded (ENOENT) or one with holders
/// (EWOULDBLOCK, as delete_module: "'mod1' is in use by: mod2"); it keeps refcounts and holders as
/// the kernel does for symbol users (a module holds each distinct module it imports from once) and
/// records each module's parameter string. It cannot check parameter names. Errors of `inspect` are
/// returned with the path as context. An empty `is_module_symbol` counts every symbol no loaded
/// module exports as the kernel image's. Errors: the errno of a state directory that cannot be
/// created or opened or a state file that cannot be read; EINVAL for a state file that is not JSON
/// or not a state the kernel could be in (the message names the file and the problem), and for an
/// empty `inspect`.
[[nodiscard]] base::Result<std::unique_ptr<Kernel>>
make_sandbox_kernel(const std::string& state_dir, ModuleInspector inspect,
                    ModuleSymbolPredicate is_module_symbol);

} // namespace kmodd::sys
