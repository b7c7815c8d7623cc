# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 3: D-Bus activation. With kmodd.service stopped, a call to org.kmodd1 (busctl as
# root, kmodctl as a user without privileges) makes dbus-daemon ask systemd to start it.
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

install_kmodd

say "busctl starts the stopped service"
must systemctl stop kmodd.service
systemctl is-active --quiet kmodd && fail "kmodd is still active after systemctl stop"
ok "kmodd.service is stopped"
must busctl --system call org.kmodd1 /org/kmodd1 org.freedesktop.DBus.Properties Get ss \
    org.kmodd1.Manager KernelRelease
expect_in "$OUT" "$KVER" "busctl got KernelRelease from the activated kmodd"
must systemctl is-active kmodd.service
ok "systemd started kmodd.service for the call"
journalctl --boot --no-pager --output=cat | grep "Activating via systemd: service name='org.kmodd1'" ||
    fail "dbus-daemon did not log an activation of org.kmodd1 through systemd"
ok "dbus-daemon activated it through systemd (SystemdService=kmodd.service)"

say "a user without privileges starts it too, with kmodctl status"
must systemctl stop kmodd.service
must as_user bob "$KMODCTL" status
expect_in "$OUT" "Kernel release:   $KVER" "kmodctl status as bob answered"
must systemctl is-active kmodd.service
[ "$(journalctl --boot --no-pager --output=cat | grep -c "Activating via systemd: service name='org.kmodd1'")" -ge 2 ] ||
    fail "the second start was not a D-Bus activation"
ok "the second start was an activation as well"
exit 0
