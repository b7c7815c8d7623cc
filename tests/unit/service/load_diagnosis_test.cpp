// SPDX-License-Identifier: LGPL-2.1-or-later
// A load the kernel refuses comes back with its cause named: the error kind and a message
// with the cause and the fix (service/load_diagnosis.cpp, through ModuleService::load).
#include "service/load_diagnosis.hpp"

#include <cerrno>
#include <cstring>

#include "module_service_fixture.hpp"

namespace kmodd::service::test_support {
namespace {

/// The sandbox kernel, but the insertion of `refused` fails with `code`, and the kernel
/// enforces module signatures.
class RefusingKernel final : public sys::Kernel {
public:
    RefusingKernel(sys::Kernel& inner, std::string refused, int code)
        : inner_(inner), refused_(std::move(refused)), code_(code)
    {
    }

    base::Result<void> insert_module(const std::string& path, const std::string& params) override
    {
        if (path.find("/" + refused_ + ".ko") != std::string::npos)
            return base::make_error(code_,
                                    "cannot insert '" + refused_ + "': " + std::strerror(code_));
        return inner_.insert_module(path, params);
    }
    base::Result<void> remove_module(const std::string& name) override
    {
        return inner_.remove_module(name);
    }
    base::Result<std::vector<sys::LoadedModule>> loaded_modules() const override
    {
        return inner_.loaded_modules();
    }
    sys::ModuleState module_state(const std::string& name) const override
    {
        return inner_.module_state(name);
    }
    base::Result<sys::LoadedModule> loaded_module(const std::string& name) const override
    {
        return inner_.loaded_module(name);
    }
    sys::KernelFacts facts(const std::string& release, bool with_exports) override
    {
        sys::KernelFacts facts = Kernel::facts(release, with_exports);
        facts.sig_enforce = true;
        facts.exports = std::set<std::string, std::less<>>{};
        return facts;
    }
    std::vector<std::string> insert_messages() const override { return messages_; }
    /// What the kernel "logs" about the refused insertion.
    void set_messages(std::vector<std::string> messages) { messages_ = std::move(messages); }

private:
    std::vector<std::string> messages_;
    sys::Kernel& inner_;
    std::string refused_;
    int code_;
};

TEST_F(ModuleServiceTest, ARejectedSignatureIsNamedWithItsCauseAndFix)
{
    RefusingKernel kernel(*kernel_, "mod2", EKEYREJECTED);
    ModuleService service(kernel, store_.get());
    auto loaded = service.load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::SignatureRejected);
    const std::string& message = loaded.error().message;
    EXPECT_NE(message.find("Key was rejected by service"), std::string::npos) << message;
    EXPECT_NE(message.find(". Cause: the module is unsigned and the kernel loads only signed "
                           "modules (module.sig_enforce=1)"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(". Fix: sign it with"), std::string::npos) << message;
    EXPECT_EQ(kernel.module_state("mod1"), sys::ModuleState::NotLoaded) << "mod1 came back out";
}

TEST_F(ModuleServiceTest, AnUnknownSymbolAndOtherRefusalsGetTheirKinds)
{
    RefusingKernel unknown(*kernel_, "mod2", ENOENT);
    auto loaded = ModuleService(unknown, store_.get()).load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::UnknownSymbol) << loaded.error().message;
    // mod1 was loaded first and exports mod1_fn, so the check finds no culprit itself.
    EXPECT_NE(loaded.error().message.find("did not find a symbol"), std::string::npos)
        << loaded.error().message;

    RefusingKernel busy(*kernel_, "mod2", EBUSY);
    loaded = ModuleService(busy, store_.get()).load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::Failed);
    EXPECT_EQ(loaded.error().message.find("Cause:"), std::string::npos) << loaded.error().message;
}

