// SPDX-License-Identifier: LGPL-2.1-or-later
// Naming the cause of a load the kernel refused.
#include "service/load_diagnosis.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string_view>

namespace kmodd::service {
namespace {

/// The first problem of `check` whose message contains `words` (all if empty).
const loader::Finding* problem(const std::vector<loader::Finding>& findings, std::string_view check,
                               std::string_view words = {})
{
    auto it = std::find_if(findings.begin(), findings.end(), [&](const loader::Finding& f) {
        return f.severity == loader::Severity::Problem && f.check == check &&
               f.message.find(words) != std::string::npos;
    });
    return it == findings.end() ? nullptr : &*it;
}

Diagnosis from(Failure kind, const loader::Finding* finding, std::string fallback)
{
    if (finding != nullptr)
        return {kind, finding->message, finding->fix};
    return {kind, std::move(fallback), ""};
}

} // namespace

Diagnosis classify_failed_load(int code, const std::vector<loader::Finding>& findings)
{
    switch (code) {
    case EKEYREJECTED:
        return from(Failure::SignatureRejected, problem(findings, "signature"),
                    "the kernel refused the module's signature: it is unsigned or signed with "
                    "a key the kernel does not hold, and the kernel enforces signatures");
    case ENOEXEC:
        if (const auto* vermagic = problem(findings, "vermagic"))
            return from(Failure::VersionMismatch, vermagic, "");
        if (const auto* crc = problem(findings, "symbol", "symbol version"))
            return from(Failure::VersionMismatch, crc, "");
        return {Failure::Failed, "", ""};
    case ENOENT:
        return from(Failure::UnknownSymbol, problem(findings, "symbol"),
                    "the kernel did not find a symbol the module needs (its log names it)");
    case EINVAL:
        if (const auto* parameter = problem(findings, "parameter"))
            return from(Failure::BadParameter, parameter, "");
        return {Failure::Failed, "", ""};
    case EPERM:
        // kernel.modules_disabled; else lockdown, module_blacklist= or a security module.
        return from(Failure::Failed, problem(findings, "kernel"), "");
    default:
        return {Failure::Failed, "", ""};
    }
}

std::vector<std::string> load_warnings(const loader::LoadReport& report, const sys::Kernel& kernel)
{
    std::vector<std::string> warnings;
    for (const loader::ProbeStep& step : report.steps) {
        if (step.kind != loader::ProbeStep::Kind::Insert || step.module == nullptr ||
            !step.module->path)
            continue;
        const std::string& name = step.module->name;
        const bool inserted = std::find(report.inserted.begin(), report.inserted.end(), name) !=
                              report.inserted.end();
        // The kernel answered "exists" for a module that is not loaded by this name: the
        // file's module has another one.
        const bool exists_elsewhere =
            !inserted && kernel.module_state(name) == sys::ModuleState::NotLoaded;
        if (!(inserted && !step.options.empty()) && !exists_elsewhere)
            continue;
        auto module = loader::read_module_image(*step.module->path);
        if (!module)
            continue; // nothing to add to what the load did
        if (exists_elsewhere) {
            if (auto own = loader::declared_name(module->info); own && *own != name)
                warnings.push_back(name + ": nothing was inserted: the file's module is named '" +
                                   *own +
                                   "' (.modinfo name=), which is loaded already; name the file " +
                                   *own + ".ko or unload '" + *own + "' first");
            continue;
        }
        const loader::CheckSubject subject =
            loader::make_subject(name, *step.module->path, *module, step.options);
        for (const loader::Finding& finding : loader::check_parameters(subject)) {
            if (finding.severity == loader::Severity::Warning)
                warnings.push_back(name + ": " + finding.message);
        }
    }
    return warnings;
}

std::string with_kernel_messages(std::string message, const std::vector<std::string>& lines)
{
    if (lines.empty())
        return message;
    constexpr std::string_view kHint = " (see dmesg)";
    if (auto at = message.find(kHint); at != std::string::npos)
        message.erase(at, kHint.size());
    message += ". The kernel said: ";
    for (size_t i = 0; i < lines.size(); ++i)
        message.append(i == 0 ? "\"" : "; \"").append(lines[i]).append("\"");
    return message;
}

namespace {

/// diagnose_failed_load without its timing.
Diagnosis diagnose_untimed(const loader::InsertFailure& failure, const IndexSnapshot& snapshot,
                           sys::Kernel& kernel)
{
    auto module = loader::read_module_image(failure.path);
    if (!module) {
        // A file changed since it was indexed: gone, truncated by a build still writing it, or
        // replaced by something that is no module. Kind Failed, not the errno's: a file that is
        // gone gives ENOENT, which is no unknown symbol.
        if (module.error().code == ENOENT)
            return {Failure::Failed,
                    "the module file '" + failure.path +
                        "' is gone (removed after kmodd indexed it)",
                    "put it back, or load the module again once kmodd has indexed the tree "
                    "without it"};
        return {Failure::Failed,
                "kmodd cannot read the file as a module either (" + module.error().message + ")",
                "rebuild the module; if a build is writing it, load it once the build is done"};
    }
    const loader::CheckSubject subject =
        loader::make_subject(failure.module, failure.path, *module, failure.params);
    const loader::IndexView view = loader::make_index_view(snapshot.database(), snapshot.config(),
                                                           failure.module, failure.path);
    const sys::KernelFacts facts = kernel.facts(snapshot.release(), failure.code == ENOENT);
    return classify_failed_load(failure.code, loader::check_load(subject, facts, view));
}

} // namespace

Diagnosis diagnose_failed_load(const loader::InsertFailure& failure, const IndexSnapshot& snapshot,
                               sys::Kernel& kernel)
{
    const auto started = std::chrono::steady_clock::now();
    Diagnosis diagnosis = diagnose_untimed(failure, snapshot, kernel);
    diagnosis.usec = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count());
    return diagnosis;
}

} // namespace kmodd::service
