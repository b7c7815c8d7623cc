// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodd end to end: the built daemon on a private dbus-daemon, in sandbox mode on temporary
// module trees, driven over D-Bus (and busctl where a separate process matters). The index
// files it writes are compared with kmod's depmod on the same tree.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "burst_timing.hpp"
#include "daemon_harness.hpp"
#include "kmod_oracle.hpp"

namespace kmodd::daemon::test {
namespace {

using kmodd::test::expect_same_as_kmod;
using kmodd::test::run_shell;
using kmodd::test::slurp;

const fs::path kFixtures = KMODD_FIXTURE_MODULES;
fs::path fixture(const std::string& name)
{
    return kFixtures / (name + ".ko");
}

bool has_dep_line(const kmodd::test::TempTree& tree, const std::string& line)
{
    return kmodd::test::has_line(tree.module_dir() / "modules.dep", line);
}

using Names = std::vector<std::string>;

TEST(Kmodd, TheSeedStoryLinksAreIndexedByThemselvesAndLoadBringsDependenciesFirst)
{
    DaemonSetup setup;
    ASSERT_TRUE(setup.start()) << setup.log();
    SignalLog signals(setup.address());
    Client& client = setup.client();
    EXPECT_EQ(client.list_deps("mod2").error_name, dbus::kErrorNotFound);

    // A developer builds two modules out of tree and softlinks them in; nobody runs depmod.
    const fs::path build = setup.tree().root() / "home/dev/driver";
    fs::create_directories(build);
    fs::copy_file(fixture("mod1"), build / "mod1.ko");
    fs::copy_file(fixture("mod2"), build / "mod2.ko");
    fs::create_directories(setup.tree().module_dir() / "extra");
    fs::create_symlink(build / "mod1.ko", setup.tree().module_dir() / "extra/mod1.ko");
    fs::create_symlink(build / "mod2.ko", setup.tree().module_dir() / "extra/mod2.ko");

    ASSERT_TRUE(wait_until([&] {
        return has_dep_line(setup.tree(), "extra/mod2.ko: extra/mod1.ko");
    })) << slurp(setup.tree().module_dir() / "modules.dep")
        << setup.log();
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
    ASSERT_TRUE(wait_until([&] { return client.property<uint32_t>("ModuleCount") == 2U; }));
    EXPECT_GE(signals.count_prefix("IndexRebuilt " + setup.tree().version()), 1U);

    auto deps = client.list_deps("mod2");
    ASSERT_TRUE(deps) << deps.error_message;
    EXPECT_EQ(*deps.value, (Names{"mod1", "mod2"}));

    auto loaded = client.load("mod2");
    ASSERT_TRUE(loaded) << loaded.error_message << setup.log();
    EXPECT_EQ(*loaded.value, (Names{"mod1", "mod2"}));
    EXPECT_EQ(client.origin_of("mod2"), dbus::kOriginExplicit);
    EXPECT_EQ(client.origin_of("mod1"), dbus::kOriginDependency);
    EXPECT_TRUE(signals.wait_for("ModuleLoaded mod1"));
    EXPECT_TRUE(signals.wait_for("ModuleLoaded mod2"));

    auto again = client.load("mod2");
    ASSERT_TRUE(again) << again.error_message;
    EXPECT_TRUE(again.value->empty()) << "already loaded: nothing inserted";

    auto removed = client.unload("mod2");
    ASSERT_TRUE(removed) << removed.error_message;
    EXPECT_EQ(*removed.value, (Names{"mod2", "mod1"}));
    EXPECT_EQ(client.origin_of("mod1"), "");
    EXPECT_TRUE(signals.wait_for("ModuleUnloaded mod1"));

    auto status = setup.stop();
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();
}

TEST(Kmodd, TheIndexFollowsTheFileBehindALinkWhenItIsRebuilt)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    const fs::path target = setup.tree().root() / "home/dev/mine.ko";
    fs::create_directories(target.parent_path());
    fs::copy_file(fixture("mod3"), target); // needs mod1
    setup.tree().link("extra/mine.ko", target);
    ASSERT_TRUE(setup.start()) << setup.log();
    ASSERT_TRUE(has_dep_line(setup.tree(), "extra/mine.ko: kernel/a/mod1.ko"));
    auto generation = setup.client().property<uint64_t>("IndexGeneration");
    ASSERT_TRUE(generation);

