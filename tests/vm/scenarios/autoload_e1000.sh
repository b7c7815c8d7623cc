# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Run with qemu's e1000 NIC (--qemu-arg=-device --qemu-arg=e1000): kmodd's coldplug finds the
# NIC without a driver at start and loads e1000 for it, recorded as autoloaded. Nothing else
# loads drivers here: there is no udevd, and the kernel itself requests no PCI drivers.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

nic_driver() {
    for dev in /sys/bus/pci/devices/*; do
        if [ "$(cat "$dev/vendor")" != 0x8086 ] || [ "$(cat "$dev/device")" != 0x100e ]; then
            continue
        fi
        [ -L "$dev/driver" ] && basename "$(readlink "$dev/driver")"
        return 0
    done
    fail "no e1000 NIC on the PCI bus: run with --qemu-arg=-device --qemu-arg=e1000"
}

say "the NIC got its driver from kmodd's coldplug"
wait_until 30 is_loaded e1000 || fail "e1000 was not loaded; kmodd's log: $(grep -a e1000 /run/kmodd.log)"
expect_loaded e1000
wait_until 10 sh -c "[ -e /sys/class/net/eth0 ]" || fail "no eth0 appeared"
driver=$(nic_driver)
[ "$driver" = e1000 ] || fail "the NIC's driver is '$driver', not e1000"
ok "the NIC is bound to e1000 and eth0 exists"
grep -a "loaded e1000 for /sys/devices/" /run/kmodd.log || fail "kmodd's log does not say it loaded e1000 for the NIC"

say "kmodctl list says e1000 was autoloaded"
must "$KMODCTL" list
expect_in "$OUT" "e1000 " "e1000 is listed"
line=$(printf '%s\n' "$OUT" | grep '^e1000 ')
expect_in "$line" "[autoload]" "its origin is autoload"

say "the NIC is not waiting for a driver"
must "$KMODCTL" status --json
case $OUT in
*'"waiting_devices":[]'*) ok "no device waits" ;;
*8086*100E* | *8086*100e*) fail "the NIC is still listed as waiting: $OUT" ;;
*) ok "the NIC is not among the waiting devices" ;;
esac
expect_kmodd_alive
exit 0
