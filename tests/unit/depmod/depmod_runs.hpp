// SPDX-License-Identifier: LGPL-2.1-or-later
// What the depmod engine's tests share: running kmod's depmod and ours on a temporary tree,
// comparing the two, and the seed's tree.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "depmod/depmod.hpp"
#include "kmod_oracle.hpp"
#include "temp_tree.hpp"

namespace kmodd::depmod::testing_support {

using test::expect_identical;
using test::read_outputs;
using test::TempTree;
using test::fs::path;

inline const path kFixtures = KMODD_FIXTURE_MODULES;

inline path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

inline std::string join(const index::Diagnostics& diagnostics)
{
    std::string out;
    for (const auto& d : diagnostics)
        out += d.message + "\n";
    return out;
}

inline std::vector<std::string_view> split(std::string_view text)
{
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    }
    return lines;
}

/// kmod's depmod with `options` on a copy of the tree.
inline test::KmodRun run_kmod(const TempTree& tree, const std::string& options = "-C /dev/null")
{
    return test::run_kmod_depmod(tree.root(), tree.version(), options);
}

struct OurRun {
    bool ok = false;
    index::Diagnostics diagnostics;
    std::map<std::string, std::string> files;
};

inline DepmodOptions options_for(const TempTree& tree,
                                 std::vector<std::string> config = {"/dev/null"})
{
    DepmodOptions options;
    options.base_dir = tree.root().string();
    options.kernel_version = tree.version();
    options.format = KmodFormat{test::oracle_kmod_version()};
    options.config_paths = std::move(config);
    options.output_dir = tree.root().string() + "-ours";
    options.durable = false;
    return options;
}

inline OurRun run_ours(const DepmodOptions& options)
{
    OurRun run;
    auto engine = Depmod::create(options, run.diagnostics);
    if (!engine)
        return run;
    if (!(*engine)->scan(run.diagnostics))
        return run;
    run.ok = (*engine)->write(run.diagnostics).has_value();
    run.files = test::read_outputs((*engine)->output_dir());
    test::run_shell("rm -rf '" + options.output_dir + "'");
    return run;
}

/// kmod's depmod (with `kmod_options`) and ours (with `options`) on `tree`: both must succeed
/// and write the same bytes to every file. Both runs are returned for further checks.
struct BothRuns {
    test::KmodRun kmod;
    OurRun ours;
};

inline BothRuns expect_same_as_kmod(const TempTree& tree, const DepmodOptions& options,
                                    const std::string& kmod_options = "-C /dev/null")
{
    BothRuns runs{run_kmod(tree, kmod_options), run_ours(options)};
    EXPECT_EQ(runs.kmod.status, 0) << runs.kmod.output;
    EXPECT_TRUE(runs.ours.ok) << join(runs.ours.diagnostics);
    expect_identical(runs.ours.files, runs.kmod.files);
    return runs;
}

/// The "needs unknown symbol" lines of `text`, from the module dir on (kmod runs on a copy
/// of the tree).
inline std::string unknown_symbol_lines(const std::string& text, const TempTree& tree)
{
    std::string out;
    for (std::string_view line : split(text)) {
        size_t at = line.find("/lib/modules/" + tree.version() + "/");
        if (line.find("needs unknown symbol") != std::string_view::npos &&
            at != std::string_view::npos)
            out += std::string(line.substr(at)) + "\n";
    }
    return out;
}

/// The seed's tree and more: nested dirs, a dashed name, CRC exports, __versions, device
/// nodes, a weak import, modules.order naming a few modules.
inline void populate(const TempTree& tree)
{
    tree.add("kernel/a/mod1.ko", fixture("mod1"));
    tree.add("kernel/a/mod2.ko", fixture("mod2"));
    tree.add("kernel/b/mod3.ko", fixture("mod3"));
    tree.add("kernel/a/mod-dash.ko", fixture("mod_dash"));
    tree.add("kernel/crc_helper.ko", fixture("crc_helper"));
    tree.add("kernel/versioned.ko", fixture("versioned"));
    tree.add("kernel/drivers/blockdev.ko", fixture("blockdev"));
    tree.add("kernel/drivers/devname_only.ko", fixture("devname_only"));
    tree.write("modules.order", "kernel/a/mod2.ko\nkernel/a/mod-dash.ko\nkernel/none.ko\n"
                                "kernel/versioned.ko\n");
}
} // namespace kmodd::depmod::testing_support
