# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Failures on the real kernel: an unknown module, a parameter value the module rejects, modules
# the kernel refuses (a signature that no longer matches, a wrong vermagic), an unknown symbol
# (a dependency's file removed by hand after the index was rebuilt), a truncated .ko linked into
# extra/, a caller who is not root. Each gives one line on stderr naming the module, leaves
# nothing of the failed plan loaded, and kmodd keeps serving.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

# expect_plan_gone MODULE...: none of them is in /proc/modules.
expect_plan_gone() {
    for module in "$@"; do
        is_loaded "$module" && fail "'$module' of the failed plan is still loaded"
    done
    ok "nothing of the plan is loaded ($*)"
}

say "an unknown module"
must_fail "$KMODCTL" load kmodd_vm_no_such_module
expect_in "$ERR" kmodd_vm_no_such_module "the error names the module"
expect_kmodd_alive

say "a parameter value the module rejects: the kernel refuses the load, the dependencies go again"
/sbin/modinfo -F parm vxlan | grep -q '^udp_port:' || fail "vxlan has no parameter udp_port"
must_fail "$KMODCTL" load vxlan udp_port=kmodd_vm_not_a_number
expect_in "$ERR" vxlan "the error names the module"
expect_in "$ERR" "removed again" "the error says what was taken back"
expect_plan_gone vxlan udp_tunnel ip6_udp_tunnel
dmesg | grep -q "kmodd_vm_not_a_number' invalid for parameter .udp_port'" ||
    fail "the kernel did not log the invalid value"
ok "the kernel logged: $(dmesg | grep "invalid for parameter .udp_port'" | tail -n 1)"
expect_kmodd_alive

say "a signed module changed after signing (its vermagic edited): the kernel refuses it"
file=$MODDIR/kernel/drivers/net/vxlan/vxlan.ko
if [ "$KO" != .ko ]; then
    # Bytes are edited in the plain ELF: a compressed tree's vxlan is expanded first (kmodd
    # then indexes vxlan.ko in place of vxlan.ko.xz).
    xzcat "${file%.ko}$KO" >"$file" || fail "cannot expand ${file%.ko}$KO"
    rm "${file%.ko}$KO"
    wait_until 30 grep -q '^kernel/drivers/net/vxlan/vxlan.ko:' "$MODDIR/modules.dep" ||
        fail "modules.dep does not list the expanded vxlan.ko after 30 s"
fi
# " SMP" becomes " XMP": with modversions the kernel compares vermagic after the release.
offset=$(strings -t d "$file" | awk '$2 ~ /^vermagic=/ && / SMP / {
    at = $1; sub(/^ *[0-9]+ /, ""); print at + index($0, " SMP "); exit }')
[ -n "$offset" ] || fail "no vermagic=... SMP in $file"
printf 'X' | dd of="$file" bs=1 seek="$offset" conv=notrunc 2>/dev/null
strings "$file" | grep '^vermagic=' | sed 's/^/  /'
# kmodd reads the changed file again; its dependencies stay the same.
sleep 1
must_fail "$KMODCTL" load vxlan
expect_in "$ERR" vxlan "the error names the module"
expect_in "$ERR" "signature rejected" "the error says the signature was rejected"
expect_plan_gone vxlan udp_tunnel ip6_udp_tunnel
expect_kmodd_alive

