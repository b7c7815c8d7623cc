// SPDX-License-Identifier: LGPL-2.1-or-later
// The checks of kmodctl check, each as the kernel makes it when it loads a module.
#include "loader/load_check.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "elf/module_file.hpp"
#include "loader/resolver.hpp"

namespace kmodd::loader {
namespace {

/// kstrto* with `radix` (0: "0x" hex, "0" octal, else decimal) into [min, max].
bool parses_as_integer(std::string_view value, int radix, bool is_signed, long double min,
                       long double max)
{
    if (!value.empty() && value.back() == '\n')
        value.remove_suffix(1); // the kernel takes one trailing newline
    if (value.empty() || value.front() == ' ' || value.front() == '\t')
        return false;
    if (!is_signed && value.front() == '-')
        return false;
    const std::string text(value);
    char* end = nullptr;
    errno = 0;
    long double parsed = 0;
    if (is_signed)
        parsed = static_cast<long double>(std::strtoll(text.c_str(), &end, radix));
    else
        parsed = static_cast<long double>(std::strtoull(text.c_str(), &end, radix));
    return errno == 0 && end == text.c_str() + text.size() && parsed >= min && parsed <= max;
}

bool parses_as_bool(std::string_view value)
{
    // kstrtobool: the first character decides; "on"/"off" take two.
    if (value.empty())
        return false;
    switch (value.front()) {
    case 'y':
    case 'Y':
    case '1':
    case 'n':
    case 'N':
    case '0':
        return true;
    case 'o':
    case 'O':
        return value.size() >= 2 &&
               (value[1] == 'n' || value[1] == 'N' || value[1] == 'f' || value[1] == 'F');
    default:
        return false;
    }
}

/// modinfo's parm ("name:description") and parmtype ("name:type") entries, by name.
struct ParameterDoc {
    std::string type;
    std::string description;
};
std::map<std::string, ParameterDoc, std::less<>> parameters_of(const elf::ModuleInfo& info)
{
    std::map<std::string, ParameterDoc, std::less<>> parameters;
    for (std::string_view entry : info.values("parmtype")) {
        size_t colon = entry.find(':');
        if (colon != std::string_view::npos)
            parameters[std::string(entry.substr(0, colon))].type = entry.substr(colon + 1);
    }
    for (std::string_view entry : info.values("parm")) {
        size_t colon = entry.find(':');
        if (colon != std::string_view::npos)
            parameters[std::string(entry.substr(0, colon))].description = entry.substr(colon + 1);
    }
    return parameters;
}

std::string describe_parameters(const std::map<std::string, ParameterDoc, std::less<>>& all)
{
    if (all.empty())
        return "it has no parameters";
    std::string text = "its parameters: ";
    bool first = true;
    for (const auto& [name, doc] : all) {
        text += (first ? "" : ", ") + name + (doc.type.empty() ? "" : " (" + doc.type + ")");
        first = false;
    }
    return text;
}

/// A name to compare ("a-b" and "a_b" are one module).
std::string normalised(std::string name)
{
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

std::string_view after_release(std::string_view magic)
{
    size_t space = magic.find(' ');
    return space == std::string_view::npos ? std::string_view() : magic.substr(space);
}

void check_kernel(const CheckSubject& subject, const sys::KernelFacts& kernel,
                  const IndexView& index, std::vector<Finding>& out)
{
    if (kernel.modules_disabled.value_or(false))
        out.push_back({"kernel", Severity::Problem,
                       "the kernel loads no more modules (kernel.modules_disabled is 1)",
                       "nothing but a reboot turns kernel.modules_disabled off again"});
    // A renamed file loads under its module's own name.
    if (auto real = declared_name(*subject.info); real && *real != subject.name) {
        std::string message = "the file's module is named " + base::quoted(*real) +
                              " (.modinfo name=): the kernel loads it as " + base::quoted(*real);
        if (kernel.loaded.contains(*real))
            message += ", which is loaded already: nothing would be inserted";
        out.push_back(
            {"state", Severity::Warning, std::move(message),
             "name the file " + *real + ".ko" +
                 (kernel.loaded.contains(*real) ? ", or unload " + base::quoted(*real) + " first"
                                                : std::string())});
    }
    if (kernel.loaded.contains(subject.name))
        out.push_back({"state", Severity::Warning,
                       base::quoted(subject.name) + " is loaded already: a load changes nothing "
                                                    "(insmod fails: File exists)",
                       "unload it first (kmodctl unload " + subject.name + ")"});
    if (index.is_blacklisted)
        out.push_back({"state", Severity::Warning,
                       base::quoted(subject.name) +
                           " is blacklisted in modprobe.d: loading it by "
                           "name works, its aliases (devices) do not load it",
                       "remove the blacklist line if devices should load it"});
}

void check_vermagic(const CheckSubject& subject, const IndexView& index,
                    const sys::KernelFacts& kernel, std::vector<Finding>& out)
{
    auto values = subject.info->values("vermagic");
    if (values.empty()) {
        out.push_back({"vermagic", Severity::Warning,
                       "the module has no vermagic: the kernel loads it only as a forced load "
                       "and taints itself (F)",
                       "build it with kbuild: make -C /lib/modules/" + kernel.release +
                           "/build M=$PWD modules"});
        return;
    }
    const std::string magic(values.front());
    if (index.kernel_vermagic.empty()) {
        out.push_back({"vermagic", Severity::Warning,
                       "the module's vermagic is '" + magic +
                           "'; kmodd cannot tell the "
                           "kernel's (no module of " +
                           kernel.release + " to compare with)",
                       ""});
        return;
    }
    // As the kernel: with symbol CRCs the release part is not compared (the CRCs are).
    const bool has_crcs = std::any_of(subject.info->imports.begin(), subject.info->imports.end(),
                                      [](const elf::ImportedSymbol& s) { return s.crc != 0; });
    const bool same = has_crcs ? after_release(magic) == after_release(index.kernel_vermagic)
                               : magic == index.kernel_vermagic;
    if (same) {
        out.push_back({"vermagic", Severity::Ok, "vermagic '" + magic + "' fits the kernel", ""});
        return;
    }
    out.push_back({"vermagic", Severity::Problem,
                   "version magic differs: the module has '" + magic + "', the kernel " +
                       kernel.release + " wants '" + index.kernel_vermagic +
                       "' (the load fails: Exec format error)",
                   "rebuild it against the headers of " + kernel.release +
                       " (package linux-headers-" + kernel.release + "): make -C /lib/modules/" +
                       kernel.release + "/build M=$PWD modules"});
}

std::string signing_fix(const sys::KernelFacts& kernel)
{
    const std::string sign_file = kernel.sign_file.empty() ? "sign-file" : kernel.sign_file;
    if (!kernel.dkms_key.empty() && !kernel.dkms_cert.empty())
        return "sign it with DKMS's machine owner key: " + sign_file + " sha256 " +
               kernel.dkms_key + " " + kernel.dkms_cert +
               " FILE.ko; the key must be enrolled once: mokutil --import " + kernel.dkms_cert +
               " and a reboot to confirm it";
    return "sign it with a key the kernel trusts (" + sign_file +
           " sha256 KEY CERT FILE.ko, or Ubuntu's kmodsign) and enroll that certificate with "
           "mokutil --import CERT.der and a reboot";
}

void check_signature(const CheckSubject& subject, const sys::KernelFacts& kernel,
                     std::vector<Finding>& out)
{
    const bool knows_enforcement = kernel.sig_enforce.has_value() || !kernel.lockdown.empty();
    const bool is_enforced = kernel.sig_enforce.value_or(false) || kernel.lockdown == "integrity" ||
                             kernel.lockdown == "confidentiality";
    std::string why_enforced = kernel.sig_enforce.value_or(false)
                                   ? "module.sig_enforce=1"
                                   : "the kernel is locked down (" + kernel.lockdown + ")";
    if (!subject.signature) {
        if (is_enforced)
            out.push_back({"signature", Severity::Problem,
                           "the module is unsigned and the kernel loads only signed modules (" +
                               why_enforced +
                               "): the load fails with 'Key was rejected by service'",
                           signing_fix(kernel)});
        else if (knows_enforcement)
            out.push_back({"signature", Severity::Warning,
                           "the module is unsigned: it loads, and the kernel taints itself (E)",
                           signing_fix(kernel)});
        return;
    }
    const std::string& signer = subject.signature->signer;
    const bool is_known = kernel.key_names.has_value() &&
                          std::find(kernel.key_names->begin(), kernel.key_names->end(), signer) !=
                              kernel.key_names->end();
    if (!kernel.key_names) {
        out.push_back({"signature", Severity::Ok,
                       "signed by '" + signer +
                           "'; kmodd cannot see the kernel's keys (/proc/keys; run as root) "
                           "to tell whether it trusts that key",
                       ""});
    } else if (is_known) {
        out.push_back(
            {"signature", Severity::Ok, "signed by '" + signer + "', a key the kernel holds", ""});
    } else if (is_enforced) {
        out.push_back({"signature", Severity::Problem,
                       "signed by '" + signer +
                           "', a key the kernel does not hold, and it loads "
                           "only modules signed by its keys (" +
                           why_enforced + "): the load fails with 'Key was rejected by service'",
                       "enroll the signing certificate: mokutil --import CERT.der and a reboot; "
                       "or " +
                           signing_fix(kernel)});
    } else {
        out.push_back({"signature", Severity::Warning,
                       "signed by '" + signer +
                           "', a key the kernel does not hold: it loads, "
                           "and the kernel taints itself (E)",
                       "enroll the signing certificate: mokutil --import CERT.der"});
    }
}

void check_symbols(const CheckSubject& subject, const sys::KernelFacts& kernel,
                   const IndexView& index, std::vector<Finding>& out)
{
    std::map<std::string, std::vector<std::string>> by_owner;
    std::vector<std::string> missing; ///< exported by nobody
    size_t from_kernel = 0;
    size_t unknown = 0;
    for (const elf::ImportedSymbol& symbol : subject.info->imports) {
        if (symbol.is_weak)
            continue;
        std::optional<std::string> owner =
            index.owner_of_symbol ? index.owner_of_symbol(symbol.name) : std::nullopt;
        if (owner && normalised(*owner) == subject.name)
            continue;
        if (owner) {
            const std::string name = normalised(*owner);
            std::optional<uint64_t> crc =
                index.crc_of ? index.crc_of(name, symbol.name) : std::nullopt;
            if (symbol.crc != 0 && crc && *crc != 0 && *crc != symbol.crc) {
                char text[64];
                std::snprintf(text, sizeof text, "0x%08llx, %s has 0x%08llx",
                              static_cast<unsigned long long>(symbol.crc), name.c_str(),
                              static_cast<unsigned long long>(*crc));
                out.push_back({"symbol", Severity::Problem,
                               "symbol version of '" + symbol.name +
                                   "' differs: the module wants " + text +
                                   " (the load fails: disagrees about version of symbol)",
                               "rebuild it against the " + name + " that " + kernel.release +
                                   " has (its headers or Module.symvers)"});
            }
            if (index.dependencies && !kernel.loaded.contains(name) &&
                std::find(index.dependencies->begin(), index.dependencies->end(), name) ==
                    index.dependencies->end())
                out.push_back({"symbol", Severity::Problem,
                               "'" + symbol.name + "' comes from " + base::quoted(name) +
                                   ", which the module's modules.dep entry does not name: the "
                                   "index is stale and " +
                                   base::quoted(name) + " would not be loaded first",
                               "index again: kmodctl depmod (kmodd does it by itself when it "
                               "runs)"});
            else if (!index.dependencies && !kernel.loaded.contains(name))
                out.push_back({"symbol", Severity::Warning,
                               "'" + symbol.name + "' comes from " + base::quoted(name) +
                                   ", which is not loaded: insmod of this file fails until it is",
                               "load " + base::quoted(name) +
                                   " first, or put the module into the "
                                   "tree and load it by name (dependencies come first)"});
            by_owner[name].push_back(symbol.name);
            continue;
        }
        if (!kernel.exports) {
            ++unknown;
            continue;
        }
        if (kernel.exports->contains(symbol.name)) {
            ++from_kernel;
            continue;
        }
        missing.push_back(symbol.name);
    }
    if (!missing.empty()) {
        // One finding, the names sorted: a module built against other headers misses many.
        std::sort(missing.begin(), missing.end());
        std::string what = missing.size() == 1
                               ? "'" + missing[0] + "'"
                               : std::to_string(missing.size()) + " symbols the module needs: '" +
                                     base::join(missing, "', '") + "'";
        out.push_back({"symbol", Severity::Problem,
                       "no module of " + kernel.release + " and not the kernel exports " + what +
                           " (the load fails: Unknown symbol in module)",
                       "it was built against other headers, or the symbol was renamed or "
                       "removed upstream: rebuild against the headers of " +
                           kernel.release +
                           "; if another out-of-tree module exports it, put that one into the "
                           "tree"});
    }
    std::vector<std::string> parts;
    if (kernel.exports)
        parts.push_back(std::to_string(from_kernel) + " from the kernel");
    for (const auto& [owner, symbols] : by_owner)
        parts.push_back(std::to_string(symbols.size()) + " from " + owner);
    if (!parts.empty())
        out.push_back({"symbol", Severity::Ok, "symbols found: " + base::join(parts, ", "), ""});
    if (unknown > 0)
        out.push_back({"symbol", Severity::Warning,
                       std::to_string(unknown) +
                           " symbol(s) no module exports: kmodd cannot tell "
                           "whether the kernel does (/proc/kallsyms shows no exports)",
                       "run kmodctl check as root on the kernel that will load it"});
}

void append_parameter_findings(const CheckSubject& subject, std::vector<Finding>& out)
{
    const auto parameters = parameters_of(*subject.info);
    for (const auto& [name, value] : subject.params) {
        auto it = parameters.find(name);
        if (it == parameters.end()) {
            out.push_back({"parameter", Severity::Warning,
                           "unknown parameter '" + name +
                               "': the kernel ignores it and loads the "
                               "module all the same (it only logs 'unknown parameter ignored'); " +
                               describe_parameters(parameters),
                           "check the spelling"});
            continue;
        }
        const std::string& type = it->second.type;
        const bool is_flag = type == "bool" || type == "invbool";
        if (!value ? !is_flag : !is_valid_parameter_value(type, *value)) {
            std::string message = value ? "'" + *value + "' is" : "no value is";
            message.append(" not valid for parameter '").append(name).append("' (").append(type);
            message.append("): the load fails with Invalid argument");
            std::string fix = "give a value of type " + type;
            fix.append(": ").append(name).append("=...");
            out.push_back({"parameter", Severity::Problem, std::move(message), std::move(fix)});
            continue;
        }
        std::string given = name;
        if (value)
            given.append("=").append(*value);
        given.append(" (").append(type).append(")");
        out.push_back({"parameter", Severity::Ok, std::move(given), ""});
    }
}

} // namespace

bool is_valid_parameter_value(std::string_view type, std::string_view value)
{
    constexpr std::string_view kArray = "array of ";
    if (type.starts_with(kArray)) {
        type.remove_prefix(kArray.size());
        for (std::string_view element : base::split_tokens(value, ","))
            if (!is_valid_parameter_value(type, element))
                return false;
        return true;
    }
    using Limits32 = std::numeric_limits<int32_t>;
    if (type == "int")
        return parses_as_integer(value, 0, true, Limits32::min(), Limits32::max());
    if (type == "uint")
        return parses_as_integer(value, 0, false, 0, std::numeric_limits<uint32_t>::max());
    if (type == "hexint")
        return parses_as_integer(value, 16, false, 0, std::numeric_limits<uint32_t>::max());
    if (type == "long")
        return parses_as_integer(value, 0, true,
                                 static_cast<long double>(std::numeric_limits<int64_t>::min()),
                                 static_cast<long double>(std::numeric_limits<int64_t>::max()));
    if (type == "ulong")
        return parses_as_integer(value, 0, false, 0,
                                 static_cast<long double>(std::numeric_limits<uint64_t>::max()));
    if (type == "short")
        return parses_as_integer(value, 0, true, std::numeric_limits<int16_t>::min(),
                                 std::numeric_limits<int16_t>::max());
    if (type == "ushort")
        return parses_as_integer(value, 0, false, 0, std::numeric_limits<uint16_t>::max());
    if (type == "byte")
        return parses_as_integer(value, 0, false, 0, std::numeric_limits<uint8_t>::max());
    if (type == "bool" || type == "invbool")
        return parses_as_bool(value);
    return true; // charp, string and types kmodd does not know
}

base::Result<ModuleImage> read_module_image(const std::string& path)
{
    auto bytes = base::read_file(AT_FDCWD, path);
    if (!bytes)
        return base::Unexpected(bytes.error());
    if (elf::detect_compression(*bytes) != elf::Compression::None) {
        bytes = elf::decompress(*bytes);
        if (!bytes)
            return base::Unexpected(bytes.error().with_context(base::quoted(path)));
    }
    auto info = elf::parse_module(*bytes);
    if (!info)
        return base::Unexpected(info.error().with_context(base::quoted(path)));
    return ModuleImage{std::move(*bytes), std::move(*info)};
}

CheckSubject make_subject(const std::string& name, const std::string& path,
                          const ModuleImage& module, std::string_view params)
{
    CheckSubject subject;
    subject.name = name;
    subject.path = path;
    subject.info = &module.info;
    subject.signature = elf::read_signature(module.image);
    subject.params = split_parameters(params);
    return subject;
}

IndexView make_index_view(const depmod::ModuleDatabase& database, const ModprobeConfig& config,
                          const std::string& name, const std::string& path)
{
    auto read_info = [](const std::string& file) -> std::optional<elf::ModuleInfo> {
        struct stat st {};
        auto info = elf::load_module_file(AT_FDCWD, file, st);
        return info ? std::optional<elf::ModuleInfo>(std::move(*info)) : std::nullopt;
    };
    // Shared by the lookups below and the view's crc_of, which outlives this call.
    auto resolver = std::make_shared<Resolver>(database, config);
    IndexView view;
    view.owner_of_symbol = [&database](const std::string& symbol) {
        return database.module_for_symbol(symbol);
    };
    auto owners = std::make_shared<std::map<std::string, std::optional<elf::ModuleInfo>>>();
    view.crc_of = [owners, resolver,
                   read_info](const std::string& owner,
                              const std::string& symbol) -> std::optional<uint64_t> {
        auto [it, is_new] = owners->try_emplace(owner);
        if (is_new) {
            Module* module = resolver->module_by_name(owner);
            resolver->dependencies(*module);
            if (module->path)
                it->second = read_info(*module->path);
        }
        if (!it->second)
            return std::nullopt;
        for (const elf::ExportedSymbol& exported : it->second->exports) {
            if (exported.name == symbol)
                return exported.crc;
        }
        return std::nullopt;
    };
    // Indexed when the index has this very file under the name.
    Module* module = resolver->module_by_name(name);
    const std::vector<Module*>& dependencies = resolver->dependencies(*module);
    struct stat indexed {};
    struct stat given {};
    if (module->path && ::stat(module->path->c_str(), &indexed) == 0 &&
        ::stat(path.c_str(), &given) == 0 && indexed.st_dev == given.st_dev &&
        indexed.st_ino == given.st_ino) {
        std::vector<std::string> names;
        names.reserve(dependencies.size());
        for (const Module* dependency : dependencies)
            names.push_back(dependency->name);
        view.dependencies = std::move(names);
    }
    // The kernel's vermagic: that of one of its own modules, built with it.
    std::string own;
    database.for_each_module([&](std::string_view module_name, std::string_view line) {
        if (own.empty() && line.starts_with("kernel/"))
            own = module_name;
    });
    if (!own.empty()) {
        Module* own_module = resolver->module_by_name(own);
        resolver->dependencies(*own_module);
        auto info = own_module->path ? read_info(*own_module->path) : std::nullopt;
        auto magic = info ? info->values("vermagic") : std::vector<std::string_view>{};
        if (!magic.empty())
            view.kernel_vermagic = std::string(magic.front());
    }
    view.is_blacklisted = config.is_blacklisted(name);
    return view;
}

std::vector<std::pair<std::string, std::optional<std::string>>>
split_parameters(std::string_view params)
{
    std::vector<std::pair<std::string, std::optional<std::string>>> out;
    size_t at = 0;
    auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (at < params.size()) {
        while (at < params.size() && is_space(params[at]))
            ++at;
        if (at >= params.size())
            break;
        std::string token;
        bool in_quotes = false;
        for (; at < params.size() && (in_quotes || !is_space(params[at])); ++at) {
            if (params[at] == '"')
                in_quotes = !in_quotes;
            else
                token += params[at];
        }
        const size_t equals = token.find('=');
        if (equals == std::string::npos)
            out.emplace_back(std::move(token), std::nullopt);
        else
            out.emplace_back(token.substr(0, equals), token.substr(equals + 1));
    }
    return out;
}

std::optional<std::string> declared_name(const elf::ModuleInfo& info)
{
    auto own = info.values("name");
    if (own.empty())
        return std::nullopt;
    return normalised(std::string(own.front()));
}

std::vector<Finding> check_parameters(const CheckSubject& subject)
{
    std::vector<Finding> findings;
    append_parameter_findings(subject, findings);
    return findings;
}

std::vector<Finding> check_load(const CheckSubject& subject, const sys::KernelFacts& kernel,
                                const IndexView& index)
{
    std::vector<Finding> findings;
    check_kernel(subject, kernel, index, findings);
    check_vermagic(subject, index, kernel, findings);
    check_signature(subject, kernel, findings);
    check_symbols(subject, kernel, index, findings);
    append_parameter_findings(subject, findings);
    std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
        return static_cast<int>(a.severity) > static_cast<int>(b.severity);
    });
    return findings;
}

} // namespace kmodd::loader
