# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Run with qemu's e1000 NIC; autoload_e1000_late.before.sh took e1000.ko out of the tree before
# kmodd started. The NIC waits for a driver (kmodctl status lists it); when the module file is
# put back while kmodd runs, kmodd indexes it, sees that the waiting NIC now has a driver, and
# loads it: no modprobe, no udevadm trigger, no reboot.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

where=$(cat /root/later/where)
file=/root/later/$(basename "$where")

say "without e1000.ko, the NIC waits for a driver"
is_loaded e1000 && fail "e1000 is loaded although its file was not in the tree"
wait_until 20 sh -c "$KMODCTL status --json | grep -qi 'pci:v00008086d0000100E'" ||
    fail "the NIC is not among the waiting devices: $($KMODCTL status --json)"
must "$KMODCTL" status
expect_in "$OUT" "pci:v00008086d0000100E" "kmodctl status lists the NIC as waiting"

"$KMODCTL" monitor >/tmp/monitor.out 2>&1 &
monitor=$!
sleep 1

say "the driver's file comes back while kmodd runs"
started=$(cut -d' ' -f1 /proc/uptime)
cp "$file" "$where"
wait_until 30 is_loaded e1000 || fail "e1000 was not loaded after its file came back; kmodd's log: $(tail -n 20 /run/kmodd.log)"
loaded=$(cut -d' ' -f1 /proc/uptime)
ok "e1000 loaded $(awk -v a="$started" -v b="$loaded" 'BEGIN { printf "%.2f", b - a }') s after the file came back"
wait_until 10 sh -c "[ -e /sys/class/net/eth0 ]" || fail "no eth0 appeared"
ok "eth0 exists"
modules_dep_line "$(echo "$where" | sed "s|^$MODDIR/||")" | grep -q . || fail "modules.dep does not name e1000"
ok "modules.dep names e1000 again"

say "kmodd said so on the bus and in ListWaitingDevices"
wait_until 10 grep -q "DeviceAutoloaded .*e1000" /tmp/monitor.out ||
    fail "no DeviceAutoloaded signal naming e1000: $(cat /tmp/monitor.out)"
grep "DeviceAutoloaded" /tmp/monitor.out
kill "$monitor" 2>/dev/null
must "$KMODCTL" status --json
case $OUT in
*8086*100E* | *8086*100e*) fail "the NIC is still listed as waiting: $OUT" ;;
esac
ok "the NIC no longer waits"
must "$KMODCTL" list
expect_in "$(printf '%s\n' "$OUT" | grep '^e1000 ')" "[autoload]" "e1000's origin is autoload"
expect_kmodd_alive
exit 0
