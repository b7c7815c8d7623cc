// SPDX-License-Identifier: LGPL-2.1-or-later
// What the stress tests share: their settings from the environment, the cached Debian tree
// copied (hard links) under kmodd's temporary root.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "daemon_harness.hpp"

namespace kmodd::daemon::test {

/// The environment variable `name`, or `fallback`.
inline std::string environment(const char* name, const char* fallback = "")
{
    const char* value = std::getenv(name);
    return value != nullptr ? value : fallback;
}

/// The one release under `source`/lib/modules ("" when there is none).
inline std::string release_of(const fs::path& source)
{
    std::string version;
    if (fs::is_directory(source / "lib/modules")) {
        for (const auto& entry : fs::directory_iterator(source / "lib/modules"))
            version = entry.path().filename().string(); // the cached trees hold one release
    }
    return version;
}

/// Replaces `setup`'s module dir by hard links to `source`'s release and makes extra/;
/// stores in `sample` its drivers/net/dummy.ko (compressed or not), the module the tests
/// link in and out. Use with ASSERT_NO_FATAL_FAILURE.
inline void copy_tree(const DaemonSetup& setup, const fs::path& source, std::string& sample)
{
    const fs::path module_dir = setup.tree().module_dir();
    fs::remove_all(module_dir);
    ASSERT_EQ(std::system(("cp -al '" + (source / "lib/modules" / setup.tree().version()).string() +
                           "' '" + module_dir.string() + "'")
                              .c_str()),
              0);
    for (const auto& entry : fs::recursive_directory_iterator(module_dir / "kernel/drivers/net")) {
        if (entry.path().filename().string().starts_with("dummy.ko")) {
            sample = entry.path().string();
            break;
        }
    }
    ASSERT_FALSE(sample.empty()) << "the tree has no drivers/net/dummy.ko";
    fs::create_directories(module_dir / "extra");
}

} // namespace kmodd::daemon::test
