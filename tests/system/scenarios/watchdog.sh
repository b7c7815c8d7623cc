# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 2: the watchdog. kmodd frozen with SIGSTOP stops sending WATCHDOG=1; systemd kills it
# and starts it again (Restart=on-failure). What kmodd recorded about who loaded what (in
# /run/kmodd) survives the restart. WatchdogSec= is shortened to 10 s by a drop-in so that the
# test does not wait the shipped minute; the shipped value is checked first.
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

install_kmodd
must systemctl show --property=WatchdogUSec --value kmodd.service
[ "$OUT" = 1min ] || fail "the shipped unit should have WatchdogSec=1min, not '$OUT'"
ok "the shipped unit has WatchdogSec=1min"

say "a record before the restart: root loads dummy through kmodd"
must "$KMODCTL" load dummy
expect_loaded dummy
must "$KMODCTL" list
before=$(printf '%s\n' "$OUT" | grep '^dummy ')
expect_in "$before" "explicit" "kmodd records dummy as loaded explicitly"

say "WatchdogSec=10s by a drop-in, then kmodd is frozen"
mkdir -p /etc/systemd/system/kmodd.service.d
printf '[Service]\nWatchdogSec=10s\n' >/etc/systemd/system/kmodd.service.d/watchdog.conf
must systemctl daemon-reload
must systemctl restart kmodd.service
wait_until 60 systemctl is-active --quiet kmodd || fail "kmodd did not come back after the restart"
old_pid=$(kmodd_pid)
sleep 12
[ "$(kmodd_pid)" = "$old_pid" ] || fail "kmodd was restarted although it answered the watchdog"
ok "kmodd (pid $old_pid) kept its watchdog fed for 12 s"
frozen_at=$(cut -d' ' -f1 /proc/uptime)
kill -STOP "$old_pid"
ok "kmodd (pid $old_pid) stopped with SIGSTOP at $frozen_at s"
new_pid=$old_pid
tries=0
while [ "$new_pid" = "$old_pid" ] || [ "$new_pid" = 0 ] || ! systemctl is-active --quiet kmodd; do
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || fail "systemd did not restart the frozen kmodd within 60 s: $(systemctl status kmodd --no-pager 2>&1)"
    sleep 0.2
    new_pid=$(kmodd_pid)
done
back_at=$(cut -d' ' -f1 /proc/uptime)
ok "kmodd is active again as pid $new_pid, $(awk -v a="$frozen_at" -v b="$back_at" 'BEGIN { printf "%.1f", b - a }') s after the freeze"
kill -0 "$old_pid" 2>/dev/null && fail "the frozen kmodd (pid $old_pid) still exists"
ok "the frozen process is gone"
journalctl --boot --unit=kmodd.service --no-pager --output=cat | grep -i "watchdog timeout" ||
    fail "systemd logged no watchdog timeout for kmodd"
ok "systemd logged the watchdog timeout"
must systemctl show --property=NRestarts --value kmodd.service
[ "$OUT" -ge 1 ] || fail "NRestarts should count the restart, not '$OUT'"

say "the record survived the restart"
must "$KMODCTL" list
after=$(printf '%s\n' "$OUT" | grep '^dummy ')
[ "$(printf '%s\n' "$before" | awk '{ print $NF }')" = "$(printf '%s\n' "$after" | awk '{ print $NF }')" ] ||
    fail "dummy's origin changed over the restart: '$before' became '$after'"
ok "dummy is still recorded as loaded explicitly: '$after'"
must "$KMODCTL" unload dummy
expect_not_loaded dummy
ok "the restarted kmodd unloads what its predecessor loaded"
exit 0