    // Rebuilt in place: the link does not change, its target does. Now it needs nothing.
    fs::copy_file(fixture("crc_helper"), target, fs::copy_options::overwrite_existing);
    EXPECT_TRUE(wait_until([&] { return has_dep_line(setup.tree(), "extra/mine.ko:"); }))
        << slurp(setup.tree().module_dir() / "modules.dep") << setup.log();
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
    EXPECT_TRUE(wait_until(
        [&] { return setup.client().property<uint64_t>("IndexGeneration") > *generation; }));
}

TEST(Kmodd, ABurstOfTwoThousandFilesGivesOneOrAFewRebuildsAndTheRightIndex)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    ASSERT_TRUE(setup.start()) << setup.log();
    SignalLog signals(setup.address());
    const fs::path dir = setup.tree().module_dir() / "kernel/burst";
    fs::create_directories(dir);
    kmodd::test::BurstTiming timing(20ms); // the harness's --debounce-ms
    for (int i = 0; i < 2000; ++i) {
        fs::copy_file(fixture("mod2"), dir / ("burst" + std::to_string(i) + ".ko"));
        timing.change();
    }
    ASSERT_TRUE(
        wait_until([&] { return setup.client().property<uint32_t>("ModuleCount") == 2001U; }, 30s))
        << setup.log();
    // Let a late rebuild, if any, finish before counting.
    std::this_thread::sleep_for(300ms);
    size_t rebuilds = signals.count_prefix("IndexRebuilt");
    EXPECT_GE(rebuilds, 1U);
    // A quiet machine gives 1-2; a busy one pauses the writer, and each pause may end a batch.
    EXPECT_LE(rebuilds, timing.max_batches(1000ms))
        << "2000 files in " << timing.duration().count() << " ms with " << timing.pauses()
        << " pause(s) over the quiet period should be debounced into a few rebuilds";
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
}

TEST(Kmodd, LostEventsAfterAnInotifyOverflowTriggerAFullRescan)
{
    const char* knob = "/proc/sys/fs/inotify/max_queued_events";
    std::string saved = slurp(knob);
    if (saved.empty() || ::access(knob, W_OK) != 0)
        GTEST_SKIP() << "cannot lower " << knob << " here (needs root)";
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    // The limit applies to inotify instances created while it is set: kmodd's only.
    std::ofstream(knob) << "32\n";
    bool started = setup.start({"--debounce-ms", "200"});
    std::ofstream(knob) << saved;
    ASSERT_TRUE(started) << setup.log();

    // Stop the daemon's loop long enough for the queue to overflow.
    ::kill(setup.process().pid(), SIGSTOP);
    const fs::path dir = setup.tree().module_dir() / "kernel/many";
    fs::create_directories(dir);
    for (int i = 0; i < 200; ++i)
        fs::copy_file(fixture("mod2"), dir / ("many" + std::to_string(i) + ".ko"));
    ::kill(setup.process().pid(), SIGCONT);

    ASSERT_TRUE(
        wait_until([&] { return setup.client().property<uint32_t>("ModuleCount") == 201U; }, 30s))
        << setup.log();
    EXPECT_NE(setup.log().find("queue overflow"), std::string::npos) << setup.log();
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
}

