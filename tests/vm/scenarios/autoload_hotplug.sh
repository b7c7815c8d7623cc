# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# A NIC hotplugged while kmodd runs: the harness asks qemu's monitor for an e1000 on the PCI bus
# (ACPI hotplug); the kernel announces it with an "add" uevent carrying its MODALIAS, and kmodd
# loads e1000 for it. There is no udevd: without kmodd the NIC would stay without a driver.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

say "no NIC, no e1000 before the hotplug"
is_loaded e1000 && fail "e1000 is loaded before any NIC exists"
grep -a "events from kernel" /run/kmodd.log || fail "kmodd does not listen to the kernel's uevents"
ok "kmodd listens to the kernel's uevents"

"$KMODCTL" monitor >/tmp/monitor.out 2>&1 &
monitor=$!
sleep 1

say "a NIC is plugged in"
started=$(cut -d' ' -f1 /proc/uptime)
echo "KMODD-VM-HMP: device_add e1000,id=hotnic,bus=pci.0,addr=0x6"
wait_until 60 is_loaded e1000 || fail "e1000 was not loaded for the hotplugged NIC; kmodd's log: $(tail -n 20 /run/kmodd.log)"
loaded=$(cut -d' ' -f1 /proc/uptime)
ok "e1000 loaded $(awk -v a="$started" -v b="$loaded" 'BEGIN { printf "%.2f", b - a }') s after the hotplug request"
wait_until 10 sh -c "[ -e /sys/class/net/eth0 ]" || fail "no eth0 appeared"
ok "eth0 exists"
wait_until 10 grep -q "DeviceAutoloaded .*e1000" /tmp/monitor.out ||
    fail "no DeviceAutoloaded signal naming e1000: $(cat /tmp/monitor.out)"
grep "DeviceAutoloaded" /tmp/monitor.out
kill "$monitor" 2>/dev/null
must "$KMODCTL" list
expect_in "$(printf '%s\n' "$OUT" | grep '^e1000 ')" "[autoload]" "e1000's origin is autoload"
expect_kmodd_alive
exit 0
