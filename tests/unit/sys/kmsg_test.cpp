// SPDX-License-Identifier: LGPL-2.1-or-later
// Reading the kernel's log about one insertion (sys/kmsg.hpp).
#include "sys/kmsg.hpp"

#include <gtest/gtest.h>

namespace kmodd::sys {
namespace {

TEST(Kmsg, ARecordsTextIsWhatFollowsTheHeaderUpToItsDictionary)
{
    EXPECT_EQ(kmsg_record_text("6,1234,5678,-;dev_a: live with level 1\n"),
              "dev_a: live with level 1");
    EXPECT_EQ(kmsg_record_text("3,99,1,c;dev_nosym: Unknown symbol x (err -2)\n SUBSYSTEM=a\n"),
              "dev_nosym: Unknown symbol x (err -2)");
    EXPECT_EQ(kmsg_record_text("4,1,2,-;text with a ; inside\n"), "text with a ; inside");
    EXPECT_EQ(kmsg_record_text("no header at all"), "");
    EXPECT_EQ(kmsg_record_text("6,1,2,-;"), "");
}

TEST(Kmsg, TheModulesOwnLinesAndTheLoadersUnprefixedOnesAreKept)
{
    const std::vector<std::string> log = {
        "dev_a: `notanumber' invalid for parameter `level'",
        "e1000: eth0 NIC Link is Up 1000 Mbps", // another driver, meanwhile
        "Loading of unsigned module is rejected",
        "Lockdown: kmodctl: unsigned module loading is restricted; see man kernel_lockdown.7",
        "dev_ab: a module whose name starts the same",
        "dev_a:no blank after the colon",
    };
    EXPECT_EQ(messages_about_module(log, "dev_a"),
              (std::vector<std::string>{
                  "dev_a: `notanumber' invalid for parameter `level'",
                  "Loading of unsigned module is rejected",
                  "Lockdown: kmodctl: unsigned module loading is restricted; see man "
                  "kernel_lockdown.7",
                  "dev_a:no blank after the colon",
              }));
}

TEST(Kmsg, ALogThatCannotBeOpenedReadsAsEmpty)
{
    KmsgCursor missing("/nonexistent/kmsg");
    EXPECT_TRUE(missing.read().empty());
    // A regular file: placed at its end, nothing follows.
    KmsgCursor file("/proc/self/status");
    EXPECT_TRUE(file.read().empty());
}

} // namespace
} // namespace kmodd::sys
