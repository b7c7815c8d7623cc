#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what is missing, builds kmodd twice (warnings as errors; ASan+UBSan), checks the
# style (tests/lint.sh) and runs every test: unit and integration tests in both builds, the
# oracle tests against kmod's tools on Debian's real kernel trees and the vm tests (Debian's
# kernel under qemu) in the optimised build; the .deb, installed on a whole Debian 12 system
# under qemu (label system); then all of them again on Debian 13 (label trixie: a cached
# Debian 13 root, kmod 34, Linux 6.12).
set -eu
cd "$(dirname "$0")/.."

# --with-vm before configuring: CMake looks for qemu.
./packaging/install-deps.sh --with-vm --with-lint --with-deb --with-browser

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMODD_WERROR=ON \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build build -j "$jobs"

echo "== the style: clang-format, shellcheck, clang-tidy"
./tests/lint.sh build
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKMODD_WERROR=ON -DKMODD_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"

echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (unit, integration)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L 'unit|integration' --output-on-failure -j "$jobs"

echo "== all tests (unit, integration, oracle, vm)"
ctest --test-dir build --output-on-failure -j "$jobs" -LE 'trixie|system|fuzz|long'

echo "== the Debian package: built, lintian, installed on Debian 12 under systemd (label system)"
# Each scenario boots a guest of its own (one core each); the package build runs alone.
ctest --test-dir build --output-on-failure -j "$jobs" -L system

echo "== Debian 13: the build and the tests in a Debian 13 root (tests/trixie/run.sh)"
ctest --test-dir build --output-on-failure -L trixie

echo "== the README's main command, once through its story"
KMODD_DEMO_DIR=$(mktemp -d /tmp/kmodd-demo.XXXXXX) ./packaging/demo.sh --once >/dev/null