TEST(Kmodd, AMissingOrStaleIndexIsRebuiltAtStart)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    setup.tree().write("modules.dep", "kernel/a/gone.ko:\n");
    ASSERT_TRUE(setup.start()) << setup.log();
    EXPECT_EQ(slurp(setup.tree().module_dir() / "modules.dep"),
              kmodd::test::run_kmod(setup.tree().root(), setup.tree().version())["modules.dep"]);
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
}

TEST(Kmodd, ASlowLoadBlocksNoOtherCallerAndAKilledClientLeavesTheDaemonServing)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    const fs::path config = setup.tree().root() / "slow.conf";
    std::ofstream(config) << "install slowpoke /bin/sleep 3\n";
    ASSERT_TRUE(setup.start({"--modprobe-config", config.string()})) << setup.log();

    // A client asks for the slow load, then dies before the answer.
    std::string command =
        setup.busctl() +
        " --timeout=60 call org.kmodd1 /org/kmodd1 org.kmodd1.Manager Load ss slowpoke ''";
    pid_t client = kmodd::test::spawn({"/bin/sh", "-c", "exec " + command + " >/dev/null 2>&1"});
    ASSERT_TRUE(wait_until([&] {
        return setup.log().find("slowpoke") != std::string::npos ||
               run_shell("pgrep -f 'sleep 3' >/dev/null") == 0;
    })) << setup.log();

    // Meanwhile others are served: reads at once, and a load of other modules after it.
    auto deps = setup.client().list_deps("mod2");
    ASSERT_TRUE(deps) << deps.error_message;
    EXPECT_EQ(*deps.value, (Names{"mod1", "mod2"}));
    EXPECT_TRUE(setup.client().list_loaded());
    int status = 0;
    EXPECT_EQ(::waitpid(client, &status, WNOHANG), 0) << "the slow load is still running";
    ::kill(client, SIGKILL);
    ::waitpid(client, &status, 0);

    auto loaded = setup.client().load("mod2");
    ASSERT_TRUE(loaded) << loaded.error_message;
    EXPECT_EQ(*loaded.value, (Names{"mod1", "mod2"}));
    EXPECT_TRUE(setup.process().is_running()) << setup.log();
}

TEST(Kmodd, OverlappingLoadsOfModulesSharingADependencyInsertItOnce)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    setup.tree().add("kernel/a/mod3.ko", fixture("mod3"));
    ASSERT_TRUE(setup.start()) << setup.log();
    std::string out2;
    std::string out3;
    std::thread first([&] {
        run_shell(setup.busctl() +
                      " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager Load ss mod2 ''",
                  &out2);
    });
    std::thread second([&] {
        run_shell(setup.busctl() +
                      " call org.kmodd1 /org/kmodd1 org.kmodd1.Manager Load ss mod3 ''",
                  &out3);
    });
    first.join();
    second.join();
    size_t mod1_inserted = (out2.find("\"mod1\"") != std::string::npos ? 1U : 0U) +
                           (out3.find("\"mod1\"") != std::string::npos ? 1U : 0U);
    EXPECT_EQ(mod1_inserted, 1U) << out2 << out3;
    auto rows = setup.client().list_loaded();
    ASSERT_TRUE(rows);
    std::map<std::string, uint32_t> refcounts;
    for (const auto& row : *rows.value)
        refcounts[std::get<0>(row)] = std::get<2>(row);
    EXPECT_EQ(refcounts.size(), 3U);
    EXPECT_EQ(refcounts["mod1"], 2U) << "held by mod2 and mod3";
}

TEST(Kmodd, ARestartKeepsWhoLoadedWhat)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    ASSERT_TRUE(setup.start()) << setup.log();
    ASSERT_TRUE(setup.client().load("mod2"));
    auto status = setup.stop();
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();

    ASSERT_TRUE(setup.start()) << setup.log();
    EXPECT_EQ(setup.client().origin_of("mod2"), dbus::kOriginExplicit);
    EXPECT_EQ(setup.client().origin_of("mod1"), dbus::kOriginDependency);
    auto removed = setup.client().unload("mod2");
    ASSERT_TRUE(removed) << removed.error_message;
    EXPECT_EQ(*removed.value, (Names{"mod2", "mod1"}));
}

