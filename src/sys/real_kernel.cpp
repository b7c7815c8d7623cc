// SPDX-License-Identifier: LGPL-2.1-or-later
// The running kernel: module syscalls, <procfs>/modules and <sysfs>/module/<name>.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "base/file.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "sys/compression.hpp"
#include "sys/kernel.hpp"
#include "sys/kmsg.hpp"
#include "sys/messages.hpp"

namespace kmodd::sys {

namespace {

// finit_module's flags (<linux/module.h>; the last only since Linux 6.4, after Debian 12's
// headers).
constexpr unsigned kModuleInitIgnoreModversions = 1;
constexpr unsigned kModuleInitIgnoreVermagic = 2;
constexpr unsigned kModuleInitCompressedFile = 4;

/// 0 on success, else the errno of finit_module(2).
int finit_module(int fd, const std::string& params, unsigned flags)
{
    if (::syscall(SYS_finit_module, fd, params.c_str(), flags) == 0)
        return 0;
    return errno;
}

/// 0 on success, else the errno of init_module(2).
int init_module(const std::string& image, const std::string& params)
{
    if (::syscall(SYS_init_module, image.data(), image.size(), params.c_str()) == 0)
        return 0;
    return errno;
}

/// Reads up to `size` bytes from offset `offset` of `fd`; fewer only at the end of the file.
base::Result<std::string> read_at(int fd, size_t size, size_t offset)
{
    std::string bytes(size, '\0');
    const ssize_t used = base::read_at(fd, bytes.data(), size, offset);
    if (used < 0)
        return base::errno_error(errno, "read");
    bytes.resize(static_cast<size_t>(used));
    return bytes;
}

/// The whole content of the open file `fd` (its size may change while it is read).
base::Result<std::string> read_all(int fd)
{
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return base::errno_error(errno, "fstat");
    std::string content;
    size_t chunk = st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1 : 65536;
    for (;;) {
        auto piece = read_at(fd, chunk, content.size());
        if (!piece)
            return base::Unexpected(piece.error());
        content += *piece;
        if (piece->size() < chunk)
            return content;
    }
}

/// A name that is one path component, so that it cannot reach outside <sysfs>/module.
bool is_component(std::string_view name)
{
    return !name.empty() && name != "." && name != ".." &&
           name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

template <typename T> std::optional<T> parse_number(std::string_view text)
{
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

/// Parses <procfs>/modules: "name size refcnt holder,holder, state offset [taints]", with
/// "-" for no holders and for the refcount of a kernel without module unloading.
base::Result<std::vector<LoadedModule>> parse_proc_modules(std::string_view text,
                                                           const std::string& path)
{
    std::vector<LoadedModule> modules;
    size_t line_number = 0;
    for (std::string_view line : base::split_lines(text)) {
        ++line_number;
        auto fail = [&](const std::string& what) {
            return base::make_error(EINVAL, base::quoted(path) + " line " +
                                                std::to_string(line_number) + ": " + what);
        };
        std::vector<std::string_view> fields = base::split_tokens(line, " \t");
        if (fields.empty())
            continue;
        if (fields.size() < 5)
            return fail("expected at least 5 fields, found " + std::to_string(fields.size()));
        LoadedModule module;
        module.name = std::string(fields[0]);
        auto size = parse_number<uint64_t>(fields[1]);
        if (!size)
            return fail("size " + base::quoted(fields[1]) + " is not a number");
        module.size = *size;
        if (fields[2] == "-") {
            module.refcount = -1;
        } else if (auto refcount = parse_number<int>(fields[2])) {
            module.refcount = *refcount;
        } else {
            return fail("refcount " + base::quoted(fields[2]) + " is not a number");
        }
        if (fields[3] != "-") {
            for (std::string_view holder : base::split_tokens(fields[3], ",")) {
                // A module with init but no exit function: not a holder, just unremovable.
                if (holder != "[permanent]")
                    module.holders.emplace_back(holder);
            }
            std::sort(module.holders.begin(), module.holders.end());
        }
        if (fields[4] == "Live")
            module.state = ModuleState::Live;
        else if (fields[4] == "Loading")
            module.state = ModuleState::Coming;
        else if (fields[4] == "Unloading")
            module.state = ModuleState::Going;
        else
            return fail("unknown state " + base::quoted(fields[4]));
        modules.push_back(std::move(module));
    }
    return modules;
}

/// The kernel's lines about the last insertion of this thread (RealKernel::insert_messages).
thread_local std::vector<std::string> last_messages;

class RealKernel final : public Kernel {
public:
    RealKernel(Decompressor decompress, std::string sysfs_root, std::string procfs_root,
               ForceStripper strip)
        : decompress_(std::move(decompress)), strip_(std::move(strip)),
          sysfs_root_(std::move(sysfs_root)), procfs_root_(std::move(procfs_root))
    {
        // Absent before Linux 6.4 and without CONFIG_MODULE_DECOMPRESS: then None.
        auto compression = base::read_file(AT_FDCWD, sysfs_root_ + "/module/compression");
        kernel_compression_ =
            compression ? parse_kernel_compression(*compression) : Compression::None;
    }

    base::Result<void> insert_module(const std::string& path, const std::string& params) override
    {
        return insert(path, params, ForceFlags{});
    }

    base::Result<void> insert_module_forcing(const std::string& path, const std::string& params,
                                             ForceFlags force) override
    {
        return insert(path, params, force);
    }

    std::vector<std::string> insert_messages() const override { return last_messages; }

    /// insert_once, keeping the kernel's lines about a refusal (the cursor is placed before the
    /// call). Per thread: two loads on two threads each keep their own lines.
    base::Result<void> insert(const std::string& path, const std::string& params, ForceFlags force)
    {
        KmsgCursor log;
        auto inserted = insert_once(path, params, force);
        // Read only for a refusal: a module that loads may log a lot, and nobody asks.
        last_messages = inserted ? std::vector<std::string>{}
                                 : messages_about_module(log.read(), module_name_from_path(path));
        return inserted;
    }

    base::Result<void> insert_once(const std::string& path, const std::string& params,
                                   ForceFlags force)
    {
        std::string name = module_name_from_path(path);
        std::string context = "cannot insert " + base::quoted(name);
        base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.is_valid())
            return base::errno_error(errno, context + ": " + base::quoted(path));
        auto head = read_at(fd.get(), 6, 0);
        if (!head)
            return base::Unexpected(head.error().with_context(context + ": " + base::quoted(path)));
        Compression compression = detect_compression(*head);
        InsertMethod method = choose_insert_method(compression, kernel_compression_);

        if (method != InsertMethod::Decompress) {
            unsigned flags =
                method == InsertMethod::FinitCompressed ? kModuleInitCompressedFile : 0;
            flags |= force.modversions ? kModuleInitIgnoreModversions : 0;
            flags |= force.vermagic ? kModuleInitIgnoreVermagic : 0;
            int err = finit_module(fd.get(), params, flags);
            if (err == 0)
                return {};
            // ENOSYS: no finit_module (or a filter refusing it), init_module may still work.
            // EINVAL from the in-kernel xz decoder: it rejects xz's default crc64 check, which
            // userspace decoders accept.
            bool retry = err == ENOSYS || (method == InsertMethod::FinitCompressed &&
                                           compression == Compression::Xz && err == EINVAL);
            if (!retry)
                return insert_error(name, err);
        }

        auto image = read_all(fd.get());
        if (!image)
            return base::Unexpected(
                image.error().with_context(context + ": " + base::quoted(path)));
        if (compression != Compression::None) {
            if (!decompress_)
                return base::make_error(EOPNOTSUPP, context + ": the file is compressed and "
                                                              "there is no decompressor");
            auto plain = decompress_(*image);
            if (!plain)
                return base::Unexpected(plain.error().with_context(context));
            *image = std::move(*plain);
        }
        if (force.any() && strip_) {
            // As kmod: an image that cannot be stripped goes as it is; the kernel decides.
            if (auto stripped = strip_(*image, force))
                *image = std::move(*stripped);
        }
        if (int err = init_module(*image, params); err != 0)
            return insert_error(name, err);
        return {};
    }

    base::Result<void> remove_module(const std::string& name) override
    {
        return delete_module(name, O_NONBLOCK);
    }

    base::Result<void> force_remove_module(const std::string& name) override
    {
        return delete_module(name, O_NONBLOCK | O_TRUNC);
    }

    base::Result<void> delete_module(const std::string& name, int flags)
    {
        if (::syscall(SYS_delete_module, name.c_str(), static_cast<unsigned>(flags)) == 0)
            return {};
        int err = errno;
        std::vector<std::string> holders;
        if (err == EWOULDBLOCK)
            holders = read_holders(name).value_or(std::vector<std::string>{});
        return remove_error(name, err, holders);
    }

    KernelFacts facts(const std::string& release, bool with_exports) override
    {
        return read_kernel_facts("/", release, with_exports);
    }

    base::Result<std::vector<LoadedModule>> loaded_modules() const override
    {
        std::string path = procfs_root_ + "/modules";
        auto text = base::read_file(AT_FDCWD, path);
        if (!text)
            return base::Unexpected(text.error());
        auto modules = parse_proc_modules(*text, path);
        if (!modules)
            return modules;
        // /sys is preferred where present; a module that went away after /proc/modules was
        // read keeps what /proc/modules said (kmod#41).
        for (LoadedModule& module : *modules) {
            if (auto holders = read_holders(module.name))
                module.holders = std::move(*holders);
            if (auto refcount = read_refcount(module.name))
                module.refcount = *refcount;
        }
        return modules;
    }

    ModuleState module_state(const std::string& name) const override
    {
        if (!is_component(name))
            return ModuleState::NotLoaded;
        std::string dir = module_dir(name);
        if (auto text = base::read_file(AT_FDCWD, dir + "/initstate")) {
            std::string_view state = base::trim(*text);
            if (state == "live")
                return ModuleState::Live;
            if (state == "going")
                return ModuleState::Going;
            // "coming", and anything a newer kernel may add: present but not known to be live.
            return ModuleState::Coming;
        }
        // A directory without initstate: a module still being set up, or a builtin module
        // (they have /sys/module/<name> for their parameters). The loader tells builtin
        // modules apart by modules.builtin before asking.
        struct stat st {};
        if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
            return ModuleState::Coming;
        return ModuleState::NotLoaded;
    }

    base::Result<LoadedModule> loaded_module(const std::string& name) const override
    {
        auto modules = loaded_modules();
        if (!modules)
            return base::Unexpected(modules.error());
        for (LoadedModule& module : *modules) {
            if (module.name == name)
                return std::move(module);
        }
        return base::make_error(ENOENT, base::quoted(name) + " is not loaded");
    }

private:
    [[nodiscard]] std::string module_dir(const std::string& name) const
    {
        return sysfs_root_ + "/module/" + name;
    }

    /// The entries of <sysfs>/module/<name>/holders/, sorted; nullopt when unreadable.
    [[nodiscard]] std::optional<std::vector<std::string>>
    read_holders(const std::string& name) const
    {
        if (!is_component(name))
            return std::nullopt;
        auto dir_fd = base::open_directory(AT_FDCWD, module_dir(name) + "/holders");
        if (!dir_fd)
            return std::nullopt;
        DIR* dir = ::fdopendir(dir_fd->get());
        if (dir == nullptr)
            return std::nullopt;
        (void)dir_fd->release(); // closedir closes it
        std::vector<std::string> holders;
        while (const dirent* entry = ::readdir(dir)) {
            std::string_view entry_name = entry->d_name;
            if (entry_name != "." && entry_name != "..")
                holders.emplace_back(entry_name);
        }
        ::closedir(dir);
        std::sort(holders.begin(), holders.end());
        return holders;
    }

    /// <sysfs>/module/<name>/refcnt; nullopt when absent or unreadable.
    [[nodiscard]] std::optional<int> read_refcount(const std::string& name) const
    {
        if (!is_component(name))
            return std::nullopt;
        auto text = base::read_file(AT_FDCWD, module_dir(name) + "/refcnt");
        if (!text)
            return std::nullopt;
        return parse_number<int>(base::trim(*text));
    }

    Decompressor decompress_;
    ForceStripper strip_;
    std::string sysfs_root_;
    std::string procfs_root_;
    Compression kernel_compression_ = Compression::None;
};

} // namespace

std::unique_ptr<Kernel> make_real_kernel(Decompressor decompress, std::string sysfs_root,
                                         std::string procfs_root, ForceStripper strip)
{
    return std::make_unique<RealKernel>(std::move(decompress), std::move(sysfs_root),
                                        std::move(procfs_root), std::move(strip));
}

} // namespace kmodd::sys
