// SPDX-License-Identifier: LGPL-2.1-or-later
// `modinfo`: kmod 30's modinfo, a module's .modinfo, parameters and signature.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/file.hpp"
#include "commands.hpp"
#include "depmod/index_reader.hpp"
#include "elf/module_file.hpp"
#include "elf/module_signature.hpp"
#include "index/names.hpp"
#include "loader/modprobe_config.hpp"
#include "loader/resolver.hpp"
#include "tool_log.hpp"

namespace kmodd::client {

namespace {

using Info = std::vector<std::pair<std::string, std::string>>; // key, value, in order

void help(const std::string& self)
{
    std::printf("Usage:\n"
                "\t%s [options] <modulename|filename> [args]\n"
                "Options:\n"
                "\t-a, --author                Print only 'author'\n"
                "\t-d, --description           Print only 'description'\n"
                "\t-l, --license               Print only 'license'\n"
                "\t-p, --parameters            Print only 'parm'\n"
                "\t-n, --filename              Print only 'filename'\n"
                "\t-0, --null                  Use \\0 instead of \\n\n"
                "\t-m, --modname               Handle argument as module name instead of alias "
                "or filename\n"
                "\t-F, --field=FIELD           Print only provided FIELD\n"
                "\t-k, --set-version=VERSION   Use VERSION instead of `uname -r`\n"
                "\t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules\n"
                "\t-V, --version               Show version\n"
                "\t-h, --help                  Show this help\n",
                self.c_str());
}

/// One parameter as modinfo gathers it from "parm" and "parmtype" entries.
struct Parameter {
    std::string name;
    std::optional<std::string> description;
    std::optional<std::string> type;
};

class ModinfoTool {
public:
    ModinfoTool(ToolLog& log, std::optional<std::string> field, char separator)
        : log_(log), field_(std::move(field)), separator_(separator)
    {
    }

    /// The index and configuration of `module_dir` serve names and aliases; they are read at
    /// the first one (a file given by path needs neither).
    void open(const std::string& module_dir) { module_dir_ = module_dir; }

    /// A module file given by path.
    int show_path(const std::string& path)
    {
        std::string absolute = base::absolute_from_cwd(path);
        return show_file(index::modname_from_path(absolute), absolute);
    }

    /// A name or alias (`name_only`: -m, a module name), each module it resolves to.
    int show_lookup(const std::string& argument, bool name_only)
    {
        std::vector<loader::Module*> modules;
        if (resolver() != nullptr) {
            if (name_only) {
                loader::Module* module = resolver_->module_by_name(argument);
                resolver_->dependencies(*module);
                if (module->path || resolver_->is_builtin(*module))
                    modules.push_back(module);
            } else {
                modules = resolver_->lookup(argument);
            }
        }
        if (modules.empty()) {
            log_.error("Module " + argument + " not found.");
            return 1;
        }
        int status = 0;
        for (loader::Module* module : modules) {
            resolver_->dependencies(*module);
            int result =
                module->path ? show_file(module->name, *module->path) : show_builtin(module->name);
            if (result != 0)
                status = result;
        }
        return status;
    }

private:
    /// The resolver of the module dir, made at the first call; nullptr without an index.
    loader::Resolver* resolver()
    {
        if (resolver_opened_)
            return resolver_.get();
        resolver_opened_ = true;
        index::Diagnostics ignored;
        std::string cmdline;
        if (auto text = base::read_file(AT_FDCWD, "/proc/cmdline"))
            cmdline = std::move(*text);
        config_ = loader::ModprobeConfig::load(loader::ModprobeConfig::default_paths(), module_dir_,
                                               cmdline, ignored);
        if (auto database = depmod::ModuleDatabase::open(module_dir_)) {
            database_ = std::make_unique<depmod::ModuleDatabase>(std::move(*database));
            resolver_ = std::make_unique<loader::Resolver>(*database_, config_);
        }
        return resolver_.get();
    }

