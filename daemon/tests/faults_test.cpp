// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd when the disk under the index is full or read-only: the previous index files stay
// whole, the failure shows in the Kernels property, in `kmodctl status` and once in the log,
// and the next change after space returns publishes. When its state directory cannot be
// written, loads and unloads still work from the records in memory, RecordsProblem and
// `kmodctl status` say so, and the next change writes them. Stopped by SIGTERM, it answers
// every call it has not done that it is stopping. Needs root (tmpfs mounts).
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "daemon_harness.hpp"
#include "kmod_oracle.hpp"

namespace kmodd::daemon::test {
namespace {

using kmodd::test::run_shell;
using kmodd::test::slurp;
using KernelRow = sdbus::Struct<std::string, uint32_t, std::string, std::string>;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;

/// A tmpfs of `size` mounted at `at` for the test's life.
class SmallDisk {
public:
    SmallDisk(fs::path at, const std::string& size) : at_(std::move(at))
    {
        fs::create_directories(at_);
        mounted_ = ::mount("kmodd-test", at_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
    }
    ~SmallDisk()
    {
        if (mounted_)
            ::umount2(at_.c_str(), MNT_DETACH);
    }
    SmallDisk(const SmallDisk&) = delete;
    SmallDisk& operator=(const SmallDisk&) = delete;
    [[nodiscard]] bool mounted() const { return mounted_; }

    /// Remounts it read-only (true) or writable again: EROFS for root too.
    bool set_read_only(bool read_only) const
    {
        unsigned long flags = MS_REMOUNT;
        if (read_only)
            flags |= MS_RDONLY;
        return ::mount(nullptr, at_.c_str(), nullptr, flags, nullptr) == 0;
    }

    /// Writes `file` until the disk is full.
    void fill(const fs::path& file) const
    {
        std::ofstream out(file, std::ios::binary);
        const std::string block(4096, '\0');
        while (out.write(block.data(), static_cast<std::streamsize>(block.size())) && out.flush()) {
        }
    }

private:
    fs::path at_;
    bool mounted_ = false;
};

std::string state_of(Client& client, const std::string& release, std::string* problem = nullptr)
{
    auto kernels = client.property<std::vector<KernelRow>>("Kernels");
    if (!kernels)
        return "?";
    for (const auto& row : *kernels) {
        if (row.get<0>() != release)
            continue;
        if (problem != nullptr)
            *problem = row.get<3>();
        return row.get<2>();
    }
    return "none";
}

size_t count(const std::string& text, const std::string& what)
{
    size_t found = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++found;
    return found;
}

TEST(KmoddFaults, AFullDiskKeepsThePreviousIndexSaysSoOnceAndTheNextChangeAfterPublishes)
{
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to mount a tmpfs";
    DaemonSetup setup;
    const fs::path dir = setup.tree().module_dir();
    SmallDisk disk(dir, "256k");
    ASSERT_TRUE(disk.mounted()) << "mount tmpfs: " << std::strerror(errno);
    fs::create_directories(dir / "kernel");
    setup.tree().add("kernel/mod1.ko", kFixtures / "mod1.ko");
    setup.tree().add("kernel/mod2.ko", kFixtures / "mod2.ko");
    // The modules that arrive later live outside the small disk; links to them take no block.
    const fs::path outside = setup.tree().root() / "home";
    fs::create_directories(outside);
    for (const char* name : {"mod3", "blockdev", "crc_helper"})
        fs::copy_file(kFixtures / (std::string(name) + ".ko"),
                      outside / (std::string(name) + ".ko"));
    ASSERT_TRUE(setup.start()) << setup.log();
    Client& client = setup.client();
    const std::string release = setup.tree().version();
    ASSERT_EQ(state_of(client, release), "indexed");
    const std::string before = slurp(dir / "modules.dep");

    disk.fill(dir / "filler");
    fs::create_symlink(outside / "mod3.ko", dir / "kernel/mod3.ko");
    std::string problem;
    ASSERT_TRUE(wait_until([&] { return state_of(client, release, &problem) == "failed"; }))
        << setup.log();
    EXPECT_NE(problem.find("No space left on device"), std::string::npos) << problem;
    EXPECT_EQ(slurp(dir / "modules.dep"), before) << "the previous index stays, whole";
    std::string status;
    run_shell(std::string(KMODD_KMODCTL) + " --bus '" + setup.address() + "' status", &status);
    EXPECT_NE(status.find("Index failed:     " + release + ": "), std::string::npos) << status;

    // Another change while the disk is still full: retried, not said again.
    fs::create_symlink(outside / "blockdev.ko", dir / "kernel/blockdev.ko");
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(state_of(client, release), "failed");
    EXPECT_EQ(count(setup.log(), "error: index of '" + release + "' not updated"), 1U)
        << setup.log();
    // Requests go on from the index published before.
    auto deps = client.list_deps("mod2");
    ASSERT_TRUE(deps) << deps.error_message;

    // Space returns; the next change publishes all of them.
    fs::remove(dir / "filler");
    fs::create_symlink(outside / "crc_helper.ko", dir / "kernel/crc_helper.ko");
    ASSERT_TRUE(wait_until([&] { return state_of(client, release) == "indexed"; })) << setup.log();
    const std::string after = slurp(dir / "modules.dep");
    for (const char* line : {"kernel/mod3.ko:", "kernel/blockdev.ko:", "kernel/crc_helper.ko:"})
        EXPECT_NE(after.find(line), std::string::npos) << after;
    EXPECT_EQ(count(setup.log(), "written again after the failure"), 1U) << setup.log();
    kmodd::test::expect_same_as_kmod(setup.tree().root(), release);
    setup.stop();
}

std::string status_of(DaemonSetup& setup)
{
    std::string status;
    run_shell(std::string(KMODD_KMODCTL) + " --bus '" + setup.address() + "' status", &status);
    return status;
}

TEST(KmoddFaults, AReadOnlyTreeKeepsThePreviousIndexAndTheChangeIsPublishedOnceWritable)
{
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to mount a tmpfs";
    DaemonSetup setup;
    const fs::path dir = setup.tree().module_dir();
    SmallDisk disk(dir, "1m");
    ASSERT_TRUE(disk.mounted()) << "mount tmpfs: " << std::strerror(errno);
    fs::create_directories(dir / "kernel");
    setup.tree().add("kernel/mod1.ko", kFixtures / "mod1.ko");
    // A developer's module, linked in from outside: the build rewrites it there.
    const fs::path outside = setup.tree().root() / "home";
    fs::create_directories(outside);
    fs::copy_file(kFixtures / "mod3.ko", outside / "mydrv.ko");
    fs::create_symlink(outside / "mydrv.ko", dir / "kernel/mydrv.ko");
    ASSERT_TRUE(setup.start()) << setup.log();
    Client& client = setup.client();
    const std::string release = setup.tree().version();
    ASSERT_EQ(state_of(client, release), "indexed");
    const std::string before = slurp(dir / "modules.alias");
    ASSERT_NE(before.find("mod3-alias"), std::string::npos) << before;

    ASSERT_TRUE(disk.set_read_only(true)) << std::strerror(errno);
    fs::copy_file(kFixtures / "blockdev.ko", outside / "mydrv.ko",
                  fs::copy_options::overwrite_existing);
    std::string problem;
    ASSERT_TRUE(wait_until([&] { return state_of(client, release, &problem) == "failed"; }))
        << setup.log();
    EXPECT_NE(problem.find("Read-only file system"), std::string::npos) << problem;
    EXPECT_EQ(slurp(dir / "modules.alias"), before) << "the previous index stays, whole";
    EXPECT_NE(status_of(setup).find("Index failed:     " + release + ": "), std::string::npos)
        << status_of(setup);
    EXPECT_EQ(count(setup.log(), "error: index of '" + release + "' not updated"), 1U)
        << setup.log();
    auto deps = client.list_deps("mod3-alias");
    EXPECT_TRUE(deps) << "requests go on from the index published before: " << deps.error_message;

    ASSERT_TRUE(disk.set_read_only(false)) << std::strerror(errno);
    fs::copy_file(kFixtures / "crc_helper.ko", outside / "mydrv.ko",
                  fs::copy_options::overwrite_existing);
    ASSERT_TRUE(wait_until([&] { return state_of(client, release) == "indexed"; })) << setup.log();
    const std::string after = slurp(dir / "modules.alias");
    EXPECT_NE(after.find("crypto-crc-helper"), std::string::npos) << after;
    EXPECT_EQ(after.find("mod3-alias"), std::string::npos) << after;
    EXPECT_EQ(status_of(setup).find("Index failed:"), std::string::npos) << status_of(setup);
    kmodd::test::expect_same_as_kmod(setup.tree().root(), release);
    setup.stop();
}

TEST(KmoddFaults, AnUnwritableStateDirKeepsLoadsWorkingSaysSoAndTheNextChangeWritesTheRecords)
{
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to mount a tmpfs";
    DaemonSetup setup;
    for (const char* name : {"mod1", "mod2", "blockdev"})
        setup.tree().add(std::string("kernel/") + name + ".ko",
                         kFixtures / (std::string(name) + ".ko"));
    const fs::path records = setup.tree().root() / "records";
    SmallDisk disk(records, "1m");
    ASSERT_TRUE(disk.mounted()) << "mount tmpfs: " << std::strerror(errno);
    const std::vector<std::string> extra{"--state-dir", records.string()};
    ASSERT_TRUE(setup.start(extra)) << setup.log();
    Client& client = setup.client();
    ASSERT_EQ(client.property<std::string>("RecordsProblem"), "");

    ASSERT_TRUE(disk.set_read_only(true)) << std::strerror(errno);
    auto loaded = client.load("mod2");
    ASSERT_TRUE(loaded) << "the modules are loaded even though the records cannot be written: "
                        << loaded.error_message;
    EXPECT_EQ(*loaded.value, (std::vector<std::string>{"mod1", "mod2"}));
    auto problem = client.property<std::string>("RecordsProblem");
    ASSERT_TRUE(problem);
    EXPECT_NE(problem->find("Read-only file system"), std::string::npos) << *problem;
    EXPECT_FALSE(fs::exists(records / "loaded.json"));
    EXPECT_EQ(client.origin_of("mod1"), "dependency") << "the records are kept in memory";
    EXPECT_EQ(client.origin_of("mod2"), "explicit");
    const std::string status = status_of(setup);
    EXPECT_NE(status.find("Records failed:   " + *problem), std::string::npos) << status;
    // Another change while it is still read-only: tried again, not said again.
    ASSERT_TRUE(client.load("blockdev")) << setup.log();
    EXPECT_EQ(count(setup.log(), "the records of who loaded what are not written"), 1U)
        << setup.log();

    // Writable again: the next change writes every record, and a restart keeps them.
    ASSERT_TRUE(disk.set_read_only(false)) << std::strerror(errno);
    auto unloaded = client.unload("blockdev");
    ASSERT_TRUE(unloaded) << unloaded.error_message;
    EXPECT_EQ(*unloaded.value, (std::vector<std::string>{"blockdev"}));
    EXPECT_EQ(client.property<std::string>("RecordsProblem"), "");
    EXPECT_EQ(count(setup.log(), "written again after the failure"), 1U) << setup.log();
    const std::string written = slurp(records / "loaded.json");
    EXPECT_NE(written.find("\"mod2\""), std::string::npos) << written;
    EXPECT_NE(written.find("\"mod1\""), std::string::npos) << written;
    EXPECT_EQ(status_of(setup).find("Records failed:"), std::string::npos);
    setup.stop();
    ASSERT_TRUE(setup.start(extra)) << setup.log();
    EXPECT_EQ(setup.client().origin_of("mod1"), "dependency");
    unloaded = setup.client().unload("mod2");
    ASSERT_TRUE(unloaded) << unloaded.error_message;
    EXPECT_EQ(*unloaded.value, (std::vector<std::string>{"mod2", "mod1"}));
    setup.stop();
}

TEST(KmoddFaults, SigtermDuringALoadFinishesAndAnswersItAndRefusesTheLoadQueuedBehind)
{
    DaemonSetup setup;
    for (const char* name : {"mod1", "mod2", "blockdev"})
        setup.tree().add(std::string("kernel/") + name + ".ko",
                         kFixtures / (std::string(name) + ".ko"));
    // mod2's install command takes a second: SIGTERM arrives while it runs.
    const fs::path started = setup.tree().root() / "install-started";
    const fs::path config = setup.tree().root() / "slow.conf";
    std::ofstream(config) << "install mod2 touch " << started.string() << "; sleep 1\n";
    const fs::path records = setup.tree().root() / "records";
    const std::vector<std::string> extra{"--modprobe-config", config.string(), "--state-dir",
                                         records.string()};
    ASSERT_TRUE(setup.start(extra)) << setup.log();

    CallResult<Client::Names> first;
    CallResult<Client::Names> queued;
    std::thread first_caller([&] { first = Client(setup.address()).load("mod2"); });
    ASSERT_TRUE(wait_until([&] { return fs::exists(started); })) << setup.log();
    std::thread queued_caller([&] { queued = Client(setup.address()).load("blockdev"); });
    std::this_thread::sleep_for(300ms); // the second call waits behind the first in kmodd
    const auto status = setup.stop();
    first_caller.join();
    queued_caller.join();

    ASSERT_TRUE(status.has_value()) << "kmodd stops within 10 s";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();
    ASSERT_TRUE(first) << "the load under way completes and is answered: " << first.error_name
                       << " " << first.error_message;
    EXPECT_EQ(*first.value, (std::vector<std::string>{"mod1", "mod2"}));
    EXPECT_EQ(queued.error_name, "org.kmodd1.Error.Failed");
    EXPECT_NE(queued.error_message.find("kmodd is stopping: nothing was changed"),
              std::string::npos)
        << queued.error_message;

    // The records are whole: mod1 is kept as mod2's dependency, blockdev was never loaded.
    ASSERT_TRUE(setup.start(extra)) << setup.log();
    Client& client = setup.client();
    EXPECT_EQ(client.origin_of("mod1"), "dependency");
    EXPECT_EQ(client.origin_of("blockdev"), "");
    const std::string written = slurp(records / "loaded.json");
    EXPECT_NE(written.find("\"mod2\""), std::string::npos) << written;
    EXPECT_EQ(written.find("blockdev"), std::string::npos) << written;
    setup.stop();
}

TEST(KmoddFaults, SigtermWhileCallsWaitForAChangeToBeIndexedAnswersThemThatKmoddIsStopping)
{
    DaemonSetup setup;
    for (const char* name : {"mod1", "mod2"})
        setup.tree().add(std::string("kernel/") + name + ".ko",
                         kFixtures / (std::string(name) + ".ko"));
    // A burst of changes is indexed after 5 s of quiet: the calls below wait for it.
    ASSERT_TRUE(setup.start({"--debounce-ms", "5000", "--max-delay-ms", "10000"})) << setup.log();
    setup.tree().add("kernel/blockdev.ko", kFixtures / "blockdev.ko");

    CallResult<Client::Names> load;
    CallResult<Client::Names> deps;
    std::thread loader([&] { load = Client(setup.address()).load("blockdev"); });
    std::thread reader([&] { deps = Client(setup.address()).list_deps("blockdev"); });
    std::this_thread::sleep_for(300ms); // both calls are waiting in kmodd
    const auto started_stop = std::chrono::steady_clock::now();
    const auto status = setup.stop();
    loader.join();
    reader.join();

    ASSERT_TRUE(status.has_value()) << "kmodd stops within 10 s";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();
    EXPECT_LT(std::chrono::steady_clock::now() - started_stop, 4s)
        << "kmodd does not wait for the burst to end before it stops";
    // Answered, not left to the bus's "no reply" when kmodd's connection closes.
    EXPECT_EQ(load.error_name, "org.kmodd1.Error.Failed");
    EXPECT_NE(load.error_message.find("kmodd is stopping: nothing was changed"), std::string::npos)
        << load.error_message;
    EXPECT_EQ(deps.error_name, "org.kmodd1.Error.Failed");
    EXPECT_NE(deps.error_message.find("kmodd is stopping"), std::string::npos)
        << deps.error_message;

    // The next start indexes the change it did not get to.
    ASSERT_TRUE(setup.start()) << setup.log();
    auto found = setup.client().list_deps("blockdev");
    EXPECT_TRUE(found) << found.error_name << " " << found.error_message;
    setup.stop();
}

} // namespace
} // namespace kmodd::daemon::test