TEST(Kmodd, AModuleFileCopiedInJustBeforeALoadIsFoundWithoutWaitingForTheQuietPeriod)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    // A quiet period far longer than the calls take: a load that did not wait for the pending
    // change would find no mod2.
    ASSERT_TRUE(setup.start({"--debounce-ms", "4000", "--max-delay-ms", "8000"})) << setup.log();
    setup.tree().add("updates/dkms/mod2.ko", fixture("mod2"));
    auto loaded = setup.client().load("mod2");
    ASSERT_TRUE(loaded) << loaded.error_message << "\n" << setup.log();
    EXPECT_EQ(*loaded.value, (Names{"mod1", "mod2"}));
    EXPECT_NE(slurp(setup.tree().module_dir() / "modules.dep").find("updates/dkms/mod2.ko:"),
              std::string::npos);
}

TEST(Kmodd, ARestartWithACacheDirParsesNothingThatDidNotChange)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    const std::string cache = (setup.tree().root() / "cache").string();
    // Files changed within two seconds before a run are not trusted from its cache.
    ::sleep(3);
    ASSERT_TRUE(setup.start({"--cache-dir", cache})) << setup.log();
    auto status = setup.stop();
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();
    setup.tree().write("modules.dep", "stale\n");
    ASSERT_TRUE(setup.start({"--cache-dir", cache})) << setup.log();
    const std::string log = setup.log();
    const std::string written = "index of '" + setup.tree().version() + "' written: 2 modules";
    const size_t first = log.find(written);
    ASSERT_NE(first, std::string::npos) << log;
    EXPECT_EQ(log.find(", 2 parsed", first), log.find(", ", log.find("replaced", first)))
        << "the first start parses both: " << log;
    EXPECT_NE(log.find(", 0 parsed", log.find(written, first + 1)), std::string::npos)
        << "the second start parses none: " << log;
    auto loaded = setup.client().load("mod2");
    ASSERT_TRUE(loaded) << loaded.error_message;
    EXPECT_EQ(*loaded.value, (Names{"mod1", "mod2"}));
}

TEST(Kmodd, ARestartOnCurrentIndexFilesAnswersAtOnceThenChecksTheTreeInTheBackground)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    const std::string cache = (setup.tree().root() / "cache").string();
    ::sleep(3); // files changed within two seconds before a run are not trusted from its cache
    ASSERT_TRUE(setup.start({"--cache-dir", cache})) << setup.log();
    EXPECT_EQ(setup.client().property<bool>("IndexVerified"), true) << "a first start checks all";
    auto status = setup.stop();
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();

    // Nothing changed: the published files answer, and the check finds them current.
    ASSERT_TRUE(setup.start({"--cache-dir", cache})) << setup.log();
    auto deps = setup.client().list_deps("mod2");
    ASSERT_TRUE(deps) << deps.error_message;
    EXPECT_EQ(*deps.value, (Names{"mod1", "mod2"}));
    ASSERT_TRUE(wait_until([&] { return setup.client().property<bool>("IndexVerified") == true; }))
        << setup.log();
    std::string log = setup.log();
    EXPECT_NE(log.find("answering from the index files of '" + setup.tree().version() +
                       "' published before (2 modules"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("is current"), std::string::npos) << log;
    EXPECT_EQ(setup.client().property<uint64_t>("IndexGeneration"), 1U);
    status = setup.stop();
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << setup.log();

    // A module added while kmodd was down: the check finds it and publishes a new index.
    setup.tree().add("kernel/b/mod3.ko", fixture("mod3"));
    ASSERT_TRUE(setup.start({"--cache-dir", cache})) << setup.log();
    ASSERT_TRUE(wait_until([&] { return setup.client().property<bool>("IndexVerified") == true; }))
        << setup.log();
    log = setup.log();
    EXPECT_NE(log.find("was out of date and is written again"), std::string::npos) << log;
    EXPECT_EQ(setup.client().property<uint64_t>("IndexGeneration"), 2U);
    EXPECT_EQ(setup.client().property<uint32_t>("ModuleCount"), 3U);
    deps = setup.client().list_deps("mod3");
    ASSERT_TRUE(deps) << deps.error_message << "\n" << setup.log();
    EXPECT_NE(slurp(setup.tree().module_dir() / "modules.dep").find("kernel/b/mod3.ko:"),
              std::string::npos);
}

