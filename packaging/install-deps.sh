#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what building and testing kmodd needs on Debian 12. Idempotent: packages already
# present are not fetched again, and apt's lists are refreshed only when something is missing.
set -eu

packages="cmake ninja-build g++ gcc pkg-config file
libelf-dev libsdbus-c++-dev libsdbus-c++-bin libudev-dev libsystemd-dev libspdlog-dev nlohmann-json3-dev
libgtest-dev libgmock-dev googletest libexpected-dev liblzma-dev libzstd-dev zlib1g-dev
kmod xz-utils zstd gzip gcc-s390x-linux-gnu dbus-daemon libxml2-utils"
for option in "$@"; do
    case $option in
    # mmdebstrap: the Debian roots of tests/system and tests/trixie; make and openssl: the
    # out-of-tree modules of tests/vm/devmods (which installs the kernel's headers itself).
    --with-vm) packages="$packages qemu-system-x86 busybox-static cpio dbus-system-bus-common mmdebstrap make openssl" ;;
    --with-lint) packages="$packages clang-format clang-tidy shellcheck git" ;;
    --with-deb) packages="$packages build-essential debhelper dpkg-dev lintian git" ;;
    # clang with libFuzzer's runtime: tests/fuzz/run.sh.
    --with-fuzz) packages="$packages clang libclang-rt-dev" ;;
    # The Cockpit page in a real browser: tests/browser.
    --with-browser) packages="$packages cockpit-ws cockpit-bridge chromium chromium-driver python3-selenium" ;;
    *) echo "usage: $0 [--with-vm] [--with-lint] [--with-deb] [--with-fuzz] [--with-browser]" >&2 && exit 2 ;;
    esac
done

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
