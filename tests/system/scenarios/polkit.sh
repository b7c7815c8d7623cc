# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 4: polkit decides. alice, without a rule, is denied a Load: one line naming the action
# and how to get it, exit status 4. A rule in /etc/polkit-1/rules.d granting org.kmodd1.load to
# her group (drivers) lets her load dummy, picked up by polkitd without a restart; she still
# may not unload. bob, not in the group, may still only read; but on a terminal kmodctl runs
# pkttyagent, and with an administrator's password (carol, in group sudo) he may load. Then a
# rule grants the drivers group org.kmodd1.develop, .load and .unload: alice (also in adm, which
# may read the journal) runs kmodctl dev on a module file in her home, sees its kernel line and
# has it reloaded when she replaces it, without root.
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

install_kmodd
must id alice
expect_in "$OUT" "(drivers)" "alice is in group drivers"

say "without a rule, alice is denied: one line, the action, exit status 4"
must_fail as_user alice "$KMODCTL" load dummy
[ "$RC" -eq 4 ] || fail "a denied load should exit with status 4, not $RC"
expect_in "$ERR" "org.kmodd1.load" "the message names the polkit action"
expect_in "$ERR" "polkit rule" "the message says how to get it"
expect_not_loaded dummy
must systemctl is-active polkit.service
ok "kmodd's question started polkitd (D-Bus activation)"

say "a rule grants org.kmodd1.load to group drivers"
cat >/etc/polkit-1/rules.d/60-kmodd-drivers.rules <<'RULE'
polkit.addRule(function(action, subject) {
    if (action.id == "org.kmodd1.load" && subject.isInGroup("drivers"))
        return polkit.Result.YES;
});
RULE
# polkitd reads rules.d again when it changes (inotify): no restart, only the moment it takes.
tries=0
until as_user alice "$KMODCTL" load dummy >/tmp/alice.out 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || fail "alice still cannot load dummy with the rule: $(cat /tmp/alice.out)"
    sleep 0.5
done
ok "alice loaded dummy: $(cat /tmp/alice.out)"
expect_loaded dummy
must "$KMODCTL" list
expect_in "$(printf '%s\n' "$OUT" | grep '^dummy ')" "explicit" "kmodd records alice's load"

say "the rule is about loading only: alice may not unload"
must_fail as_user alice "$KMODCTL" unload dummy
[ "$RC" -eq 4 ] || fail "a denied unload should exit with status 4, not $RC"
expect_in "$ERR" "org.kmodd1.unload" "the message names org.kmodd1.unload"
expect_loaded dummy

say "bob, not in the group, may read but not load"
must_fail as_user bob "$KMODCTL" load veth
[ "$RC" -eq 4 ] || fail "bob's denied load should exit with status 4, not $RC"
expect_not_loaded veth
must as_user bob "$KMODCTL" list
expect_in "$OUT" "dummy" "bob may list the loaded modules"
must as_user bob "$KMODCTL" deps dummy
ok "bob may ask for dependencies"
must "$KMODCTL" unload dummy
expect_not_loaded dummy
ok "root unloads it"

say "on a terminal, kmodctl runs pkttyagent and polkit asks bob for an admin's password"
# Debian's polkit takes the members of group sudo as administrators: carol is the one.
must useradd --create-home --groups sudo carol
printf 'carol:%s\n' "carols-secret" | chpasswd
# on_terminal USER LINE OUTPUT: runs `sh -c LINE` as USER on a terminal of its own (script),
# its input from the FIFO /tmp/tty.in, its output in OUTPUT; its status goes to OUTPUT.rc.
rm -f /tmp/tty.in
mkfifo /tmp/tty.in
on_terminal() {
    rm -f "$3" "$3.rc"
    (
        # Only the scenario holds the FIFO's writing end: closing it ends the terminal's input.
        exec 3>&-
        runuser -u "$1" -- script --quiet --flush --return --command "$2" /dev/null \
            </tmp/tty.in >"$3" 2>&1
        echo $? >"$3.rc"
    ) &
}
exec 3<>/tmp/tty.in
on_terminal bob "$KMODCTL load veth" /tmp/bob-tty.out
wait_until 60 grep -q "Password:" /tmp/bob-tty.out ||
    fail "no password prompt on bob's terminal: $(cat /tmp/bob-tty.out)"
ok "pkttyagent asks on bob's terminal: $(grep -a -m1 'AUTHENTICATING' /tmp/bob-tty.out)"
grep -q "carol" /tmp/bob-tty.out || fail "the prompt should be for carol, the administrator"
printf 'carols-secret\n' >&3
wait_until 60 test -s /tmp/bob-tty.out.rc || fail "kmodctl did not finish after the password"
[ "$(cat /tmp/bob-tty.out.rc)" -eq 0 ] ||
    fail "the load with carol's password failed: $(cat /tmp/bob-tty.out)"
expect_loaded veth
ok "bob loaded veth with an administrator's password"
pgrep -x pkttyagent && fail "pkttyagent outlived the call"
ok "the agent is gone with the call"

