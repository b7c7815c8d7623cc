// SPDX-License-Identifier: LGPL-2.1-or-later
// The kernel's errnos for module calls turned into one sentence each.
#include "sys/messages.hpp"

#include <cerrno>
#include <cstring>

#include "base/strings.hpp"

namespace kmodd::sys {

namespace {

bool remove_suffix(std::string_view& text, std::string_view suffix)
{
    if (text.size() <= suffix.size() || text.substr(text.size() - suffix.size()) != suffix)
        return false;
    text.remove_suffix(suffix.size());
    return true;
}

std::string insert_reason(int code)
{
    switch (code) {
    case ENOENT:
        // The kernel uses ENOENT for both and says which in the kernel log (modprobe's words).
        return "Unknown symbol in module, or unknown parameter (see dmesg)";
    case EEXIST:
        return "already loaded";
    case ENOEXEC:
        return "invalid module format (see dmesg)";
    case EKEYREJECTED:
        // A signature that does not verify is refused even when signatures are not enforced
        // (Linux's module_sig_check): the usual case is a signed file changed afterwards.
        return "signature rejected: it does not match the file (changed after signing?), or "
               "the module is unsigned or signed with an unknown key while signatures are "
               "enforced (see dmesg)";
    case EPERM:
        return "operation not permitted (loading needs CAP_SYS_MODULE and is refused when "
               "kernel.modules_disabled=1, the module is in module_blacklist= or the kernel is "
               "locked down)";
    case EINVAL:
        return "invalid parameters or module image (see dmesg)";
    case EBUSY:
        return "a module of that name is being loaded or unloaded";
    case ETXTBSY:
        return "the file is open for writing";
    case ENOSYS:
        return "the kernel does not support loadable modules";
    default:
        return std::strerror(code);
    }
}

} // namespace

std::string module_name_from_path(std::string_view path)
{
    if (size_t slash = path.rfind('/'); slash != std::string_view::npos)
        path.remove_prefix(slash + 1);
    std::string_view name = path;
    for (std::string_view suffix : {".xz", ".zst", ".gz"}) {
        if (remove_suffix(name, suffix))
            break;
    }
    if (!remove_suffix(name, ".ko"))
        return std::string(path);
    return std::string(name);
}

base::Unexpected insert_error(const std::string& module, int code)
{
    return base::make_error(code,
                            "cannot insert " + base::quoted(module) + ": " + insert_reason(code));
}

base::Unexpected remove_error(const std::string& module, int code,
                              const std::vector<std::string>& holders)
{
    std::string name = base::quoted(module);
    switch (code) {
    case ENOENT:
        return base::make_error(code, name + " is not loaded");
    case EWOULDBLOCK:
        if (!holders.empty())
            return base::make_error(code, name + " is in use by: " + base::join(holders, ", "));
        return base::make_error(code, name + " is in use");
    case EBUSY:
        return base::make_error(code, "cannot remove " + name +
                                          ": it is still loading or already unloading, or it "
                                          "has no exit function");
    case EPERM:
        return base::make_error(code, "cannot remove " + name +
                                          ": operation not permitted (unloading needs "
                                          "CAP_SYS_MODULE and is refused when "
                                          "kernel.modules_disabled=1)");
    case ENOSYS:
        return base::make_error(code, "cannot remove " + name +
                                          ": the kernel does not support loadable modules");
    default:
        return base::make_error(code, "cannot remove " + name + ": " + std::strerror(code));
    }
}

} // namespace kmodd::sys
