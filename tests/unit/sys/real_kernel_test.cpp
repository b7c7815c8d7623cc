// SPDX-License-Identifier: LGPL-2.1-or-later
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "sys/compression.hpp"
#include "sys/kernel.hpp"
#include "sys/messages.hpp"
#include "temp_tree.hpp"

namespace kmodd::sys {
namespace {

namespace fs = std::filesystem;
using Names = std::vector<std::string>;

/// A fake /proc and /sys in a temporary directory.
class FakeRootsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "kmodd-roots-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        fs::create_directories(proc());
        fs::create_directories(sys() / "module");
    }
    void TearDown() override { fs::remove_all(dir_); }

    [[nodiscard]] fs::path proc() const { return dir_ / "proc"; }
    [[nodiscard]] fs::path sys() const { return dir_ / "sys"; }

    static void write(const fs::path& path, const std::string& text)
    {
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << text;
    }
    void add_holder(const std::string& module, const std::string& holder) const
    {
        fs::path dir = sys() / "module" / module / "holders";
        fs::create_directories(dir);
        fs::create_directory_symlink("../../" + holder, dir / holder);
    }

    /// A real kernel on the fake roots, whose decompressor records what it was given.
    [[nodiscard]] std::unique_ptr<Kernel> make_kernel()
    {
        return make_real_kernel(
            [this](std::string_view image) -> base::Result<std::string> {
                decompressed_.emplace_back(image);
                return base::make_error(EBADMSG, "corrupt xz stream");
            },
            sys().string(), proc().string());
    }

    fs::path dir_;
    std::vector<std::string> decompressed_;
};

TEST_F(FakeRootsTest, ProcModulesLinesAreParsedInTheirOrder)
{
    write(proc() / "modules", "mod2 8192 0 - Live 0x0000000000000000 (OE)\n"
                              "libcrc32c 16384 2 btrfs,nf_conntrack, Live 0x0000000000000000\n"
                              "btrfs 1658880 0 - Loading 0x0000000000000000\n"
                              "old 4096 0 [permanent], Unloading 0xffffffffc0000000\n");
    auto kernel = make_kernel();
    auto loaded = kernel->loaded_modules();
    ASSERT_TRUE(loaded) << loaded.error().message;
    ASSERT_EQ(loaded->size(), 4U);
    const LoadedModule& mod2 = (*loaded)[0];
    EXPECT_EQ(mod2.name, "mod2");
    EXPECT_EQ(mod2.size, 8192U);
    EXPECT_EQ(mod2.refcount, 0);
    EXPECT_TRUE(mod2.holders.empty());
    EXPECT_EQ(mod2.state, ModuleState::Live);
    EXPECT_TRUE(mod2.params.empty());
    const LoadedModule& crc = (*loaded)[1];
    EXPECT_EQ(crc.name, "libcrc32c");
    EXPECT_EQ(crc.size, 16384U);
    EXPECT_EQ(crc.refcount, 2);
    EXPECT_EQ(crc.holders, (Names{"btrfs", "nf_conntrack"}));
    EXPECT_EQ((*loaded)[2].size, 1658880U);
    EXPECT_EQ((*loaded)[2].state, ModuleState::Coming);
    EXPECT_TRUE((*loaded)[3].holders.empty()) << "[permanent] is not a holder";
    EXPECT_EQ((*loaded)[3].state, ModuleState::Going);
}

TEST_F(FakeRootsTest, SysfsHoldersAndRefcountWinOverProcModules)
{
    write(proc() / "modules", "mod1 16384 1 mod2, Live 0x0\nmod9 100 3 a,b, Live 0x0\n");
    add_holder("mod1", "mod3");
    add_holder("mod1", "mod2");
    write(sys() / "module/mod1/refcnt", "5\n");
    // mod9 has no /sys entry (it went away after /proc/modules was read): /proc stays.
    auto kernel = make_kernel();
    auto loaded = kernel->loaded_modules();
    ASSERT_TRUE(loaded) << loaded.error().message;
    ASSERT_EQ(loaded->size(), 2U);
    EXPECT_EQ((*loaded)[0].holders, (Names{"mod2", "mod3"}));
    EXPECT_EQ((*loaded)[0].refcount, 5);
    EXPECT_EQ((*loaded)[1].holders, (Names{"a", "b"}));
    EXPECT_EQ((*loaded)[1].refcount, 3);
}