say "a wrong password: denied, exit status 4"
must "$KMODCTL" unload veth
on_terminal bob "$KMODCTL load veth" /tmp/bob-tty.out
wait_until 60 grep -q "Password:" /tmp/bob-tty.out || fail "no password prompt: $(cat /tmp/bob-tty.out)"
printf 'wrong\n' >&3
# Should pkttyagent ask again after a failed attempt, its input ends.
sleep 3
exec 3>&-
wait_until 90 test -s /tmp/bob-tty.out.rc || fail "kmodctl did not finish after a wrong password"
[ "$(cat /tmp/bob-tty.out.rc)" -eq 4 ] ||
    fail "a load refused after a wrong password should exit with 4: $(cat /tmp/bob-tty.out)"
expect_not_loaded veth
ok "refused, exit status 4"

say "--no-ask-password on a terminal: no prompt, denied at once"
exec 3<>/tmp/tty.in
on_terminal bob "$KMODCTL --no-ask-password load veth" /tmp/bob-tty.out
wait_until 60 test -s /tmp/bob-tty.out.rc || fail "kmodctl --no-ask-password did not finish"
[ "$(cat /tmp/bob-tty.out.rc)" -eq 4 ] || fail "it should exit with 4: $(cat /tmp/bob-tty.out)"
grep -q "Password:" /tmp/bob-tty.out && fail "--no-ask-password still asked for a password"
expect_in "$(cat /tmp/bob-tty.out)" "org.kmodd1.load" "denied without a prompt, naming the action"
exec 3>&-
expect_not_loaded veth

say "a developer granted org.kmodd1.develop, .load and .unload runs kmodctl dev without root"
cat >/etc/polkit-1/rules.d/61-kmodd-developers.rules <<'RULE'
polkit.addRule(function(action, subject) {
    if ((action.id == "org.kmodd1.develop" || action.id == "org.kmodd1.load" ||
         action.id == "org.kmodd1.unload") && subject.isInGroup("drivers"))
        return polkit.Result.YES;
});
RULE
# In group adm alice may read the kernel's messages in the journal (not /dev/kmsg).
must usermod --append --groups adm alice
release=$(uname -r)
mkdir -p /home/alice/build
# pktgen says who it is when it starts: a kernel line for kmodctl dev to show.
cp "/lib/modules/$release/kernel/net/core/pktgen$KO" "/home/alice/build/pktgen$KO"
chown -R alice /home/alice/build
tries=0
dev=
until grep -q '^loaded pktgen' /tmp/alice-dev.out 2>/dev/null; do
    if [ -z "$dev" ] || ! kill -0 "$dev" 2>/dev/null; then
        # polkitd may take a moment to read the new rule: start again while it refuses.
        [ "$tries" -lt 20 ] || fail "alice's kmodctl dev did not load pktgen: $(cat /tmp/alice-dev.out)"
        # setpriv execs kmodctl as alice: $! is kmodctl itself.
        setpriv --reuid=alice --regid=alice --init-groups --reset-env \
            "$KMODCTL" dev "/home/alice/build/pktgen$KO" >/tmp/alice-dev.out 2>&1 &
        dev=$!
    fi
    tries=$((tries + 1))
    sleep 0.5
done
sed 's/^/  | /' /tmp/alice-dev.out
expect_loaded pktgen
[ -L "/lib/modules/$release/updates/kmodd-dev/pktgen$KO" ] || fail "no link in updates/kmodd-dev"
ok "pktgen is linked from alice's build directory and loaded"
wait_until 30 grep -q '^kernel: pktgen: Packet Generator' /tmp/alice-dev.out ||
    fail "pktgen's line from the journal is not shown: $(cat /tmp/alice-dev.out)"
ok "alice sees the kernel's line (from the journal): $(grep -m1 '^kernel: pktgen' /tmp/alice-dev.out)"
cp "/home/alice/build/pktgen$KO" /home/alice/build/.pktgen.new
mv /home/alice/build/.pktgen.new "/home/alice/build/pktgen$KO"
wait_until 60 grep -q '^reloaded pktgen in ' /tmp/alice-dev.out ||
    fail "the rebuilt file was not reloaded: $(cat /tmp/alice-dev.out)"
ok "$(grep '^reloaded pktgen in ' /tmp/alice-dev.out)"
# SIGTERM: a shell starts background jobs with SIGINT ignored, so Ctrl-C's signal would not
# reach it here; kmodctl dev ends the same way on both.
kill -TERM "$dev"
wait "$dev" || fail "alice's kmodctl dev exited with status $?: $(cat /tmp/alice-dev.out)"
expect_not_loaded pktgen
[ -e "/lib/modules/$release/updates/kmodd-dev/pktgen$KO" ] && fail "the link is still there"
ok "SIGTERM unloaded and unlinked it: $(tail -n 2 /tmp/alice-dev.out | tr '\n' ' ')"
mkdir -p /home/bob/build
cp "/home/alice/build/pktgen$KO" /home/bob/build/
chown -R bob /home/bob/build
run as_user bob "$KMODCTL" dev "/home/bob/build/pktgen$KO"
[ "$RC" -eq 4 ] || fail "bob's kmodctl dev should be denied with status 4, not $RC"
expect_in "$ERR" "org.kmodd1.develop" "bob is denied, the action named"
expect_in "$ERR" "kernel's messages are not shown" "bob is told he cannot see the kernel's lines"
exit 0
