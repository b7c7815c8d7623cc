// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd when the disk under the index is full: the previous index files stay whole, the
// failure shows in the Kernels property, in `kmodctl status` and once in the log, and the
// next change after space returns publishes. Needs root (a small tmpfs is mounted).
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

} // namespace
} // namespace kmodd::daemon::test