say "the same module with its signature cut off: the kernel refuses the vermagic"
# The end of a signed module: the signature, struct module_signature (12 bytes, the
# signature's length big-endian in its last 4) and the 28-byte marker.
size=$(stat -c %s "$file")
tail -c 28 "$file" | grep -q '~Module signature appended~' || fail "$file is not signed"
sig_len=$(tail -c 32 "$file" | head -c 4 | od -An -tu1 |
    awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')
truncate -s $((size - 28 - 12 - sig_len)) "$file"
echo "  cut $((28 + 12 + sig_len)) bytes of signature off $size"
sleep 1
must_fail "$KMODCTL" load vxlan
expect_in "$ERR" vxlan "the error names the module"
expect_in "$ERR" "invalid module format" "the error says the format is invalid"
expect_plan_gone vxlan udp_tunnel ip6_udp_tunnel
dmesg | grep -q 'vxlan: version magic' || fail "the kernel did not log the vermagic mismatch"
ok "the kernel logged: $(dmesg | grep 'vxlan: version magic' | tail -n 1)"
expect_kmodd_alive

say "an unknown symbol: tap.ko removed by hand, the index rebuilt without it"
grep -q "^kernel/drivers/net/macvtap$KO:.*tap$KO" "$MODDIR/modules.dep" ||
    fail "macvtap should depend on tap: $(modules_dep_line "kernel/drivers/net/macvtap$KO")"
mkdir -p /root/removed
mv "$MODDIR/kernel/drivers/net/tap$KO" /root/removed/
wait_until 30 sh -c "! grep -q '^kernel/drivers/net/macvtap$KO:.* kernel/drivers/net/tap$KO' \
    '$MODDIR/modules.dep'" || fail "modules.dep still has tap$KO for macvtap after 30 s"
ok "modules.dep: $(modules_dep_line "kernel/drivers/net/macvtap$KO")"
must_fail "$KMODCTL" load macvtap
expect_in "$ERR" macvtap "the error names the module"
expect_plan_gone macvtap macvlan tap
dmesg | grep -q 'macvtap: Unknown symbol' || fail "the kernel did not log an unknown symbol"
ok "the kernel logged: $(dmesg | grep 'macvtap: Unknown symbol' | tail -n 1)"
expect_kmodd_alive

say "a truncated .ko softlinked into extra/"
mkdir -p /root/broken "$MODDIR/extra"
# Half of nlmon's file (a compressed one is smaller than any fixed cut).
nlmon=$MODDIR/kernel/drivers/net/nlmon$KO
head -c $(($(stat -c %s "$nlmon") / 2)) "$nlmon" >"/root/broken/kmodd_vm_truncated$KO"
ln -s "/root/broken/kmodd_vm_truncated$KO" "$MODDIR/extra/kmodd_vm_truncated$KO"
wait_until 30 grep -q "extra/kmodd_vm_truncated$KO" /run/kmodd.log ||
    fail "kmodd did not report the truncated file within 30 s"
ok "kmodd's log: $(grep "extra/kmodd_vm_truncated$KO" /run/kmodd.log | tail -n 1)"
must_fail "$KMODCTL" load kmodd_vm_truncated
expect_in "$ERR" kmodd_vm_truncated "the error names the module"
expect_plan_gone kmodd_vm_truncated
expect_kmodd_alive

say "a truncated copy over a module already indexed (nlmon's own file)"
head -c $(($(stat -c %s "$nlmon") * 2 / 3)) "$nlmon" >"/root/broken/nlmon$KO"
cp "/root/broken/nlmon$KO" "$MODDIR/kernel/drivers/net/nlmon$KO"
sleep 1
must_fail "$KMODCTL" load nlmon
expect_in "$ERR" nlmon "the error names the module"
expect_plan_gone nlmon
expect_kmodd_alive

say "a user other than root may read through the system bus but not load (org.kmodd1.conf, no polkit)"
# busybox su: root needs no password; the arguments here have no blanks.
# shellcheck disable=SC2317 # called through run and must_fail
as_nobody() { su -s /bin/sh -c "$*" nobody; }
run as_nobody "$KMODCTL" deps dummy
if [ "$RC" -ne 0 ] || [ "$OUT" != dummy ]; then fail "nobody cannot read kmodd's answers"; fi
ok "nobody may ask kmodctl deps"
must_fail as_nobody "$KMODCTL" load dummy
[ "$RC" -eq 4 ] || fail "kmodctl should exit with 4 when not allowed, as systemctl does, not $RC"
ok "kmodctl exits with 4"
expect_not_loaded dummy
run as_nobody dbus-send --system --print-reply --dest=org.kmodd1 /org/kmodd1 \
    org.kmodd1.Manager.Load string:dummy string:
expect_in "$ERR" org.kmodd1.Error.PermissionDenied "kmodd answers nobody's Load with PermissionDenied"
expect_kmodd_alive

say "after all that, a good module still loads"
must "$KMODCTL" load dummy
expect_loaded dummy
exit 0