TEST_F(FakeRootsTest, AKernelWithoutModuleUnloadingHasUnknownRefcounts)
{
    write(proc() / "modules", "mod1 16384 - - Live 0x0\n");
    auto kernel = make_kernel();
    auto mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1) << mod1.error().message;
    EXPECT_EQ(mod1->refcount, -1);
    EXPECT_TRUE(mod1->holders.empty());
}

TEST_F(FakeRootsTest, OneModuleIsFoundOrReportedAsNotLoaded)
{
    write(proc() / "modules", "mod1 16384 0 - Live 0x0\n");
    auto kernel = make_kernel();
    auto mod1 = kernel->loaded_module("mod1");
    ASSERT_TRUE(mod1);
    EXPECT_EQ(mod1->size, 16384U);
    auto mod2 = kernel->loaded_module("mod2");
    ASSERT_FALSE(mod2);
    EXPECT_EQ(mod2.error().code, ENOENT);
    EXPECT_EQ(mod2.error().message, "'mod2' is not loaded");
}

TEST_F(FakeRootsTest, AMalformedProcModulesLineIsAnErrorNamingTheLine)
{
    write(proc() / "modules", "mod1 16384 0 - Live 0x0\nmod2 big 0 - Live 0x0\n");
    auto loaded = make_kernel()->loaded_modules();
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, EINVAL);
    EXPECT_NE(loaded.error().message.find("modules' line 2: size 'big'"), std::string::npos)
        << loaded.error().message;

    write(proc() / "modules", "mod1 16384 0 -\n");
    loaded = make_kernel()->loaded_modules();
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find("line 1: expected at least 5 fields"), std::string::npos)
        << loaded.error().message;

    write(proc() / "modules", "mod1 16384 0 - Dying 0x0\n");
    loaded = make_kernel()->loaded_modules();
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find("unknown state 'Dying'"), std::string::npos);
}

TEST_F(FakeRootsTest, AMissingProcModulesIsAnErrorWithItsErrno)
{
    auto loaded = make_kernel()->loaded_modules();
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ENOENT);
    EXPECT_NE(loaded.error().message.find((proc() / "modules").string()), std::string::npos)
        << loaded.error().message;
}

TEST_F(FakeRootsTest, AnEmptyProcModulesMeansNothingIsLoaded)
{
    write(proc() / "modules", "");
    auto loaded = make_kernel()->loaded_modules();
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(loaded->empty());
}

TEST_F(FakeRootsTest, TheStateComesFromInitstate)
{
    write(sys() / "module/live_one/initstate", "live\n");
    write(sys() / "module/coming_one/initstate", "coming\n");
    write(sys() / "module/going_one/initstate", "going\n");
    auto kernel = make_kernel();
    EXPECT_EQ(kernel->module_state("live_one"), ModuleState::Live);
    EXPECT_EQ(kernel->module_state("coming_one"), ModuleState::Coming);
    EXPECT_EQ(kernel->module_state("going_one"), ModuleState::Going);
}

TEST_F(FakeRootsTest, ADirectoryWithoutInitstateIsComingAndNoDirectoryIsNotLoaded)
{
    // Also what a builtin module with parameters looks like: the caller tells those apart.
    fs::create_directories(sys() / "module/half_there/parameters");
    write(sys() / "module/compression", "xz\n");
    auto kernel = make_kernel();
    EXPECT_EQ(kernel->module_state("half_there"), ModuleState::Coming);
    EXPECT_EQ(kernel->module_state("absent"), ModuleState::NotLoaded);
    EXPECT_EQ(kernel->module_state("compression"), ModuleState::NotLoaded)
        << "a file in /sys/module is not a module";
}

TEST_F(FakeRootsTest, NamesThatAreNotOnePathComponentAreNotLoaded)
{
    write(dir_ / "initstate", "live\n");
    write(sys() / "initstate", "live\n");
    auto kernel = make_kernel();
    EXPECT_EQ(kernel->module_state("../.."), ModuleState::NotLoaded);
    EXPECT_EQ(kernel->module_state(".."), ModuleState::NotLoaded);
    EXPECT_EQ(kernel->module_state(""), ModuleState::NotLoaded);
    EXPECT_EQ(kernel->module_state("a/b"), ModuleState::NotLoaded);
}

