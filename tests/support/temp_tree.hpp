// SPDX-License-Identifier: LGPL-2.1-or-later
// A module tree in a temporary directory, for tests: <root>/lib/modules/<version>/...
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kmodd::test {

namespace fs = std::filesystem;

/// Reads a whole file; empty string when it does not exist.
inline std::string slurp(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

/// `path` in single quotes, for a shell command line (test paths hold no quote).
inline std::string shell_quoted(const fs::path& path)
{
    return "'" + path.string() + "'";
}

/// Runs a shell command; returns its exit status and, through `output`, stdout+stderr.
inline int run_shell(const std::string& command, std::string* output = nullptr)
{
    std::string full = "(" + command + ") 2>&1";
    FILE* pipe = ::popen(full.c_str(), "r");
    if (pipe == nullptr)
        return -1;
    std::string text;
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
        text.append(buf, n);
    int status = ::pclose(pipe);
    if (output != nullptr)
        *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class TempTree {
public:
    explicit TempTree(std::string version = "1.0.0-test") : version_(std::move(version))
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-tree-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        root_ = pattern;
        fs::create_directories(module_dir());
    }
    TempTree(const TempTree&) = delete;
    TempTree& operator=(const TempTree&) = delete;
    ~TempTree()
    {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    [[nodiscard]] const fs::path& root() const { return root_; }
    [[nodiscard]] const std::string& version() const { return version_; }
    [[nodiscard]] fs::path module_dir() const { return root_ / "lib/modules" / version_; }

    /// Copies a fixture module to <module dir>/<rel>.
    void add(const std::string& rel, const fs::path& fixture) const
    {
        fs::path to = module_dir() / rel;
        fs::create_directories(to.parent_path());
        fs::copy_file(fixture, to, fs::copy_options::overwrite_existing);
    }
    /// Creates <module dir>/<rel> as a symlink to `target` (relative or absolute).
    void link(const std::string& rel, const fs::path& target) const
    {
        fs::path at = module_dir() / rel;
        fs::create_directories(at.parent_path());
        fs::remove(at);
        fs::create_symlink(target, at);
    }
    /// Writes a file anywhere under the root (`rel` relative to the module dir unless it
    /// starts with '/', then relative to the root).
    void write(const std::string& rel, const std::string& content) const
    {
        fs::path at = rel.starts_with('/') ? root_ / rel.substr(1) : module_dir() / rel;
        fs::create_directories(at.parent_path());
        std::ofstream(at, std::ios::binary) << content;
    }
    [[nodiscard]] std::string read(const std::string& rel) const
    {
        return slurp(module_dir() / rel);
    }

private:
    fs::path root_;
    std::string version_;
};

/// The files kmod's depmod writes, in its order (modules.weakdep from kmod 33 on).
inline const std::vector<std::string>& depmod_output_names()
{
    static const std::vector<std::string> names = {
        "modules.dep",         "modules.dep.bin",
        "modules.alias",       "modules.alias.bin",
        "modules.softdep",     "modules.weakdep",
        "modules.symbols",     "modules.symbols.bin",
        "modules.builtin.bin", "modules.builtin.alias.bin",
        "modules.devname"};
    return names;
}

} // namespace kmodd::test
