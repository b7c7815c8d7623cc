// SPDX-License-Identifier: LGPL-2.1-or-later
#pragma once

namespace kmodd::client {

/// `kmodctl depmod [options] [version]`, also run when the binary is invoked as `depmod`:
/// kmod's depmod command line, run in-process. Returns the exit status.
int run_depmod(int argc, char** argv);

/// `kmodctl modprobe [options] NAME...`, also run when invoked as `modprobe`: kmod's
/// modprobe command line, run in-process (the real kernel, or --sandbox-kernel DIR).
int run_modprobe(int argc, char** argv);

} // namespace kmodd::client