TEST_F(ModuleServiceTest, TheKernelsLinesJoinTheErrorAndDiagnoseGivesItsParts)
{
    RefusingKernel kernel(*kernel_, "mod2", ENOENT);
    kernel.set_messages({"mod2: Unknown symbol mod9_fn (err -2)"});
    ModuleService service(kernel, store_.get());
    auto loaded = service.load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    const std::string& message = loaded.error().message;
    EXPECT_NE(message.find(". The kernel said: \"mod2: Unknown symbol mod9_fn (err -2)\". Cause: "),
              std::string::npos)
        << message;

    auto outcome = service.diagnose("mod2");
    ASSERT_TRUE(outcome) << outcome.error().message;
    EXPECT_FALSE(outcome->loaded);
    EXPECT_EQ(outcome->kind, Failure::UnknownSymbol);
    EXPECT_EQ(outcome->message, message);
    EXPECT_EQ(outcome->failed_module, "mod2");
    EXPECT_NE(outcome->file.find("/kernel/a/mod2.ko"), std::string::npos) << outcome->file;
    EXPECT_EQ(outcome->code, ENOENT);
    EXPECT_EQ(outcome->kernel_messages,
              std::vector<std::string>{"mod2: Unknown symbol mod9_fn (err -2)"});
    EXPECT_FALSE(outcome->cause.empty());
    EXPECT_TRUE(outcome->inserted.empty());

    auto never = service.diagnose("mod1");
    ASSERT_FALSE(never);
    EXPECT_EQ(never.error().kind, Failure::NotFound);
    EXPECT_EQ(service.diagnose("bad name!").error().kind, Failure::InvalidName);
}

TEST_F(ModuleServiceTest, AnUnknownParameterIsAWarningOfASuccessfulLoad)
{
    // mod1 has the parameter debug; the kernel ignores the one it does not have.
    auto loaded = service_->load(*snapshot_, "mod1", "nosuch=1 debug=3");
    ASSERT_TRUE(loaded) << loaded.error().message;
    auto outcome = service_->diagnose("mod1");
    ASSERT_TRUE(outcome) << outcome.error().message;
    EXPECT_TRUE(outcome->loaded);
    EXPECT_EQ(outcome->inserted, std::vector<std::string>{"mod1"});
    EXPECT_EQ(outcome->params, "nosuch=1 debug=3");
    ASSERT_EQ(outcome->warnings.size(), 1U);
    EXPECT_EQ(outcome->warnings[0].rfind("mod1: unknown parameter 'nosuch'", 0), 0U)
        << outcome->warnings[0];
    EXPECT_NE(outcome->warnings[0].find("its parameters: debug"), std::string::npos)
        << outcome->warnings[0];

    // The same name asked again without parameters: the last outcome, without warnings.
    ASSERT_TRUE(service_->unload(*snapshot_, "mod1"));
    ASSERT_TRUE(service_->load(*snapshot_, "mod1", ""));
    EXPECT_TRUE(service_->diagnose("mod1")->warnings.empty());
}

TEST_F(ModuleServiceTest, AModuleFileThatIsNoModuleAnyMoreIsTheCause)
{
    RefusingKernel kernel(*kernel_, "mod2", ENOEXEC);
    ModuleService service(kernel, store_.get());
    // The build rewrites the file after it was indexed: half of it is there.
    const auto path = tree_.module_dir() / "kernel/a/mod2.ko";
    std::filesystem::resize_file(path, 100);
    auto loaded = service.load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::Failed);
    const std::string& message = loaded.error().message;
    EXPECT_NE(message.find(". Cause: kmodd cannot read the file as a module either ("),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("mod2.ko"), std::string::npos) << message;
    EXPECT_NE(message.find(". Fix: rebuild the module"), std::string::npos) << message;
}

