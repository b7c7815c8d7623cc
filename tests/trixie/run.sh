#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds kmodd with -Werror in a Debian 13 ("trixie") root file system (GCC 14, sdbus-c++ 2.1,
# kmod 34, Linux 6.12 with .ko.xz modules) and runs ctest there (tests/trixie/inside.sh). The
# root is made once with mmdebstrap from Debian's archive and cached (about 3 min, 700 MB);
# the source tree is bind-mounted, the build and the test caches (Debian 13's kernel package
# for the oracle and vm tests) stay in the root.
#
# Usage: tests/trixie/run.sh [CTEST_ARGS...]   (default: -L unit)
#        tests/trixie/run.sh --deb            the .deb: built, lintian, installed, purged
# Environment: KMODD_TRIXIE_ROOT (default ${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/trixie/root)
# Needs root (chroot, mounts in a private mount namespace).
set -eu
cd "$(dirname "$0")/../.."
src=$(pwd)
root=${KMODD_TRIXIE_ROOT:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/trixie/root}
packages="cmake,ninja-build,g++,gcc,pkg-config,file,libelf-dev,libsdbus-c++-dev,libsdbus-c++-bin"
packages="$packages,libudev-dev,libsystemd-dev,libspdlog-dev,nlohmann-json3-dev,libgtest-dev"
packages="$packages,libgmock-dev,googletest,libexpected-dev,liblzma-dev,libzstd-dev,zlib1g-dev"
packages="$packages,kmod,xz-utils,zstd,gzip,dbus-daemon,libxml2-utils,ca-certificates"
packages="$packages,systemd,util-linux,procps"
# For the vm tests: qemu and what run-scenario.sh puts in the initramfs.
packages="$packages,qemu-system-x86,busybox-static,cpio,dbus-system-bus-common,binutils"
# For the out-of-tree modules of tests/vm/devmods (it installs the kernel's headers itself).
packages="$packages,make,openssl"

if [ ! -f "$root/etc/debian_version" ]; then
    command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap
    rm -rf "$root.tmp"
    mkdir -p "$(dirname "$root")"
    mmdebstrap --variant=minbase --include="$packages" trixie "$root.tmp" \
        http://deb.debian.org/debian
    printf '%s\n' "$packages" >"$root.tmp/.kmodd-packages"
    mv "$root.tmp" "$root"
fi
mkdir -p "$root/src" "$root/build"
[ $# -gt 0 ] || set -- -L unit
# /tmp stays the root's own (not a tmpfs): tests hard-link between it and the cache.
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private sh -c '
    root=$1 src=$2
    shift 2
    mount --bind "$src" "$root/src"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    exec chroot "$root" /src/tests/trixie/inside.sh "$@"
' sh "$root" "$src" "$packages" "$@"
