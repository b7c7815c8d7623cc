#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs a built kmodd .deb with dpkg -i, checks what it installed, then purges it and checks
# that nothing is left that was not there before (as piuparts does). Meant for a throw-away
# root (tests/trixie's); it changes the system it runs on.
#
# Usage: packaging/check-install.sh KMODD_DEB
set -eu
[ $# -eq 1 ] || { echo "usage: $0 KMODD_DEB" >&2; exit 2; }
deb=$1
status=0
fail() { echo "FAIL: $*"; status=1; }

snapshot() {
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /src -o -path /build \
        -o -path /tmp -o -path /var/cache -o -path /var/log -o -path /var/lib/dpkg \
        -o -path /var/lib/apt -o -path /run \) -prune -o -print | LC_ALL=C sort
}

before=$(snapshot)
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null || fail "installing $deb failed"
for file in /usr/sbin/kmodd /usr/bin/kmodctl /usr/libexec/kmodd/kmodctl-tools \
    /usr/libexec/kmodd/kmodctl-local /usr/libexec/kmodd/depmod \
    /usr/libexec/kmodd/modprobe /usr/libexec/kmodd/lsmod /usr/libexec/kmodd/insmod \
    /usr/libexec/kmodd/rmmod /usr/libexec/kmodd/modinfo /usr/libexec/kmodd/kmod /usr/share/man/man8/kmodd.8.gz \
    /usr/share/dbus-1/system.d/org.kmodd1.conf /usr/share/polkit-1/actions/org.kmodd1.policy \
    /usr/share/cockpit/kmodd/manifest.json /usr/share/cockpit/kmodd/index.html; do
    [ -e "$file" ] || fail "$file is not installed"
done
unit=$(dpkg -L kmodd | grep '/kmodd.service$' || true)
[ -n "$unit" ] || fail "no kmodd.service in the package"
version=$(kmodctl --version) || fail "kmodctl --version failed"
echo "installed: $version; kmodd: $(kmodd --version); unit: $unit"
for tool in depmod modprobe lsmod insmod rmmod modinfo kmod; do
    [ "$(readlink -f "/usr/libexec/kmodd/$tool")" = /usr/libexec/kmodd/kmodctl-local ] ||
        fail "the $tool drop-in is no link to kmodctl-local"
done
# kmod's tools run from kmodctl-local, which maps no D-Bus (nor C++) library.
[ "$(kmodctl depmod --version | head -n 1)" = "kmodd depmod version $(kmodd --version | sed 's/^kmodd //')" ] ||
    fail "kmodctl depmod --version does not answer as kmodctl-local"
! ldd /usr/libexec/kmodd/kmodctl-local | grep -q 'libstdc++\|libsdbus\|libsystemd' ||
    fail "kmodctl-local maps D-Bus or C++ libraries"
# The front hands what it does not answer itself to the installed kmodctl-tools.
[ "$(kmodctl --help | head -n 1)" = "$(/usr/libexec/kmodd/kmodctl-tools --help | head -n 1)" ] ||
    fail "kmodctl --help is not kmodctl-tools' help"
! ldd /usr/bin/kmodctl | grep -q 'libstdc++\|libsdbus' || fail "the kmodctl front maps C++ libraries"

[ "$(/usr/libexec/kmodd/kmod static-nodes --help | head -n 1)" = "Usage:" ] ||
    fail "/usr/libexec/kmodd/kmod does not answer as kmod"
[ "$(readlink -f "$(command -v depmod)")" != /usr/libexec/kmodd/kmodctl-local ] ||
    fail "kmod's depmod was replaced"

mkdir -p /etc/kmodd /run/kmodd
echo '{"debounce-ms": 100}' >/etc/kmodd/kmodd.conf
dpkg --purge kmodd >/dev/null || fail "purging kmodd failed"
[ ! -e /etc/kmodd ] || fail "/etc/kmodd is left after purge"
[ ! -e /run/kmodd ] || fail "/run/kmodd is left after purge"
after=$(snapshot)
left=$(printf '%s\n' "$before" "$after" | sort | uniq -u)
if [ -n "$left" ]; then
    fail "the file system differs after install and purge:"
    printf '%s\n' "$left" | head -n 20
fi
[ $status -ne 0 ] || echo "install and purge: passed; nothing left behind"
exit "$status"