TEST_F(FakeRootsTest, InsertingAMissingFileFailsWithEnoentFromOpen)
{
    auto kernel = make_kernel();
    std::string path = (dir_ / "mod2.ko.xz").string();
    auto inserted = kernel->insert_module(path, "");
    ASSERT_FALSE(inserted);
    EXPECT_EQ(inserted.error().code, ENOENT);
    EXPECT_EQ(inserted.error().message,
              "cannot insert 'mod2': '" + path + "': No such file or directory");
}

TEST_F(FakeRootsTest, ACompressedFileTheKernelCannotDecompressGoesThroughTheDecompressor)
{
    // The kernel takes zstd; an xz file is decompressed in userspace. The decompressor fails
    // here, so no syscall is made.
    write(sys() / "module/compression", "zstd\n");
    std::string xz_image("\xFD\x37\x7A\x58\x5A\x00rest-of-stream", 20);
    write(dir_ / "mod1.ko.xz", xz_image);
    auto kernel = make_kernel();
    auto inserted = kernel->insert_module((dir_ / "mod1.ko.xz").string(), "");
    ASSERT_FALSE(inserted);
    EXPECT_EQ(inserted.error().code, EBADMSG);
    EXPECT_EQ(inserted.error().message, "cannot insert 'mod1': corrupt xz stream");
    EXPECT_EQ(decompressed_, (Names{xz_image})) << "the decompressor gets the whole file";
}

TEST_F(FakeRootsTest, ACompressedFileWithoutADecompressorIsRefused)
{
    write(dir_ / "mod1.ko.gz", std::string("\x1F\x8B\x08\x00", 4));
    auto kernel = make_real_kernel({}, sys().string(), proc().string());
    auto inserted = kernel->insert_module((dir_ / "mod1.ko.gz").string(), "");
    ASSERT_FALSE(inserted);
    EXPECT_EQ(inserted.error().code, EOPNOTSUPP);
}

