# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 5: next to systemd-udevd (run with qemu's e1000 and pcnet NICs). kmodd then autoloads
# only for devices udevd left without a driver. The boot coldplugged both NICs while the tree
# had no index, so udevd could load nothing; pcnet32's file is taken out of the tree before the
# install. kmodd binds e1000 once at its start, a coldplug replayed by udevadm trigger loads
# nothing twice, and the pcnet NIC gets its driver once pcnet32's file is back in the tree.
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

pcnet=$(find "$MODDIR/kernel" -name "pcnet32$KO")
[ -n "$pcnet" ] || fail "no pcnet32$KO in the tree"
mkdir -p /root/later
mv "$pcnet" /root/later/
ok "pcnet32 is out of the tree: $pcnet"
must systemctl is-active systemd-udevd.service
expect_not_loaded e1000

install_kmodd
say "kmodd chose unbound-only, with events from udev"
wait_until 30 sh -c "journalctl -b -u kmodd.service -o cat | grep -q 'autoloading drivers'" ||
    fail "kmodd did not say how it autoloads"
expect_in "$(kmodd_journal)" "autoloading drivers for devices (devices left without a driver, events from udev)" \
    "kmodd autoloads for unbound devices only, after udevd"

say "the coldplugged e1000 NIC is bound once, by kmodd"
wait_until 60 is_loaded e1000 || fail "e1000 was not loaded for the coldplugged NIC"
wait_until 20 sh -c "[ -e /sys/bus/pci/drivers/e1000 ] && ls /sys/bus/pci/drivers/e1000 | grep -q '^0000:'" ||
    fail "no device is bound to e1000"
ok "a NIC is bound to e1000"
[ "$(journal_count "^loaded .*e1000 for ")" -eq 1 ] || fail "kmodd should have loaded e1000 once: $(kmodd_journal | grep e1000)"
ok "the journal has one load of e1000: $(kmodd_journal | grep '^loaded .*e1000 for ')"

say "a replayed coldplug (udevadm trigger) loads nothing twice"
must udevadm trigger --action=add --subsystem-match=pci
must udevadm settle --timeout=60
sleep 2
[ "$(journal_count "^loaded .*e1000 for ")" -eq 1 ] || fail "e1000 was loaded again: $(kmodd_journal | grep e1000)"
ok "still one load of e1000 in kmodd's journal"
kmodd_journal | grep -i "e1000.*failed" && fail "kmodd reports a failed load for e1000"
ok "and no failed attempt"

say "the pcnet NIC waits; its driver comes back into the tree"
wait_until 20 sh -c "$KMODCTL status --json | grep -qi 'pci:v00001022d00002000'" ||
    fail "the pcnet NIC is not among the waiting devices: $($KMODCTL status --json)"
ok "kmodctl status lists the pcnet NIC as waiting"
mv "/root/later/pcnet32$KO" "$pcnet"
wait_until 60 is_loaded pcnet32 || fail "pcnet32 was not loaded after its file came back"
wait_until 20 sh -c "ls /sys/bus/pci/drivers/pcnet32 | grep -q '^0000:'" ||
    fail "no device is bound to pcnet32"
ok "the pcnet NIC has its driver: $(kmodd_journal | grep '^loaded .*pcnet32 for ')"
[ "$(journal_count "^loaded .*pcnet32 for ")" -eq 1 ] || fail "pcnet32 should have been loaded once"
expect_kmodd_alive
exit 0
