#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds kmodd's Debian package from the working tree (packaging/debian is its debian/):
# build/deb/kmodd_<version>_<arch>.deb (and the -dbgsym package, .buildinfo and .changes),
# then runs lintian on the .changes and fails on any error or warning. The package build runs
# the unit tests (DEB_BUILD_OPTIONS=nocheck neither builds nor runs them).
#
# Usage: packaging/build-deb.sh
# Environment: KMODD_DEB_OUT, where the results go (default: build/deb of the tree).
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
./packaging/install-deps.sh --with-deb

version=$(sed -n 's/^project(kmodd VERSION \([^ ]*\) .*/\1/p' CMakeLists.txt)
deb_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$version" != "$deb_version" ]; then
    echo "build-deb: CMake says $version, packaging/debian/changelog $deb_version" >&2
    exit 1
fi

out=${KMODD_DEB_OUT:-$src/build/deb}
tree=$out/kmodd-$version
rm -rf "$out"
mkdir -p "$tree"
# The files git tracks, as they are in the working tree (or everything but the build trees).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$tree"
else
    tar --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$tree"
fi
cp -r packaging/debian "$tree/debian"
# Every CPU, unless DEB_BUILD_OPTIONS says otherwise (debhelper reads parallel=N from it).
case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc)" ;;
esac
export DEB_BUILD_OPTIONS
(cd "$tree" && dpkg-buildpackage -us -uc -b)
rm -rf "$tree"
echo "== lintian"
lintian --fail-on error,warning --info "$out"/kmodd_"$version"_*.changes
ls -l "$out"