    int show_file(const std::string& name, const std::string& path)
    {
        // As kmod: the file's name comes first, before the file is read.
        if (print_header(false, path))
            return 0;
        auto bytes = base::read_file(AT_FDCWD, path);
        if (bytes && elf::detect_compression(*bytes) != elf::Compression::None) {
            bytes = elf::decompress(*bytes);
            if (!bytes) // libkmod's answer to a stream it cannot expand
                bytes = base::make_error(EINVAL, bytes.error().message);
        }
        std::optional<elf::ModuleInfo> parsed;
        if (bytes) {
            auto info = elf::parse_module(*bytes);
            if (!info) {
                // libkmod's answers: EINVAL for fewer than 6 bytes or a broken ELF file,
                // ENOEXEC for anything else that does not start as ELF.
                const bool is_elf = bytes->size() >= 6 && bytes->starts_with("\x7f"
                                                                             "ELF");
                bytes = base::make_error(bytes->size() >= 6 && !is_elf ? ENOEXEC : EINVAL,
                                         info.error().message);
            } else {
                parsed = std::move(*info);
            }
        }
        if (!bytes) {
            log_.error("could not get modinfo from '" + name +
                       "': " + std::strerror(bytes.error().code));
            return 1;
        }
        Info info;
        for (const elf::ModinfoEntry& entry : parsed->modinfo)
            info.emplace_back(entry.key, entry.value);
        if (auto signature = elf::read_signature(*bytes)) {
            info.emplace_back("sig_id", signature->id_type);
            info.emplace_back("signer", signature->signer);
            info.emplace_back("sig_key", elf::signature_hex(signature->key_id));
            info.emplace_back("sig_hashalgo", signature->hash_algo);
            info.emplace_back("signature", elf::signature_hex(signature->signature));
        }
        print(info);
        return 0;
    }

    /// A built-in module: its entries of modules.builtin.modinfo ("name.key=value\0").
    int show_builtin(const std::string& name)
    {
        if (print_header(true, name))
            return 0;
        auto text = base::read_file(AT_FDCWD, module_dir_ + "/modules.builtin.modinfo");
        if (!text)
            return 0; // an older kernel without the file: nothing to say, as kmod
        Info info;
        const std::string prefix = name + ".";
        std::string_view rest = *text;
        while (!rest.empty()) {
            size_t end = rest.find('\0');
            std::string_view record = rest.substr(0, end);
            rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
            if (!record.starts_with(prefix))
                continue;
            record.remove_prefix(prefix.size());
            size_t equals = record.find('=');
            if (equals == std::string_view::npos)
                info.emplace_back(std::string(record), std::string());
            else
                info.emplace_back(std::string(record.substr(0, equals)),
                                  std::string(record.substr(equals + 1)));
        }
        print(info);
        return 0;
    }

    /// The lines before the entries: "filename:", or "name:" and "filename: (builtin)" for a
    /// built-in module. True when that was all to print (-n).
    bool print_header(bool builtin, const std::string& value) const
    {
        if (field_ == "filename") {
            std::printf("%s%c", builtin ? "(builtin)" : value.c_str(), separator_);
            return true;
        }
        if (!field_) {
            std::printf("%-16s%s%c", builtin ? "name:" : "filename:", value.c_str(), separator_);
            if (builtin)
                std::printf("%-16s%s%c", "filename:", "(builtin)", separator_);
        }
        return false;
    }

    void print(const Info& info) const
    {
        std::vector<Parameter> parameters; // in the order of their first entry
        const bool only_parameters = field_ == "parm";
        for (const auto& [key, value] : info) {
            if (field_ && !only_parameters) {
                if (*field_ == key)
                    std::printf("%s%c", value.c_str(), separator_);
                continue;
            }
            if (key == "parm" || key == "parmtype") {
                add_parameter(parameters, key, value);
                continue;
            }
            if (only_parameters)
                continue;
            if (separator_ == '\0') {
                std::printf("%s=%s%c", key.c_str(), value.c_str(), separator_);
                continue;
            }
            // kmod pads to 16 columns; past 15 characters its negative width pads as much.
            const int width = 15 - static_cast<int>(key.size());
            std::printf("%s:%*s%s%c", key.c_str(), width < 0 ? -width : width, "", value.c_str(),
                        separator_);
        }
        if (field_ && !only_parameters)
            return;
        // The last parameter first (kmod prepends to its list).
        if (only_parameters) {
            // -p: without the key, and "name: (type)" without a description.
            for (auto p = parameters.rbegin(); p != parameters.rend(); ++p) {
                if (!p->description)
                    std::printf("%s: (%s)%c", p->name.c_str(), p->type->c_str(), separator_);
                else if (p->type)
                    std::printf("%s:%s (%s)%c", p->name.c_str(), p->description->c_str(),
                                p->type->c_str(), separator_);
                else
                    std::printf("%s:%s%c", p->name.c_str(), p->description->c_str(), separator_);
            }
            return;
        }
        for (auto p = parameters.rbegin(); p != parameters.rend(); ++p) {
            if (!p->description)
                std::printf("%-16s%s:%s%c", "parm:", p->name.c_str(), p->type->c_str(), separator_);
            else if (p->type)
                std::printf("%-16s%s:%s (%s)%c", "parm:", p->name.c_str(), p->description->c_str(),
                            p->type->c_str(), separator_);
            else
                std::printf("%-16s%s:%s%c", "parm:", p->name.c_str(), p->description->c_str(),
                            separator_);
        }
    }