TEST(Kmodd, AModuleFileThatIsNoModuleIsListedAsKmodListsItButNotLoaded)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().write("kernel/a/broken.ko", "this is not an ELF file\n");
    ASSERT_TRUE(setup.start()) << setup.log();
    EXPECT_NE(slurp(setup.tree().module_dir() / "modules.dep").find("kernel/a/broken.ko:\n"),
              std::string::npos);
    EXPECT_EQ(setup.client().property<uint32_t>("ModuleCount"), 1U) << "broken.ko not counted";
    auto loaded = setup.client().load("broken");
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error_name, "org.kmodd1.Error.Failed");
    EXPECT_NE(
        loaded.error_message.find("cannot be used: '" +
                                  (setup.tree().module_dir() / "kernel/a/broken.ko").string() +
                                  "': not an ELF file"),
        std::string::npos)
        << loaded.error_message;
    EXPECT_NE(setup.log().find("broken.ko': not an ELF file; listed without dependencies"),
              std::string::npos)
        << setup.log();
}

TEST(Kmodd, RebuildRewritesFilesAnotherToolChanged)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    ASSERT_TRUE(setup.start()) << setup.log();
    SignalLog signals(setup.address());
    std::string good = slurp(setup.tree().module_dir() / "modules.dep");
    setup.tree().write("modules.dep", "garbage\n");
    auto rebuilt = setup.client().rebuild("");
    ASSERT_TRUE(rebuilt) << rebuilt.error_message;
    EXPECT_EQ(slurp(setup.tree().module_dir() / "modules.dep"), good);
    EXPECT_TRUE(signals.wait_for("IndexRebuilt " + setup.tree().version() + " 2"));
}

TEST(Kmodd, ModprobeConfigurationChangesCountAtOnceWithoutARebuild)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().add("kernel/a/mod2.ko", fixture("mod2"));
    const fs::path config = setup.tree().root() / "modprobe.d";
    fs::create_directories(config);
    ASSERT_TRUE(setup.start({"--modprobe-config", config.string()})) << setup.log();
    EXPECT_EQ(setup.client().list_deps("my-alias").error_name, dbus::kErrorNotFound);

    // Written by an editor: a temp file renamed into place.
    std::ofstream(config / ".a.conf.tmp") << "alias my-alias mod2\n";
    fs::rename(config / ".a.conf.tmp", config / "a.conf");
    EXPECT_TRUE(wait_until([&] {
        auto deps = setup.client().list_deps("my-alias");
        return deps && *deps.value == Names{"mod1", "mod2"};
    })) << setup.log();

    // Appended in place.
    std::ofstream(config / "a.conf", std::ios::app) << "blacklist mod2\n";
    // A blacklisted alias has an empty plan (as modprobe -D shows it); only then load, as a
    // load before the change would succeed.
    EXPECT_TRUE(wait_until([&] {
        auto deps = setup.client().list_deps("my-alias");
        return !deps || deps.value->empty();
    })) << setup.log();
    EXPECT_EQ(setup.client().load("my-alias").error_name, dbus::kErrorBlacklisted);
}

