# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Helpers for tests/system/scenarios/, sourced inside the system VM (dash, as root) as
# `. /kmodd-test/lib.sh`: tests/vm/lib.sh's (say, ok, fail, run, must, must_fail, expect_in,
# wait_until, is_loaded, ...) plus the installed service's.
# shellcheck source=tests/vm/lib.sh
. /kmodd-test/vm-lib.sh

KMODCTL=/usr/bin/kmodctl

# install_kmodd: dpkg -i of the package under test, with its real maintainer scripts; then
# waits until systemd calls kmodd active (Type=notify: after READY=1).
install_kmodd() {
    say "dpkg -i kmodd.deb"
    must dpkg -i /kmodd-test/kmodd.deb
    wait_until 120 systemctl is-active --quiet kmodd ||
        fail "kmodd.service is not active after the install: $(systemctl status kmodd --no-pager 2>&1)"
    KMODD_PID=$(kmodd_pid)
    ok "kmodd.service is active, main pid $KMODD_PID"
}

# The main pid systemd knows for kmodd.service (0 when it has none).
kmodd_pid() { systemctl show --property=MainPID --value kmodd.service; }

# kmodd_journal: what kmodd.service logged in this boot, messages only.
kmodd_journal() { journalctl --boot --unit=kmodd.service --no-pager --output=cat; }

# journal_count PATTERN: how many of kmodd.service's journal lines match PATTERN (grep's).
journal_count() { kmodd_journal | grep -c -- "$1" || true; }

# as_user USER COMMAND...: COMMAND run as USER, without a login session (like a cron job or an
# ssh command: polkit sees no active session).
as_user() {
    user=$1
    shift
    runuser -u "$user" -- "$@"
}