    void add_parameter(std::vector<Parameter>& parameters, const std::string& key,
                       const std::string& value) const
    {
        size_t colon = value.find(':');
        if (colon == std::string::npos) {
            log_.error("Found invalid \"" + key + "=" + value + "\": missing ':'");
            return;
        }
        std::string name = value.substr(0, colon);
        auto it = std::find_if(parameters.begin(), parameters.end(),
                               [&](const Parameter& p) { return p.name == name; });
        if (it == parameters.end())
            it = parameters.insert(parameters.end(), Parameter{name, {}, {}});
        if (key == "parm")
            it->description = value.substr(colon + 1);
        else
            it->type = value.substr(colon + 1);
    }

    ToolLog& log_;
    std::optional<std::string> field_;
    char separator_;
    std::string module_dir_;
    loader::ModprobeConfig config_;
    std::unique_ptr<depmod::ModuleDatabase> database_;
    std::unique_ptr<loader::Resolver> resolver_;
    bool resolver_opened_ = false;
};

} // namespace

int run_modinfo(int argc, char** argv)
{
    static const option kOptions[] = {{"author", no_argument, nullptr, 'a'},
                                      {"description", no_argument, nullptr, 'd'},
                                      {"license", no_argument, nullptr, 'l'},
                                      {"parameters", no_argument, nullptr, 'p'},
                                      {"filename", no_argument, nullptr, 'n'},
                                      {"null", no_argument, nullptr, '0'},
                                      {"modname", no_argument, nullptr, 'm'},
                                      {"field", required_argument, nullptr, 'F'},
                                      {"set-version", required_argument, nullptr, 'k'},
                                      {"basedir", required_argument, nullptr, 'b'},
                                      {"version", no_argument, nullptr, 'V'},
                                      {"help", no_argument, nullptr, 'h'},
                                      {nullptr, 0, nullptr, 0}};
    const std::string self = program_name(argv[0]);
    ToolLog log(self);
    std::optional<std::string> field;
    char separator = '\n';
    bool name_only = false;
    std::string version;
    std::string root;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "adlpn0mF:k:b:Vh", kOptions, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 'a':
            field = "author";
            break;
        case 'd':
            field = "description";
            break;
        case 'l':
            field = "license";
            break;
        case 'p':
            field = "parm";
            break;
        case 'n':
            field = "filename";
            break;
        case '0':
            separator = '\0';
            break;
        case 'm':
            name_only = true;
            break;
        case 'F':
            field = optarg;
            break;
        case 'k':
            version = optarg;
            break;
        case 'b':
            root = optarg;
            break;
        case 'V':
            std::puts("kmodctl " KMODD_VERSION);
            return 0;
        case 'h':
            help(self);
            return 0;
        default:
            return 1;
        }
    }
    if (optind >= argc) {
        log.error("missing module or filename.");
        return 1;
    }
    if (version.empty()) {
        utsname kernel{};
        if (::uname(&kernel) < 0) {
            log.error("uname() failed: " + std::string(std::strerror(errno)));
            return 1;
        }
        version = kernel.release;
    }
    ModinfoTool tool(log, field, separator);
    tool.open(root + "/lib/modules/" + version);
    int status = 0;
    for (int i = optind; i < argc; ++i) {
        const std::string argument = argv[i];
        struct stat st {};
        const bool is_file = !name_only && ::stat(argument.c_str(), &st) == 0 &&
                             S_ISREG(st.st_mode) && index::has_module_extension(argument);
        int result = is_file ? tool.show_path(argument) : tool.show_lookup(argument, name_only);
        if (result != 0)
            status = result;
    }
    return status;
}

} // namespace kmodd::client
