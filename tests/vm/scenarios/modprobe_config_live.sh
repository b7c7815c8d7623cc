# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# A modprobe.d change made while kmodd runs counts for the next load, as it does for kmod's
# modprobe (which reads the configuration on every call): no rebuild, no restart.
# Registered but disabled in tests/vm/CMakeLists.txt: kmodd reads modprobe.d only when it opens
# a new index (at start, after a rebuild), so today this fails at its first check.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

mkdir -p /etc/modprobe.d
say "an 'options' line added while kmodd runs"
echo 'options brd rd_nr=3' >/etc/modprobe.d/kmodd-vm-live.conf
sleep 1
must "$KMODCTL" load brd
value=$(cat /sys/module/brd/parameters/rd_nr)
[ "$value" = 3 ] || fail "/sys/module/brd/parameters/rd_nr is '$value': the new options line was not used"
ok "/sys/module/brd/parameters/rd_nr = 3"

say "a 'blacklist' line added while kmodd runs"
echo 'blacklist veth' >/etc/modprobe.d/kmodd-vm-live.conf
sleep 1
must_fail "$KMODCTL" load rtnl-link-veth
expect_in "$ERR" blacklisted "the new blacklist line was used"
expect_not_loaded veth
exit 0
