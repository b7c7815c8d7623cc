// SPDX-License-Identifier: LGPL-2.1-or-later
// kmodctl's D-Bus commands as a user runs them: the built binary against the stand-in Manager
// of dbus/tests/test_bus.hpp, served under org.kmodd1 on a private dbus-daemon.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include "child_process.hpp"
#include "kmodd_dbus_names.hpp"
#include "sdbus_compat.hpp"
#include "temp_tree.hpp"
#include "test_bus.hpp"

namespace {

using namespace std::chrono_literals;
using kmodd::dbus::test::FakeManager;
using kmodd::dbus::test::PollLoop;
using kmodd::dbus::test::PrivateBus;
using kmodd::test::ChildProcess;
using kmodd::test::Outcome;
using kmodd::test::run_process;
using nlohmann::json;
namespace names = kmodd::dbus;
namespace fs = std::filesystem;

const std::string kKmodctl = KMODD_KMODCTL;

std::vector<std::string> command_line(std::vector<std::string> args)
{
    args.insert(args.begin(), kKmodctl);
    return args;
}

size_t count_lines(const std::string& text)
{
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// A failure reported the way kmodctl promises: status 1, nothing on stdout, one line on
/// stderr that starts with "kmodctl: ".
void expect_one_error_line(const Outcome& outcome)
{
    EXPECT_EQ(outcome.status, 1) << outcome.err;
    EXPECT_EQ(outcome.out, "");
    EXPECT_EQ(count_lines(outcome.err), 1U) << outcome.err;
    EXPECT_EQ(outcome.err.rfind("kmodctl: ", 0), 0U) << outcome.err;
}

class KmodctlDbus : public ::testing::Test {
protected:
    KmodctlDbus() : server_connection_(sdbus::createSessionBusConnectionWithAddress(bus_.address()))
    {
        kmodd::dbus::request_name(*server_connection_, names::kBusName);
        manager_ = std::make_unique<FakeManager>(*server_connection_);
        loop_ = std::make_unique<PollLoop>(*server_connection_);
    }

    ~KmodctlDbus() override
    {
        loop_.reset(); // stops serving before the object goes away
        manager_.reset();
    }

    /// Runs `kmodctl --bus ADDRESS args...` to its end.
    Outcome kmodctl(std::vector<std::string> args) const
    {
        args.insert(args.begin(), {"--bus", bus_.address()});
        return run_process(command_line(std::move(args)));
    }

    /// Starts `kmodctl --bus ADDRESS args...` and leaves it running.
    std::unique_ptr<ChildProcess> start_kmodctl(std::vector<std::string> args) const
    {
        args.insert(args.begin(), {"--bus", bus_.address()});
        return std::make_unique<ChildProcess>(command_line(std::move(args)));
    }

    /// Runs `task` on the server's loop thread (where the FakeManager lives) and waits.
    void on_server(const std::function<void()>& task)
    {
        std::promise<void> done;
        loop_->post([&] {
            task();
            done.set_value();
        });
        ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
    }

    /// Another client of kmodd, calling without an event loop of its own.
    sdbus::IProxy& other_client()
    {
        if (!client_connection_) {
            client_connection_ = sdbus::createSessionBusConnectionWithAddress(bus_.address());
            client_ =
                kmodd::dbus::create_proxy(*client_connection_, names::kBusName, names::kObjectPath);
        }
        return *client_;
    }

    void load_from_other_client(const std::string& module)
    {
        std::vector<std::string> inserted;
        other_client()
            .callMethod("Load")
            .onInterface(names::kInterfaceName)
            .withArguments(module, std::string())
            .storeResultsTo(inserted);
    }

    /// Loads `probe` from another client until `monitor` has printed `line`: from then on
    /// the monitor's subscriptions are in place and nothing is lost.
    void wait_until_monitoring(ChildProcess& monitor, const std::string& line)
    {
        for (int attempt = 0; attempt < 50; ++attempt) {
            load_from_other_client("probe");
            if (monitor.read_stdout_until(line, 200ms))
                return;
        }
        FAIL() << "the monitor printed no signal within 10 s; its output: " << monitor.out();
    }

    PrivateBus bus_;
    std::unique_ptr<sdbus::IConnection> server_connection_;
    std::unique_ptr<FakeManager> manager_;
    std::unique_ptr<PollLoop> loop_;
    std::unique_ptr<sdbus::IConnection> client_connection_;
    std::unique_ptr<sdbus::IProxy> client_;
};

TEST_F(KmodctlDbus, LoadPrintsTheInsertedModulesOneALine)
{
    Outcome outcome = kmodctl({"load", "mod2", "debug=1", "msg=a b"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod2\n");
    EXPECT_EQ(outcome.err, "");
    // The parameters travel as one string, a value with a blank quoted as modprobe does.
    on_server([&] { EXPECT_EQ(manager_->last_params, "debug=1 msg=\"a b\""); });
}

TEST_F(KmodctlDbus, LoadWithJsonPrintsTheInsertedModulesAsAnArray)
{
    Outcome outcome = kmodctl({"load", "mod2", "--json"});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(json::parse(outcome.out),
              json::parse(R"({"inserted": ["mod1", "mod2"], "diagnosis": {"module": "mod2",
                              "loaded": true, "warnings": []}})"));
}

TEST_F(KmodctlDbus, LoadPrintsTheWarningsOfASuccessfulLoad)
{
    Outcome outcome = kmodctl({"load", "mod2", "nosuch=1"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod2\n");
    EXPECT_EQ(outcome.err, "kmodctl: warning: mod2: unknown parameter 'nosuch': the kernel "
                           "ignores it\n");
}

TEST_F(KmodctlDbus, LoadOfAMissingModuleFailsWithTheDaemonsMessage)
{
    Outcome outcome = kmodctl({"load", "missing"});
    expect_one_error_line(outcome);
    EXPECT_EQ(outcome.err, "kmodctl: Module 'missing' not found.\n");
}

TEST_F(KmodctlDbus, UnloadPrintsTheRemovedModules)
{
    Outcome outcome = kmodctl({"unload", "mod2"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod2\nmod1\n");
    outcome = kmodctl({"unload", "mod2", "--json"});
    EXPECT_EQ(json::parse(outcome.out), json::parse(R"({"removed": ["mod2", "mod1"]})"));
}

TEST_F(KmodctlDbus, UnloadOfABusyModuleReportsThatItIsInUse)
{
    Outcome outcome = kmodctl({"unload", "busy"});
    expect_one_error_line(outcome);
    EXPECT_EQ(outcome.err, "kmodctl: Module 'busy' is in use.\n");
}

TEST_F(KmodctlDbus, DepsPrintsTheLoadPlanInOrder)
{
    Outcome outcome = kmodctl({"deps", "mod3"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
    outcome = kmodctl({"deps", "mod3", "--json"});
    EXPECT_EQ(json::parse(outcome.out), json::parse(R"({"modules": ["mod1", "mod3"]})"));
    expect_one_error_line(kmodctl({"deps", "missing"}));
}

TEST_F(KmodctlDbus, TheFrontAnswersDepsByItselfAndHandsEverythingElseToTheTools)
{
    // A copy of the front with no kmodctl-tools beside it: deps is answered all the same.
    kmodd::test::TempTree dir;
    const std::string front = (dir.root() / "kmodctl").string();
    fs::copy_file(kKmodctl, front);
    Outcome outcome = run_process({front, "--bus", bus_.address(), "deps", "mod3"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
    // Whatever it does not answer goes to the tools, which are not there (unless installed).
    outcome = run_process({front, "--bus", bus_.address(), "deps", "missing"});
    if (!fs::exists(KMODD_INSTALLED_TOOLS)) {
        EXPECT_EQ(outcome.status, 1);
        EXPECT_NE(outcome.err.find("kmodctl: cannot run "), std::string::npos) << outcome.err;
    }
    // Beside the tools (the build tree), an error reply is told as the tools tell it.
    outcome = kmodctl({"deps", "missing"});
    expect_one_error_line(outcome);
    EXPECT_EQ(outcome.err, "kmodctl: Module 'missing' not found.\n");
    outcome = kmodctl({"--version"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out.rfind("kmodctl ", 0), 0U) << outcome.out;
}

TEST_F(KmodctlDbus, ListLooksLikeLsmodWithTheOriginAtTheEndOfEachLine)
{
    Outcome outcome = kmodctl({"list"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    // lsmod's "%-19s %8lu  %d" and its holders column, then "  [origin]".
    EXPECT_EQ(outcome.out, "Module                  Size  Used by\n"
                           "mod1                   16384  1 mod2  [dependency]\n"
                           "mod2                    8192  0  [explicit]\n");
}

TEST_F(KmodctlDbus, ListWithJsonHasEveryFieldOfEveryModule)
{
    Outcome outcome = kmodctl({"list", "--json"});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    json modules = json::parse(outcome.out);
    ASSERT_TRUE(modules.is_array());
    ASSERT_EQ(modules.size(), 2U);
    for (const auto& module : modules) {
        for (const char* key : {"name", "size", "refcount", "holders", "origin"})
            EXPECT_TRUE(module.contains(key)) << key << " in " << module;
    }
    const json first = json::parse(R"({"name": "mod1", "size": 16384, "refcount": 1,
                                       "holders": ["mod2"], "origin": "dependency"})");
    EXPECT_EQ(modules[0], first);
    EXPECT_EQ(modules[1]["holders"], json::array());
    EXPECT_EQ(modules[1]["origin"], "explicit");
}

TEST_F(KmodctlDbus, InfoPrintsModinfoStyleLines)
{
    Outcome outcome = kmodctl({"info", "mod2"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "filename:       /lib/modules/6.1.0-test/extra/mod2.ko\n"
                           "alias:          pci:v00001234d*\n"
                           "name:           mod2\n"
                           "parm:           debug:Debug level (0-3) (int)\n");
}

TEST_F(KmodctlDbus, InfoWithJsonMapsEveryKey)
{
    Outcome outcome = kmodctl({"info", "mod2", "--json"});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    // The delimiter keeps ')"' in the description from ending the raw string.
    const json expected = json::parse(R"json({
        "name": "mod2",
        "path": "/lib/modules/6.1.0-test/extra/mod2.ko",
        "aliases": ["pci:v00001234d*"],
        "builtin": false,
        "parameters": [{"name": "debug", "type": "int", "description": "Debug level (0-3)"}]
    })json");
    EXPECT_EQ(json::parse(outcome.out), expected);
}

TEST_F(KmodctlDbus, StatusWithJsonReportsTheDaemonsProperties)
{
    Outcome outcome = kmodctl({"status", "--json"});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    json status = json::parse(outcome.out);
    EXPECT_EQ(status["kernel_release"], "6.1.0-test");
    EXPECT_EQ(status["modules"], 3);
    EXPECT_EQ(status["generation"], 7);
    EXPECT_EQ(status["index_verified"], true);
    EXPECT_EQ(status["last_rebuild_usec"], std::uint64_t{1700000000000000});
    EXPECT_EQ(status["last_rebuild_duration_usec"], 18000);
    const json devices = json::parse(R"([{"syspath": "/sys/devices/pci0000:00/0000:00:1f.3",
                                          "modalias": "pci:v00008086d0000A348sv*"}])");
    EXPECT_EQ(status["waiting_devices"], devices);

    on_server([&] { manager_->set_module_count(9); });
    EXPECT_EQ(json::parse(kmodctl({"--json", "status"}).out)["modules"], 9);
}

TEST_F(KmodctlDbus, StatusPrintsOneNameAndValueALine)
{
    Outcome outcome = kmodctl({"status"});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    for (const char* line :
         {"Kernel release:   6.1.0-test\n", "Modules:          3\n", "Index generation: 7\n",
          "Index verified:   yes\n", "Waiting devices:  1\n",
          "  /sys/devices/pci0000:00/0000:00:1f.3 pci:v00008086d0000A348sv*\n"})
        EXPECT_NE(outcome.out.find(line), std::string::npos) << line << "in:\n" << outcome.out;
    // Local time, which the test cannot know, then the duration.
    EXPECT_NE(outcome.out.find("Last rebuild:     "), std::string::npos) << outcome.out;
    EXPECT_NE(outcome.out.find(", took 18.0 ms\n"), std::string::npos) << outcome.out;
}

TEST_F(KmodctlDbus, RebuildPrintsNothingOnSuccess)
{
    Outcome outcome = kmodctl({"rebuild"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "");
    EXPECT_EQ(outcome.err, "");
    EXPECT_EQ(kmodctl({"rebuild", "6.1.0-other"}).status, 0);
}

TEST_F(KmodctlDbus, MonitorPrintsALinePerSignalUntilSigterm)
{
    const std::string probe_line = "ModuleLoaded probe\n";
    auto monitor = start_kmodctl({"monitor"});
    ASSERT_NO_FATAL_FAILURE(wait_until_monitoring(*monitor, probe_line));
    load_from_other_client("mod7");
    EXPECT_TRUE(monitor->read_stdout_until("ModuleLoaded mod7\n", 5s)) << monitor->out();
    other_client()
        .callMethod("Rebuild")
        .onInterface(names::kInterfaceName)
        .withArguments(std::string("6.1.0"));
    other_client()
        .callMethod("Unload")
        .onInterface(names::kInterfaceName)
        .withArguments(std::string("mod7"));
    EXPECT_TRUE(monitor->read_stdout_until("ModuleUnloaded mod1\n", 5s)) << monitor->out();

    monitor->send_signal(SIGTERM);
    Outcome outcome = monitor->finish();
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.err, "");
    // Everything after the last probe, in the order kmodd sent it.
    EXPECT_EQ(outcome.out.substr(outcome.out.rfind(probe_line) + probe_line.size()),
              "ModuleLoaded mod1\n"
              "ModuleLoaded mod7\n"
              "IndexRebuilt 6.1.0 modules=3 duration_usec=18000\n"
              "ModuleUnloaded mod7\n"
              "ModuleUnloaded mod1\n");
}

TEST_F(KmodctlDbus, MonitorWithJsonPrintsOneObjectALineUntilSigint)
{
    auto monitor = start_kmodctl({"monitor", "--json"});
    const std::string probe_line = R"({"module":"probe","signal":"ModuleLoaded"})";
    ASSERT_NO_FATAL_FAILURE(wait_until_monitoring(*monitor, probe_line));
    on_server([&] { manager_->set_module_count(4); });
    ASSERT_TRUE(monitor->read_until(
        [&] {
            const std::string& out = monitor->out();
            return out.find("PropertiesChanged") != std::string::npos && out.back() == '\n';
        },
        5s))
        << monitor->out();

    monitor->send_signal(SIGINT);
    Outcome outcome = monitor->finish();
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    std::vector<json> objects;
    size_t start = 0;
    for (size_t end = outcome.out.find('\n'); end != std::string::npos;
         start = end + 1, end = outcome.out.find('\n', start))
        objects.push_back(json::parse(outcome.out.substr(start, end - start)));
    ASSERT_GE(objects.size(), 3U);
    EXPECT_EQ(objects[objects.size() - 3],
              json::parse(R"({"signal": "ModuleLoaded", "module": "mod1"})"));
    EXPECT_EQ(objects[objects.size() - 2],
              json::parse(R"({"signal": "ModuleLoaded", "module": "probe"})"));
    const json changed = json::parse(R"({"signal": "PropertiesChanged",
                                         "changed": {"ModuleCount": 4}, "invalidated": []})");
    EXPECT_EQ(objects.back(), changed);
}

TEST_F(KmodctlDbus, TheBusOptionWorksBeforeOrAfterTheCommandAndInEitherSpelling)
{
    Outcome outcome = run_process(command_line({"deps", "mod3", "--bus=" + bus_.address()}));
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
    outcome = run_process(command_line({"deps", "--bus", bus_.address(), "mod3"}));
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
}

TEST_F(KmodctlDbus, WithoutABusOptionKmodctlAsksOnTheSystemBus)
{
    // sd-bus finds the system bus through DBUS_SYSTEM_BUS_ADDRESS; point it at ours.
    Outcome outcome =
        run_process(command_line({"deps", "mod3"}), {{"DBUS_SYSTEM_BUS_ADDRESS", bus_.address()}});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
    outcome = run_process(command_line({"--bus", "session", "deps", "mod3"}),
                          {{"DBUS_SESSION_BUS_ADDRESS", bus_.address()}});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out, "mod1\nmod3\n");
}

TEST(KmodctlWithoutDaemon, ABusWithoutKmoddGivesAnErrorSayingItIsNotRunning)
{
    PrivateBus bus;
    for (const char* command : {"list", "status", "load"}) {
        std::vector<std::string> args{kKmodctl, "--bus", bus.address(), command};
        if (std::string(command) == "load")
            args.emplace_back("mod1");
        Outcome outcome = run_process(args);
        expect_one_error_line(outcome);
        EXPECT_NE(outcome.err.find("kmodd is not running on the bus at " + bus.address()),
                  std::string::npos)
            << outcome.err;
    }
}

TEST(KmodctlWithoutDaemon, MonitorWaitsForKmoddAndHearsItOnceItRuns)
{
    PrivateBus bus;
    ChildProcess monitor({kKmodctl, "--bus", bus.address(), "monitor"});
    // The note comes once the monitor has subscribed: nothing kmodd sends from now on is lost.
    ASSERT_TRUE(monitor.read_until([&] { return count_lines(monitor.err()) == 1; }, 10s))
        << monitor.err();
    EXPECT_NE(monitor.err().find("kmodd is not running on the bus at " + bus.address()),
              std::string::npos)
        << monitor.err();

    auto server_connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    kmodd::dbus::request_name(*server_connection, names::kBusName);
    FakeManager manager(*server_connection);
    PollLoop loop(*server_connection); // declared last: stops serving before the rest goes
    auto client_connection = sdbus::createSessionBusConnectionWithAddress(bus.address());
    auto client =
        kmodd::dbus::create_proxy(*client_connection, names::kBusName, names::kObjectPath);
    std::vector<std::string> inserted;
    client->callMethod("Load")
        .onInterface(names::kInterfaceName)
        .withArguments(std::string("late"), std::string())
        .storeResultsTo(inserted);
    EXPECT_TRUE(monitor.read_stdout_until("ModuleLoaded mod1\nModuleLoaded late\n", 5s))
        << monitor.out();

    monitor.send_signal(SIGTERM);
    Outcome outcome = monitor.finish();
    EXPECT_EQ(outcome.status, 0);
    EXPECT_EQ(count_lines(outcome.err), 1U) << outcome.err;
}

TEST(KmodctlWithoutDaemon, ABusThatCannotBeReachedGivesAnErrorSayingKmoddIsNotReachable)
{
    Outcome outcome = run_process({kKmodctl, "--bus", "unix:path=/nonexistent/kmodd/bus", "list"});
    expect_one_error_line(outcome);
    EXPECT_NE(outcome.err.find("kmodd is not reachable"), std::string::npos) << outcome.err;
    EXPECT_NE(outcome.err.find("unix:path=/nonexistent/kmodd/bus"), std::string::npos)
        << outcome.err;
}

TEST(KmodctlFront, HandsKmodsToolsToKmodctlLocalWhichMapsNoDbusLibrary)
{
    // A copy of the front with kmodctl-local beside it and no kmodctl-tools: kmod's tools run.
    kmodd::test::TempTree dir;
    const std::string front = (dir.root() / "kmodctl").string();
    fs::copy_file(kKmodctl, front);
    fs::create_symlink(KMODD_KMODCTL_LOCAL, dir.root() / "kmodctl-local");
    Outcome outcome = run_process({front, "depmod", "--version"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out.rfind("kmodd depmod version ", 0), 0U) << outcome.out;
    outcome = run_process({front, "modprobe", "--version"});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_EQ(outcome.out.rfind("kmodctl ", 0), 0U) << outcome.out;
    // Anything else is still kmodctl-tools' (missing here, unless installed).
    outcome = run_process({front, "--bus", "session", "depmod"});
    if (!fs::exists(KMODD_INSTALLED_TOOLS))
        EXPECT_NE(outcome.err.find("kmodctl: cannot run "), std::string::npos) << outcome.err;
    else
        EXPECT_EQ(outcome.status, 2) << outcome.err;
    // What kmodctl-local saves is the mapping of these (and of what they need): it has neither.
    outcome = run_process({"/usr/bin/ldd", KMODD_KMODCTL_LOCAL});
    ASSERT_EQ(outcome.status, 0) << outcome.err;
    EXPECT_NE(outcome.out.find("libc.so"), std::string::npos) << outcome.out;
    for (const char* library : {"libsdbus-c++", "libsystemd"})
        EXPECT_EQ(outcome.out.find(library), std::string::npos) << library << ": " << outcome.out;
}

TEST(KmodctlUsage, BadCommandLinesExitWithStatus2AndAUsageLine)
{
    const std::vector<std::vector<std::string>> bad = {
        {},
        {"frobnicate"},
        {"load"},
        {"unload", "a", "b"},
        {"list", "extra"},
        {"list", "--verbose"},
        {"--bus", "nowhere", "list"},
        {"list", "--bus"},
        {"--bus", "session", "depmod"},
    };
    for (const auto& args : bad) {
        Outcome outcome = run_process(command_line(args));
        std::string shown = args.empty() ? "(nothing)" : args[0];
        EXPECT_EQ(outcome.status, 2) << shown << ": " << outcome.err;
        EXPECT_EQ(outcome.out, "") << shown;
        EXPECT_EQ(outcome.err.rfind("kmodctl: ", 0) == 0 || outcome.err.rfind("Usage: ", 0) == 0,
                  true)
            << shown << ": " << outcome.err;
    }
    EXPECT_NE(run_process(command_line({"frobnicate"})).err.find("Usage: kmodctl"),
              std::string::npos);
    std::string missing_module = run_process(command_line({"load"})).err;
    EXPECT_NE(missing_module.find("Usage: kmodctl [--bus system|session|ADDRESS] load MODULE"),
              std::string::npos)
        << missing_module;

    Outcome help = run_process(command_line({"--help"}));
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("monitor"), std::string::npos);
}

} // namespace