TEST(Kmodd, AModuleFileThatCannotBeUsedIsNamedWithTheReasonAndNotCounted)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    setup.tree().write("kernel/a/broken.ko", std::string("\x7f"
                                                         "ELF",
                                                         4) +
                                                 std::string(60, '\0'));
    ASSERT_TRUE(setup.start()) << setup.log();
    SignalLog signals(setup.address());
    auto load = setup.client().load("broken");
    EXPECT_EQ(load.error_name, dbus::kErrorFailed);
    EXPECT_NE(load.error_message.find("kernel/a/broken.ko"), std::string::npos)
        << load.error_message;
    EXPECT_EQ(setup.client().property<uint32_t>("ModuleCount"), 1U);
    ASSERT_TRUE(setup.client().rebuild(""));
    EXPECT_TRUE(signals.wait_for("IndexRebuilt " + setup.tree().version() + " 1"))
        << "the signal counts as ModuleCount does";
    EXPECT_TRUE(setup.process().is_running());
}

TEST(Kmodd, ANewKernelVersionIsIndexedWhenItAppears)
{
    DaemonSetup setup;
    ASSERT_TRUE(setup.start()) << setup.log();
    const fs::path other = setup.tree().root() / "lib/modules/6.2.0-new";
    fs::create_directories(other / "kernel/a");
    fs::copy_file(fixture("mod1"), other / "kernel/a/mod1.ko");
    fs::copy_file(fixture("mod2"), other / "kernel/a/mod2.ko");
    EXPECT_TRUE(wait_until([&] {
        return slurp(other / "modules.dep").find("kernel/a/mod2.ko: kernel/a/mod1.ko") !=
               std::string::npos;
    })) << setup.log();
}

TEST(Kmodd, AReleaseWithoutKernelFilesIsIndexedOnceModulesAreLinkedIn)
{
    // A developer's release directory: no kernel/, modules.order or modules.builtin.
    DaemonSetup setup;
    fs::remove(setup.tree().module_dir() / "kernel");
    const fs::path outside = setup.tree().root() / "home/dev";
    fs::create_directories(outside);
    fs::copy_file(fixture("mod1"), outside / "mod1.ko");
    fs::copy_file(fixture("mod2"), outside / "mod2.ko");
    ASSERT_TRUE(setup.start()) << setup.log();
    EXPECT_FALSE(setup.client().list_deps("mod1"));

    setup.tree().link("extra/mod1.ko", outside / "mod1.ko");
    EXPECT_TRUE(wait_until([&] {
        auto deps = setup.client().list_deps("mod1");
        return deps && *deps.value == Names{"mod1"};
    })) << setup.log();
    setup.tree().link("extra/mod2.ko", outside / "mod2.ko");
    EXPECT_TRUE(wait_until([&] {
        auto deps = setup.client().list_deps("mod2");
        return deps && *deps.value == (Names{"mod1", "mod2"});
    })) << setup.log();
    EXPECT_EQ(setup.client().property<uint32_t>("ModuleCount"), 2U);
    expect_same_as_kmod(setup.tree().root(), setup.tree().version());
}

TEST(Kmodd, WhenTheBusGoesAwayKmoddSaysSoAndExitsWithFailureForSystemdToRestartIt)
{
    DaemonSetup setup;
    setup.tree().add("kernel/a/mod1.ko", fixture("mod1"));
    ASSERT_TRUE(setup.start()) << setup.log();
    ASSERT_TRUE(setup.client().load("mod1")) << setup.log();
    setup.kill_bus();
    ASSERT_TRUE(wait_until([&] { return !setup.process().is_running(); })) << setup.log();
    auto status = setup.stop();
    ASSERT_TRUE(status) << setup.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) != 0) << "status " << *status;
    EXPECT_NE(setup.log().find("lost its connection to the bus"), std::string::npos) << setup.log();
    // Nothing kmodd recorded is lost: the next start knows who loaded mod1.
    EXPECT_NE(slurp(setup.state_dir() / "loaded.json").find("\"mod1\""), std::string::npos);
}

} // namespace
} // namespace kmodd::daemon::test
