// SPDX-License-Identifier: LGPL-2.1-or-later
// The names of kmod's tools that kmodctl runs in-process. One list for the front, which hands
// them to kmodctl-local, and for the two programs that run them (find_kmod_tool()).
#pragma once

#include <string_view>

namespace kmodd::client {

inline constexpr std::string_view kKmodToolNames[] = {"depmod", "modprobe", "lsmod", "insmod",
                                                      "rmmod",  "modinfo",  "kmod"};

} // namespace kmodd::client