TEST_F(ModuleServiceTest, AModuleFileGoneSinceItWasIndexedIsNoUnknownSymbol)
{
    // The kernel's open fails with ENOENT, the errno of an unknown symbol too.
    RefusingKernel kernel(*kernel_, "mod2", ENOENT);
    ModuleService service(kernel, store_.get());
    std::filesystem::remove(tree_.module_dir() / "kernel/a/mod2.ko");
    auto loaded = service.load(*snapshot_, "mod2", "");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().kind, Failure::Failed) << loaded.error().message;
    EXPECT_NE(loaded.error().message.find("mod2.ko' is gone (removed after kmodd indexed it)"),
              std::string::npos)
        << loaded.error().message;
}

TEST(LoadDiagnosis, ModulesDisabledIsTheCauseOfEperm)
{
    const std::vector<loader::Finding> findings = {
        {"kernel", loader::Severity::Problem, "the kernel loads no more modules", "reboot"}};
    Diagnosis d = classify_failed_load(EPERM, findings);
    EXPECT_EQ(d.kind, Failure::Failed);
    EXPECT_EQ(d.cause, "the kernel loads no more modules");
    EXPECT_EQ(d.fix, "reboot");
    EXPECT_TRUE(classify_failed_load(EPERM, {}).cause.empty());
}

TEST(LoadDiagnosis, KernelLinesTakeThePlaceOfTheDmesgHint)
{
    EXPECT_EQ(with_kernel_messages("cannot insert 'a': invalid module format (see dmesg)",
                                   {"a: version magic 'x' should be 'y'", "second"}),
              "cannot insert 'a': invalid module format. The kernel said: \"a: version magic "
              "'x' should be 'y'\"; \"second\"");
    EXPECT_EQ(with_kernel_messages("cannot insert 'a' (see dmesg)", {}),
              "cannot insert 'a' (see dmesg)");
}

TEST(LoadDiagnosis, EachErrnoTakesTheMatchingProblem)
{
    using loader::Finding;
    using loader::Severity;
    const std::vector<Finding> findings{
        {"vermagic", Severity::Problem, "version magic differs", "rebuild"},
        {"parameter", Severity::Problem, "'x' is not valid", "give an int"},
        {"symbol", Severity::Problem, "no module exports 'foo'", "headers"},
        {"signature", Severity::Warning, "unsigned: taints", "sign"},
    };
    auto d = classify_failed_load(ENOEXEC, findings);
    EXPECT_EQ(d.kind, Failure::VersionMismatch);
    EXPECT_EQ(d.cause, "version magic differs");
    EXPECT_EQ(d.fix, "rebuild");
    d = classify_failed_load(EINVAL, findings);
    EXPECT_EQ(d.kind, Failure::BadParameter);
    EXPECT_EQ(d.cause, "'x' is not valid");
    d = classify_failed_load(ENOENT, findings);
    EXPECT_EQ(d.kind, Failure::UnknownSymbol);
    EXPECT_EQ(d.cause, "no module exports 'foo'");
    d = classify_failed_load(EKEYREJECTED, findings);
    EXPECT_EQ(d.kind, Failure::SignatureRejected);
    EXPECT_NE(d.cause.find("unsigned or signed with a key"), std::string::npos)
        << "a warning is not the cause: " << d.cause;
    EXPECT_EQ(classify_failed_load(ENOEXEC, {}).kind, Failure::Failed);
    EXPECT_EQ(classify_failed_load(EINVAL, {}).kind, Failure::Failed);
}

TEST(LoadDiagnosis, TheKernelsParameterStringIsSplitAsItsParserSplitsIt)
{
    auto params = loader::split_parameters(" a=1  b=\"x y\"\tflag \"c=d e\" ");
    ASSERT_EQ(params.size(), 4U);
    EXPECT_EQ(params[0], (std::pair<std::string, std::optional<std::string>>{"a", "1"}));
    EXPECT_EQ(params[1].second, "x y");
    EXPECT_EQ(params[2],
              (std::pair<std::string, std::optional<std::string>>{"flag", std::nullopt}));
    EXPECT_EQ(params[3].first, "c");
    EXPECT_EQ(params[3].second, "d e");
}

} // namespace
} // namespace kmodd::service::test_support
