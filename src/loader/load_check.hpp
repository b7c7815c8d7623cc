// SPDX-License-Identifier: LGPL-2.1-or-later
// Predicting a load without touching the kernel: the module's vermagic, signature,
// undefined symbols and parameters against the running kernel's facts and the index.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "depmod/index_reader.hpp"
#include "elf/module_info.hpp"
#include "elf/module_signature.hpp"
#include "loader/modprobe_config.hpp"
#include "sys/kernel_facts.hpp"

namespace kmodd::loader {

/// How a finding bears on the load.
enum class Severity {
    Ok,      ///< a fact that allows the load
    Warning, ///< the load succeeds, but not as the user may expect (taint, ignored parameter)
    Problem, ///< the kernel refuses the load
};

/// One fact about the load: which check ("vermagic", "signature", "symbol", "parameter",
/// "kernel", "state"), how it bears, a sentence, and for a problem or warning the fix.
struct Finding {
    std::string check;
    Severity severity = Severity::Ok;
    std::string message;
    std::string fix;
};

/// The module to check.
struct CheckSubject {
    std::string name;                            ///< module name (underscores)
    std::string path;                            ///< its file
    const elf::ModuleInfo* info = nullptr;       ///< parsed from the file
    std::optional<elf::SignatureInfo> signature; ///< appended signature, if any
    /// The parameters to load with: name and value (nullopt: given without '=').
    std::vector<std::pair<std::string, std::optional<std::string>>> params;
};

/// What the module index of the release knows about the module's surroundings.
struct IndexView {
    /// The module that exports `symbol` (modules.symbols), if any.
    std::function<std::optional<std::string>(const std::string& symbol)> owner_of_symbol;
    /// The CRC with which `module` exports `symbol` (0: none, nullopt: cannot tell).
    std::function<std::optional<uint64_t>(const std::string& module, const std::string& symbol)>
        crc_of;
    /// The module's own dependencies in modules.dep (names), when it is indexed.
    std::optional<std::vector<std::string>> dependencies;
    /// The vermagic of the release's own modules ("" unknown).
    std::string kernel_vermagic;
    bool is_blacklisted = false;
};

/// A module file as check_load reads it: the image (decompressed) and what it says.
struct ModuleImage {
    std::string image;
    elf::ModuleInfo info;
};

/// Reads, decompresses and parses the module file at `path`. Errors: the read's, the
/// decompressor's or the parser's, naming the path.
[[nodiscard]] base::Result<ModuleImage> read_module_image(const std::string& path);

/// A subject for check_load from a module read with read_module_image (which must outlive
/// it), the parameters split from the kernel's parameter string `params`.
[[nodiscard]] CheckSubject make_subject(const std::string& name, const std::string& path,
                                        const ModuleImage& module, std::string_view params = {});

/// The IndexView of `database` for the module `name` whose file is `path`: symbol owners
/// from modules.symbols, their CRCs read from their files when asked (each file once), the
/// module's modules.dep dependencies when the index has this very file under `name`, and the
/// vermagic of one of the release's own modules (kernel/...); `config` says whether `name`
/// is blacklisted. Module files and dependencies are found as the Resolver finds them.
/// `database` and `config` must outlive the view.
[[nodiscard]] IndexView make_index_view(const depmod::ModuleDatabase& database,
                                        const ModprobeConfig& config, const std::string& name,
                                        const std::string& path);

/// The parameter string the kernel parses ("a=1 b=\"x y\" flag") as names and values
/// (nullopt: a name without '='), quotes removed, as the kernel's next_arg splits it.
[[nodiscard]] std::vector<std::pair<std::string, std::optional<std::string>>>
split_parameters(std::string_view params);

/// Every fact bearing on loading `subject` into the kernel of `kernel`, problems first.
[[nodiscard]] std::vector<Finding>
check_load(const CheckSubject& subject, const sys::KernelFacts& kernel, const IndexView& index);

/// The name the kernel gives the module of `info`: its .modinfo name= (modpost writes
/// KBUILD_MODNAME), normalised; nullopt when the file has none. A renamed file keeps it.
[[nodiscard]] std::optional<std::string> declared_name(const elf::ModuleInfo& info);

/// Only the parameter findings of check_load: each of `subject.params` against the module's
/// parameters (an unknown one is a Warning, a value the kernel refuses a Problem).
[[nodiscard]] std::vector<Finding> check_parameters(const CheckSubject& subject);

/// Whether `value` is a value the kernel accepts for a parameter of `type` (modinfo's
/// parmtype: int, uint, long, ulong, short, ushort, byte, hexint, bool, invbool, charp,
/// string, "array of T"). Unknown types accept anything.
[[nodiscard]] bool is_valid_parameter_value(std::string_view type, std::string_view value);

} // namespace kmodd::loader
