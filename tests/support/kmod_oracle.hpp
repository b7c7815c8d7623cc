// SPDX-License-Identifier: LGPL-2.1-or-later
// kmod's depmod as the oracle in tests: run on a copy of a temporary tree, its ten outputs
// compared with ours.
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

/// The ten outputs in `module_dir`, by name (missing ones left out).
inline std::map<std::string, std::string> read_outputs(const fs::path& module_dir)
{
    std::map<std::string, std::string> files;
    for (const auto& name : depmod_output_names()) {
        if (fs::exists(module_dir / name))
            files[name] = slurp(module_dir / name);
    }
    return files;
}

/// kmod's depmod (-C /dev/null) on a copy of `root`, for `version`: its ten outputs.
inline std::map<std::string, std::string> run_kmod(const fs::path& root, const std::string& version)
{
    fs::path copy = root.string() + "-kmod";
    run_shell("rm -rf '" + copy.string() + "' && cp -a '" + root.string() + "' '" + copy.string() +
              "'");
    std::string output;
    int status =
        run_shell("/usr/sbin/depmod -C /dev/null -b '" + copy.string() + "' " + version, &output);
    EXPECT_EQ(status, 0) << output;
    auto files = read_outputs(copy / "lib/modules" / version);
    run_shell("rm -rf '" + copy.string() + "'");
    return files;
}

/// Our ten outputs in <root>/lib/modules/<version> equal kmod's for the same tree.
inline void expect_same_as_kmod(const fs::path& root, const std::string& version)
{
    auto kmod = run_kmod(root, version);
    auto ours = read_outputs(root / "lib/modules" / version);
    ASSERT_EQ(kmod.size(), 10U) << "kmod's depmod did not write its ten files";
    for (const auto& [name, content] : kmod) {
        auto it = ours.find(name);
        ASSERT_NE(it, ours.end()) << name << " was not written";
        EXPECT_EQ(it->second, content) << name << " differs from kmod's";
    }
}

} // namespace kmodd::test
