#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Started by kmodd-system-test.service in the VM of tests/system/run-system-scenario.sh once the
# boot reached multi-user.target: runs /kmodd-test/scenario.sh as root, prints the journal when
# it failed (or with kmodd_system.verbose=1), the boot and scenario times and
# KMODD-SYSTEM-EXIT=<status> for the host, then powers the machine off at once.
exec >/dev/ttyS0 2>&1 </dev/null
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root
cd /kmodd-test || exit 1
booted=$(cut -d' ' -f1 /proc/uptime)
echo "kmodd-system: $(cat name): multi-user.target reached $booted s after the kernel started"
sh ./scenario.sh
status=$?
finished=$(cut -d' ' -f1 /proc/uptime)
if [ "$status" -ne 0 ] || grep -q 'kmodd_system.verbose=1' /proc/cmdline; then
    echo "---- the journal of this boot (last 200 lines)"
    journalctl -b --no-pager -o short-monotonic | tail -n 200
    echo "---- systemctl --failed"
    systemctl --failed --no-pager
    echo "----"
fi
echo "kmodd-system: times boot $booted s, scenario $(awk -v a="$booted" -v b="$finished" \
    'BEGIN { printf "%.1f", b - a }') s"
echo "KMODD-SYSTEM-EXIT=$status"
sync
echo o >/proc/sysrq-trigger
sleep 10
systemctl poweroff --force --force
