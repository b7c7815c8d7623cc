// SPDX-License-Identifier: LGPL-2.1-or-later
// Dependency cycles: reported as kmod reports them (lines, order and starting modules), and
// nothing written.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "depmod_runs.hpp"

namespace kmodd::depmod {
namespace {

using namespace testing_support;

TEST(DepmodCycles, ACycleIsReportedWholeAndNothingIsWritten)
{
    TempTree tree;
    populate(tree);
    tree.add("kernel/cycle/cycle_a.ko", fixture("cycle_a"));
    tree.add("kernel/cycle/cycle_b.ko", fixture("cycle_b"));
    tree.add("kernel/cycle/cycle_c.ko", fixture("cycle_c"));
    auto options = options_for(tree);
    options.output_dir.clear();
    tree.write("modules.dep", "previous\n");
    OurRun ours = run_ours(options);
    EXPECT_FALSE(ours.ok);
    std::string said = join(ours.diagnostics);
    EXPECT_NE(said.find("Cycle detected: cycle_a -> cycle_b -> cycle_c -> cycle_a"),
              std::string::npos)
        << said;
    EXPECT_NE(said.find("Found 3 modules in dependency cycles!"), std::string::npos) << said;
    EXPECT_EQ(tree.read("modules.dep"), "previous\n");
    EXPECT_FALSE(test::fs::exists(tree.module_dir() / "modules.alias"));
    auto kmod = run_kmod(tree);
    EXPECT_NE(kmod.status, 0);
}

/// The lines of `text` that report cycles, without kmod's "depmod: ERROR: " prefix.
std::vector<std::string> cycle_lines(const std::string& text)
{
    std::vector<std::string> lines;
    for (std::string_view line : split(text)) {
        size_t at = line.find("Cycle detected: ");
        if (at == std::string_view::npos)
            at = line.find("Found ");
        if (at != std::string_view::npos && line.find("cycles!") != std::string_view::npos)
            lines.emplace_back(line.substr(at));
        else if (at != std::string_view::npos && line.substr(at).starts_with("Cycle"))
            lines.emplace_back(line.substr(at));
    }
    return lines;
}

/// Compiles a module to <module dir>/`rel` that exports `exported` and calls every symbol of
/// `imported`, as the fixtures are built (gcc -c, no kernel headers). False if gcc fails.
bool compile_module(const TempTree& tree, const std::string& rel, const std::string& exported,
                    const std::vector<std::string>& imported)
{
    std::string code = "__attribute__((section(\"__ksymtab_strings\"), used, aligned(1))) "
                       "static const char ks[] = \"" +
                       exported + "\";\n";
    std::string body;
    for (const std::string& symbol : imported) {
        code += "extern void " + symbol + "(void);\n";
        body += symbol + "(); ";
    }
    code += "void " + exported + "(void) { " + body + "}\n";
    const path ko = tree.module_dir() / rel;
    const path c_file = ko.string() + ".c";
    test::fs::create_directories(ko.parent_path());
    std::ofstream(c_file) << code;
    bool ok = test::run_shell("cc -c -O1 -fno-asynchronous-unwind-tables -o '" + ko.string() +
                              "' '" + c_file.string() + "'") == 0;
    test::fs::remove(c_file);
    return ok;
}

TEST(DepmodCycles, CyclesSharingModulesAreReportedAsKmodReportsThem)
{
    // kmod's own test case (testsuite/test-depmod detect-loop): d <-> e, a -> b -> c -> a (with
    // f and g below a and b), and h, i, j, k holding two cycles, i -> j -> k -> h -> i and
    // i -> j -> h -> i. kmod reports every path back to the module its search started from.
    TempTree tree;
    const std::map<char, std::string> imports = {{'a', "BFG"}, {'b', "CFG"}, {'c', "A"}, {'d', "E"},
                                                 {'e', "D"},   {'f', ""},    {'g', ""},  {'h', "I"},
                                                 {'i', "J"},   {'j', "HK"},  {'k', "H"}};
    for (const auto& [name, needs] : imports) {
        std::vector<std::string> imported;
        for (char need : needs)
            imported.push_back(std::string("print") + need);
        const std::string upper(1, static_cast<char>(name - 'a' + 'A'));
        ASSERT_TRUE(compile_module(tree, std::string("kernel/loop/mod-loop-") + name + ".ko",
                                   "print" + upper, imported));
    }

    auto kmod = run_kmod(tree);
    EXPECT_NE(kmod.status, 0);
    auto options = options_for(tree);
    OurRun ours = run_ours(options);
    EXPECT_FALSE(ours.ok);
    const std::string said = join(ours.diagnostics);
    const std::vector<std::string> expected = cycle_lines(kmod.output);
    ASSERT_EQ(expected.size(), 5U) << "kmod reports four cycles and a count:\n" << kmod.output;
    EXPECT_EQ(cycle_lines(said), expected) << said << "\n---\n" << kmod.output;
    EXPECT_EQ(said.find("modules.builtin"), std::string::npos)
        << "kmod stops before it reads the builtin files:\n"
        << said;
}

TEST(DepmodCycles, AModuleBetweenTwoCyclesEndsTheSearch)
{
    // a <-> b use r, and r uses c <-> d: walking from r circles c and d without ever coming
    // back to r. kmod's search would not end; ours then follows only what leads back to each
    // root and is not on the path yet, and reports every cycle (e -> f -> e is left out as kmod
    // leaves it: e and f are on the path reported from s).
    TempTree tree;
    // e <-> f beside the cycle through s (s -> e -> f -> s): from s, e and f circle.
    const std::map<std::string, std::string> imports = {{"r", "c"}, {"a", "br"}, {"b", "a"},
                                                        {"c", "d"}, {"d", "c"},  {"s", "e"},
                                                        {"e", "f"}, {"f", "es"}};
    std::string order;
    for (const char* name : {"r", "c", "d", "a", "b", "s", "e", "f"}) {
        std::vector<std::string> imported;
        for (char need : imports.at(name))
            imported.push_back(std::string("fn_") + need);
        ASSERT_TRUE(compile_module(tree, "kernel/" + std::string(name) + ".ko",
                                   "fn_" + std::string(name), imported));
        order += "kernel/" + std::string(name) + ".ko\n";
    }
    tree.write("modules.order", order);
    OurRun ours = run_ours(options_for(tree));
    EXPECT_FALSE(ours.ok);
    const std::string said = join(ours.diagnostics);
    EXPECT_NE(said.find("Cycle detected: c -> d -> c"), std::string::npos) << said;
    EXPECT_NE(said.find("Cycle detected: a -> b -> a"), std::string::npos) << said;
    EXPECT_NE(said.find("Cycle detected: s -> e -> f -> s"), std::string::npos) << said;
    EXPECT_NE(said.find("Found 7 modules in dependency cycles!"), std::string::npos) << said;
}

} // namespace
} // namespace kmodd::depmod
