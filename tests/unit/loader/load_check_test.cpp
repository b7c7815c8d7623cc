// SPDX-License-Identifier: LGPL-2.1-or-later
#include "loader/load_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace kmodd::loader {
namespace {

const std::string kMagic = "6.1.0-57-amd64 SMP preempt mod_unload modversions ";

elf::ModuleInfo module_info(std::vector<elf::ImportedSymbol> imports = {},
                            std::vector<elf::ModinfoEntry> extra = {})
{
    elf::ModuleInfo info;
    info.modinfo = {{"vermagic", kMagic},
                    {"parm", "level:how loud (int)"},
                    {"parmtype", "level:int"},
                    {"parmtype", "fast:bool"}};
    info.modinfo.insert(info.modinfo.end(), extra.begin(), extra.end());
    info.imports = std::move(imports);
    return info;
}

sys::KernelFacts kernel_facts()
{
    sys::KernelFacts facts;
    facts.release = "6.1.0-57-amd64";
    facts.sig_enforce = false;
    facts.lockdown = "none";
    facts.modules_disabled = false;
    facts.key_names = std::vector<std::string>{"Debian Secure Boot CA"};
    facts.exports = std::set<std::string, std::less<>>{"printk", "kmalloc"};
    return facts;
}

IndexView index_view()
{
    IndexView view;
    view.owner_of_symbol = [](const std::string& symbol) -> std::optional<std::string> {
        if (symbol == "helper_fn")
            return "helper";
        return std::nullopt;
    };
    view.crc_of = [](const std::string&, const std::string&) -> std::optional<uint64_t> {
        return 0x1234;
    };
    view.dependencies = std::vector<std::string>{"helper"};
    view.kernel_vermagic = kMagic;
    return view;
}

struct Checked {
    std::vector<Finding> findings;
    [[nodiscard]] const Finding* first(Severity severity, const std::string& check) const
    {
        auto it = std::find_if(findings.begin(), findings.end(), [&](const Finding& f) {
            return f.severity == severity && f.check == check;
        });
        return it == findings.end() ? nullptr : &*it;
    }
    [[nodiscard]] bool would_load() const
    {
        return std::none_of(findings.begin(), findings.end(),
                            [](const Finding& f) { return f.severity == Severity::Problem; });
    }
};

Checked check(const elf::ModuleInfo& info, const sys::KernelFacts& kernel, const IndexView& view,
              std::optional<elf::SignatureInfo> signature =
                  elf::SignatureInfo{"PKCS#7", "Debian Secure Boot CA", "", "sha256", ""},
              std::vector<std::pair<std::string, std::optional<std::string>>> params = {})
{
    CheckSubject subject;
    subject.name = "mydrv";
    subject.path = "/tmp/mydrv.ko";
    subject.info = &info;
    subject.signature = std::move(signature);
    subject.params = std::move(params);
    return Checked{check_load(subject, kernel, view)};
}

TEST(LoadCheck, AModuleThatFitsTheKernelShouldLoad)
{
    auto info = module_info({{"printk", 0, false}, {"helper_fn", 0x1234, false}});
    auto checked = check(info, kernel_facts(), index_view());
    EXPECT_TRUE(checked.would_load());
    const Finding* symbols = checked.first(Severity::Ok, "symbol");
    ASSERT_NE(symbols, nullptr);
    EXPECT_EQ(symbols->message, "symbols found: 1 from the kernel, 1 from helper");
}

TEST(LoadCheck, AnotherVermagicIsAProblemNamingBothAndTheHeadersToBuildWith)
{
    auto info = module_info({}, {});
    info.modinfo[0].value = "6.1.0-57-amd64 SMP preempt mod_unlxad modversions ";
    auto checked = check(info, kernel_facts(), index_view());
    const Finding* problem = checked.first(Severity::Problem, "vermagic");
    ASSERT_NE(problem, nullptr);
    EXPECT_NE(problem->message.find("mod_unlxad"), std::string::npos) << problem->message;
    EXPECT_NE(problem->message.find("'" + kMagic + "'"), std::string::npos) << problem->message;
    EXPECT_NE(problem->fix.find("linux-headers-6.1.0-57-amd64"), std::string::npos);
    EXPECT_EQ(checked.findings.front().check, "vermagic") << "problems come first";
}

TEST(LoadCheck, WithSymbolCrcsTheReleasePartOfTheVermagicIsNotCompared)
{
    auto info = module_info({{"printk", 0xabcd, false}});
    info.modinfo[0].value = "6.1.0-99-amd64 SMP preempt mod_unload modversions ";
    EXPECT_EQ(check(info, kernel_facts(), index_view()).first(Severity::Problem, "vermagic"),
              nullptr);
    info.imports[0].crc = 0;
    EXPECT_NE(check(info, kernel_facts(), index_view()).first(Severity::Problem, "vermagic"),
              nullptr);
}

TEST(LoadCheck, AnUnsignedModuleIsRefusedWhereSignaturesAreEnforcedAndTaintsElsewhere)
{
    auto info = module_info();
    auto kernel = kernel_facts();
    auto checked = check(info, kernel, index_view(), std::nullopt);
    EXPECT_TRUE(checked.would_load());
    ASSERT_NE(checked.first(Severity::Warning, "signature"), nullptr);
    EXPECT_NE(checked.first(Severity::Warning, "signature")->message.find("taints"),
              std::string::npos);

    kernel.sig_enforce = true;
    checked = check(info, kernel, index_view(), std::nullopt);
    const Finding* problem = checked.first(Severity::Problem, "signature");
    ASSERT_NE(problem, nullptr);
    EXPECT_NE(problem->message.find("module.sig_enforce=1"), std::string::npos);
    EXPECT_NE(problem->message.find("Key was rejected by service"), std::string::npos);
    EXPECT_NE(problem->fix.find("sign-file"), std::string::npos);

    kernel.sig_enforce = false;
    kernel.lockdown = "integrity";
    kernel.dkms_key = "/var/lib/dkms/mok.key";
    kernel.dkms_cert = "/var/lib/dkms/mok.pub";
    checked = check(info, kernel, index_view(), std::nullopt);
    problem = checked.first(Severity::Problem, "signature");
    ASSERT_NE(problem, nullptr);
    EXPECT_NE(problem->message.find("locked down (integrity)"), std::string::npos);
    EXPECT_NE(problem->fix.find("mokutil --import /var/lib/dkms/mok.pub"), std::string::npos)
        << problem->fix;
}

TEST(LoadCheck, ASignatureByAKeyTheKernelDoesNotHoldIsRefusedWhenEnforced)
{
    auto info = module_info();
    auto kernel = kernel_facts();
    kernel.sig_enforce = true;
    elf::SignatureInfo mine{"PKCS#7", "My Driver Key", "", "sha256", ""};
    auto checked = check(info, kernel, index_view(), mine);
    const Finding* problem = checked.first(Severity::Problem, "signature");
    ASSERT_NE(problem, nullptr);
    EXPECT_NE(problem->message.find("'My Driver Key', a key the kernel does not hold"),
              std::string::npos);
    kernel.sig_enforce = false;
    EXPECT_TRUE(check(info, kernel, index_view(), mine).would_load());
    EXPECT_TRUE(check(info, kernel_facts(), index_view()).first(Severity::Ok, "signature"));
}

TEST(LoadCheck, ASymbolNobodyExportsIsAProblemNamingIt)
{
    auto info = module_info({{"kmodd_no_such_symbol", 0, false}, {"maybe", 0, true}});
    auto checked = check(info, kernel_facts(), index_view());
    const Finding* problem = checked.first(Severity::Problem, "symbol");
    ASSERT_NE(problem, nullptr);
    EXPECT_NE(problem->message.find("'kmodd_no_such_symbol'"), std::string::npos);
    EXPECT_NE(problem->message.find("Unknown symbol in module"), std::string::npos);
    EXPECT_EQ(checked.findings.size(), 4U) << "the weak symbol is not reported";
}

TEST(LoadCheck, AStaleIndexEntryAndACrcMismatchAreNamed)
{
    auto info = module_info({{"helper_fn", 0x9999, false}});
    auto view = index_view();
    view.dependencies = std::vector<std::string>{};
    auto checked = check(info, kernel_facts(), view);
    size_t problems = 0;
    for (const auto& f : checked.findings) {
        if (f.severity != Severity::Problem)
            continue;
        ++problems;
        EXPECT_TRUE(f.message.find("symbol version of 'helper_fn' differs") != std::string::npos ||
                    f.message.find("does not name: the index is stale") != std::string::npos)
            << f.message;
    }
    EXPECT_EQ(problems, 2U);
    // A file outside the index: its dependency must be loaded by hand first.
    view.dependencies.reset();
    info.imports[0].crc = 0x1234;
    checked = check(info, kernel_facts(), view);
    EXPECT_TRUE(checked.would_load());
    ASSERT_NE(checked.first(Severity::Warning, "symbol"), nullptr);
    EXPECT_NE(checked.first(Severity::Warning, "symbol")->message.find("'helper'"),
              std::string::npos);
}

TEST(LoadCheck, WithoutTheKernelsExportsUnresolvedSymbolsAreAWarningNotAProblem)
{
    auto info = module_info({{"printk", 0, false}});
    auto kernel = kernel_facts();
    kernel.exports.reset();
    auto checked = check(info, kernel, index_view());
    EXPECT_TRUE(checked.would_load());
    ASSERT_NE(checked.first(Severity::Warning, "symbol"), nullptr);
    EXPECT_NE(checked.first(Severity::Warning, "symbol")->message.find("1 symbol(s)"),
              std::string::npos);
}

TEST(LoadCheck, ParametersAreCheckedAgainstTheModulesOwn)
{
    auto info = module_info();
    auto checked = check(info, kernel_facts(), index_view(), std::nullopt,
                         {{"level", "notanumber"}, {"no_such_param", "1"}, {"fast", std::nullopt}});
    const Finding* bad = checked.first(Severity::Problem, "parameter");
    ASSERT_NE(bad, nullptr);
    EXPECT_NE(bad->message.find("'notanumber' is not valid for parameter 'level' (int)"),
              std::string::npos)
        << bad->message;
    const Finding* unknown = checked.first(Severity::Warning, "parameter");
    ASSERT_NE(unknown, nullptr);
    EXPECT_NE(unknown->message.find("unknown parameter 'no_such_param'"), std::string::npos);
    EXPECT_NE(unknown->message.find("fast (bool), level (int)"), std::string::npos)
        << unknown->message;
    EXPECT_NE(checked.first(Severity::Ok, "parameter"), nullptr) << "fast alone is true";
    EXPECT_FALSE(check(info, kernel_facts(), index_view(), std::nullopt, {{"level", std::nullopt}})
                     .would_load());
}

TEST(LoadCheck, DisabledModuleLoadingIsAProblemAndALoadedModuleAWarning)
{
    auto info = module_info();
    auto kernel = kernel_facts();
    kernel.modules_disabled = true;
    kernel.loaded = {"mydrv"};
    auto checked = check(info, kernel, index_view());
    EXPECT_NE(checked.first(Severity::Problem, "kernel"), nullptr);
    EXPECT_NE(checked.first(Severity::Warning, "state"), nullptr);
}

TEST(LoadCheck, ParameterValuesAreParsedAsTheKernelParsesThem)
{
    EXPECT_TRUE(is_valid_parameter_value("int", "-12"));
    EXPECT_TRUE(is_valid_parameter_value("int", "0x10"));
    EXPECT_TRUE(is_valid_parameter_value("int", "7\n"));
    EXPECT_FALSE(is_valid_parameter_value("int", "2147483648"));
    EXPECT_FALSE(is_valid_parameter_value("int", " 1"));
    EXPECT_FALSE(is_valid_parameter_value("int", ""));
    EXPECT_FALSE(is_valid_parameter_value("uint", "-1"));
    EXPECT_TRUE(is_valid_parameter_value("byte", "255"));
    EXPECT_FALSE(is_valid_parameter_value("byte", "256"));
    EXPECT_TRUE(is_valid_parameter_value("hexint", "ff"));
    EXPECT_FALSE(is_valid_parameter_value("short", "40000"));
    EXPECT_TRUE(is_valid_parameter_value("bool", "on"));
    EXPECT_TRUE(is_valid_parameter_value("invbool", "N"));
    EXPECT_FALSE(is_valid_parameter_value("bool", "maybe"));
    EXPECT_TRUE(is_valid_parameter_value("array of int", "1,2,-3"));
    EXPECT_FALSE(is_valid_parameter_value("array of int", "1,x"));
    EXPECT_TRUE(is_valid_parameter_value("charp", "anything at all"));
}

TEST(KernelFacts, LockdownAndKeyNamesAreReadFromTheKernelsText)
{
    EXPECT_EQ(sys::parse_lockdown("none [integrity] confidentiality\n"), "integrity");
    EXPECT_EQ(sys::parse_lockdown("[none] integrity confidentiality\n"), "none");
    EXPECT_EQ(sys::parse_lockdown(""), "");
    const std::string keys =
        "0c905cb5 I--Q---     2 perm 1f3f0000     0 65534 keyring   _uid.0: empty\n"
        "1a2b3c4d I------     1 perm 1f010000     0     0 asymmetri Debian Secure Boot CA: "
        "6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1: X509.rsa bb419ea1 []\n"
        "2a2b3c4d I------     1 perm 1f010000     0     0 asymmetri Build time autogenerated "
        "kernel key: 7d5d6a2e: X509.rsa 7d5d6a2e []\n";
    EXPECT_EQ(
        sys::parse_key_names(keys),
        (std::vector<std::string>{"Debian Secure Boot CA", "Build time autogenerated kernel key"}));
}

} // namespace
} // namespace kmodd::loader
