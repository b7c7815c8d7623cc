// SPDX-License-Identifier: LGPL-2.1-or-later
// kmod's depmod as the oracle in tests: run on a copy of a temporary tree, its outputs (ten
// from kmod 30, eleven from kmod 33 on) compared with ours.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "temp_tree.hpp"

namespace kmodd::test {

/// Whether `file` has `line` as one of its lines.
inline bool has_line(const fs::path& file, const std::string& line)
{
    std::string text = slurp(file);
    return text.starts_with(line + "\n") || text.find("\n" + line + "\n") != std::string::npos;
}

/// The release of the kmod installed (the oracle): 30 on Debian 12, 34 on Debian 13. Tests
/// give it to our engine as the format to write.
inline unsigned oracle_kmod_version()
{
    static const unsigned version = [] {
        std::string output;
        unsigned major = 0;
        if (run_shell("kmod --version", &output) == 0)
            std::sscanf(output.c_str(), "kmod version %u", &major);
        return major;
    }();
    EXPECT_NE(version, 0U) << "kmod --version did not say which release it is";
    return version;
}

/// The number of files the oracle writes.
inline size_t oracle_output_count()
{
    return oracle_kmod_version() >= 33 ? 11 : 10;
}

/// The outputs in `module_dir`, by name (missing ones left out).
inline std::map<std::string, std::string> read_outputs(const fs::path& module_dir)
{
    std::map<std::string, std::string> files;
    for (const auto& name : depmod_output_names()) {
        if (fs::exists(module_dir / name))
            files[name] = slurp(module_dir / name);
    }
    return files;
}

/// What kmod's depmod did: its exit status, its output (stdout and stderr) and its files.
struct KmodRun {
    int status = 0;
    std::string output;
    std::map<std::string, std::string> files;
};

/// kmod's depmod with `options` on a copy of `root` (so ours can run on the pristine tree),
/// for `version`.
inline KmodRun run_kmod_depmod(const fs::path& root, const std::string& version,
                               const std::string& options = "-C /dev/null")
{
    KmodRun run;
    fs::path copy = root.string() + "-kmod";
    run_shell("rm -rf '" + copy.string() + "' && cp -a '" + root.string() + "' '" + copy.string() +
              "'");
    run.status = run_shell("/usr/sbin/depmod " + options + " -b '" + copy.string() + "' " + version,
                           &run.output);
    run.files = read_outputs(copy / "lib/modules" / version);
    run_shell("rm -rf '" + copy.string() + "'");
    return run;
}

/// kmod's depmod (-C /dev/null) on a copy of `root`, for `version`: its outputs.
inline std::map<std::string, std::string> run_kmod(const fs::path& root, const std::string& version)
{
    KmodRun run = run_kmod_depmod(root, version);
    EXPECT_EQ(run.status, 0) << run.output;
    return run.files;
}

/// `ours` has every file kmod wrote (all of them) and no other, with the same bytes.
inline void expect_identical(const std::map<std::string, std::string>& ours,
                             const std::map<std::string, std::string>& kmod)
{
    ASSERT_EQ(kmod.size(), oracle_output_count()) << "kmod's depmod did not write all its files";
    EXPECT_EQ(ours.size(), kmod.size()) << "we wrote a different set of files";
    for (const auto& [name, content] : kmod) {
        auto it = ours.find(name);
        ASSERT_NE(it, ours.end()) << name << " was not written";
        EXPECT_EQ(it->second, content) << name << " differs from kmod's";
    }
}

/// Our outputs in <root>/lib/modules/<version> equal kmod's for the same tree.
inline void expect_same_as_kmod(const fs::path& root, const std::string& version)
{
    expect_identical(read_outputs(root / "lib/modules" / version), run_kmod(root, version));
}

} // namespace kmodd::test
