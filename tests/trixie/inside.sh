#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the Debian 13 root that tests/trixie/run.sh prepared: installs what the package
# list gained since the root was made, builds kmodd (-Werror) and runs ctest with the arguments.
#
# Usage (by run.sh): inside.sh PACKAGES CTEST_ARGS...   (PACKAGES comma-separated)
#                   inside.sh PACKAGES --deb          builds the .deb (packaging/build-deb.sh),
#                                                     installs and purges it
#                                                     (packaging/check-install.sh)
set -eu
packages=$1
shift
if [ "$(cat /.kmodd-packages 2>/dev/null)" != "$packages" ]; then
    echo "trixie: installing what the package list gained"
    apt-get update -qq
    # shellcheck disable=SC2046 # one argument per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        $(printf '%s' "$packages" | tr ',' ' ') >/dev/null
    printf '%s\n' "$packages" >/.kmodd-packages
fi
if [ "${1:-}" = --deb ]; then
    KMODD_DEB_OUT=/build/deb /src/packaging/build-deb.sh
    exec /src/packaging/check-install.sh "$(ls /build/deb/kmodd_*_amd64.deb)"
fi
started=$(date +%s)
# Debian 13's kernel comes with its modules compressed (.ko.xz): no compressed copies.
cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMODD_WERROR=ON \
    -DKMODD_ORACLE_FLAVOURS=amd64 -DKMODD_ORACLE_COMPRESSIONS= -DKMODD_TRIXIE_TESTS=OFF -DKMODD_SYSTEM_TESTS=OFF >/dev/null
cmake --build /build -j "$(nproc)"
built=$(date +%s)
echo "trixie: build took $((built - started)) s"
cd /build
status=0
ctest --output-on-failure -j "$(nproc)" "$@" || status=$?
echo "trixie: ctest $* took $(($(date +%s) - built)) s"
exit "$status"