/// Runs `body` in a child process and returns its exit code, or -1 when it was killed (a
/// seccomp filter may kill a process that calls the module syscalls).
template <typename Body> int run_in_child(Body body)
{
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(body());
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(FakeRootsTest, TheKernelRefusesAFileThatIsNotAModuleWithAnErrnoAndASentence)
{
    // Nothing can be loaded: the file is not ELF. The errno depends on the machine (EPERM
    // without CAP_SYS_MODULE, ENOSYS without module support, ENOEXEC on a real kernel).
    write(dir_ / "garbage.ko", "this is not an ELF file\n");
    std::string path = (dir_ / "garbage.ko").string();
    int code = run_in_child([&] {
        auto inserted = make_kernel()->insert_module(path, "");
        if (inserted || inserted.error().code == 0)
            return 100;
        if (!inserted.error().message.starts_with("cannot insert 'garbage': "))
            return 101;
        return 0;
    });
    if (code < 0)
        GTEST_SKIP() << "the module syscalls killed the process (seccomp?)";
    EXPECT_EQ(code, 0) << "100: no error; 101: a message not naming the module";
}

TEST_F(FakeRootsTest, RemovingAModuleThatDoesNotExistFailsWithoutCrashing)
{
    int code = run_in_child([] {
        auto removed = make_real_kernel({})->remove_module("kmodd_no_such_module_x7");
        if (removed)
            return 100;
        int errno_code = removed.error().code;
        if (errno_code != ENOENT && errno_code != EPERM && errno_code != ENOSYS)
            return 102;
        return removed.error().message.find("'kmodd_no_such_module_x7'") != std::string::npos ? 0
                                                                                              : 101;
    });
    if (code < 0)
        GTEST_SKIP() << "the module syscalls killed the process (seccomp?)";
    EXPECT_EQ(code, 0) << "100: no error; 101: a message not naming the module; 102: errno";
}

TEST(Compression, IsToldByTheMagicBytes)
{
    using namespace std::string_literals;
    EXPECT_EQ(detect_compression("\x28\xB5\x2F\xFD\x04\x00"s), Compression::Zstd);
    EXPECT_EQ(detect_compression("\xFD\x37\x7A\x58\x5A\x00"s), Compression::Xz);
    EXPECT_EQ(detect_compression("\xFD\x37\x7A\x58\x5A"s), Compression::None) << "truncated";
    EXPECT_EQ(detect_compression("\x1F\x8B\x08"s), Compression::Gzip);
    EXPECT_EQ(detect_compression("\x7F"
                                 "ELF\x02\x01"s),
              Compression::None);
    EXPECT_EQ(detect_compression(""), Compression::None);
}

TEST(Compression, TheKernelsIsReadFromSysModuleCompression)
{
    EXPECT_EQ(parse_kernel_compression("zstd\n"), Compression::Zstd);
    EXPECT_EQ(parse_kernel_compression("xz\n"), Compression::Xz);
    EXPECT_EQ(parse_kernel_compression("gzip\n"), Compression::Gzip);
    EXPECT_EQ(parse_kernel_compression("lz4\n"), Compression::None);
    EXPECT_EQ(parse_kernel_compression(""), Compression::None);
}

TEST(Compression, OnlyAFileInTheKernelsOwnCompressionIsGivenToFinitModuleCompressed)
{
    EXPECT_EQ(choose_insert_method(Compression::None, Compression::None), InsertMethod::FinitPlain);
    EXPECT_EQ(choose_insert_method(Compression::None, Compression::Zstd), InsertMethod::FinitPlain);
    EXPECT_EQ(choose_insert_method(Compression::Zstd, Compression::Zstd),
              InsertMethod::FinitCompressed);
    EXPECT_EQ(choose_insert_method(Compression::Xz, Compression::Zstd), InsertMethod::Decompress);
    EXPECT_EQ(choose_insert_method(Compression::Gzip, Compression::None), InsertMethod::Decompress);
}

TEST(Messages, AModuleNameIsTakenFromItsFileName)
{
    EXPECT_EQ(module_name_from_path("/lib/modules/6.1/kernel/fs/btrfs/btrfs.ko.xz"), "btrfs");
    EXPECT_EQ(module_name_from_path("mod2.ko"), "mod2");
    EXPECT_EQ(module_name_from_path("dir/mod-dash.ko.zst"), "mod-dash");
    EXPECT_EQ(module_name_from_path("x.ko.gz"), "x");
    EXPECT_EQ(module_name_from_path("/tmp/image.bin"), "image.bin");
    EXPECT_EQ(module_name_from_path("/tmp/.ko"), ".ko");
}

/// The error an Unexpected carries (std::unexpected's error(), which tl::unexpected lacks).
base::Error error_of(base::Unexpected unexpected)
{
    base::Result<void> result = std::move(unexpected);
    return result.error();
}

TEST(Messages, InsertErrorsKeepTheErrnoAndSayWhatItMeans)
{
    base::Error unknown = error_of(insert_error("mod2", ENOENT));
    EXPECT_EQ(unknown.code, ENOENT);
    EXPECT_EQ(unknown.message,
              "cannot insert 'mod2': Unknown symbol in module, or unknown parameter (see dmesg)");
    EXPECT_EQ(error_of(insert_error("mod1", EEXIST)).message,
              "cannot insert 'mod1': already loaded");
    EXPECT_EQ(error_of(insert_error("m", ENOEXEC)).message,
              "cannot insert 'm': invalid module format (see dmesg)");
    // Both of the kernel's reasons: a signature that does not verify (fatal even when
    // signatures are not enforced), and a missing or unknown one under enforcement.
    std::string rejected = error_of(insert_error("m", EKEYREJECTED)).message;
    EXPECT_NE(rejected.find("signature rejected"), std::string::npos) << rejected;
    EXPECT_NE(rejected.find("does not match the file"), std::string::npos) << rejected;
    EXPECT_NE(rejected.find("while signatures are enforced"), std::string::npos) << rejected;
    EXPECT_NE(error_of(insert_error("m", EPERM)).message.find("CAP_SYS_MODULE"), std::string::npos);
    EXPECT_EQ(error_of(insert_error("m", ENOMEM)).message,
              "cannot insert 'm': Cannot allocate memory");
}

TEST(Messages, RemoveErrorsNameTheHoldersOfAModuleInUse)
{
    base::Error busy = error_of(remove_error("mod1", EWOULDBLOCK, {"mod2", "mod3"}));
    EXPECT_EQ(busy.code, EWOULDBLOCK);
    EXPECT_EQ(busy.message, "'mod1' is in use by: mod2, mod3");
    EXPECT_EQ(error_of(remove_error("mod1", EAGAIN)).message, "'mod1' is in use");
    EXPECT_EQ(error_of(remove_error("mod1", ENOENT)).message, "'mod1' is not loaded");
    EXPECT_NE(error_of(remove_error("mod1", EBUSY)).message.find("cannot remove 'mod1': "),
              std::string::npos);
}

} // namespace
} // namespace kmodd::sys
