# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Booted with module.sig_enforce=1 (as under Secure Boot): Debian's own signed modules still
# load; an unsigned out-of-tree module and one signed with a key the kernel does not hold are
# refused as org.kmodd1.Error.SignatureRejected, each with its own cause, and `kmodctl check`
# predicts both refusals without loading. Then kernel.modules_disabled=1 is named as the cause.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh


say "the kernel enforces signatures"
[ "$(cat /sys/module/module/parameters/sig_enforce)" = Y ] ||
    fail "sig_enforce is $(cat /sys/module/module/parameters/sig_enforce), not Y"
ok "/sys/module/module/parameters/sig_enforce is Y"
grep -a -i asymmetri /proc/keys | sed 's/^/  /' | head -n 5

mkdir -p "$MODDIR/extra"
cp /vm/devmods/dev_signed.ko /vm/devmods/dev_unsigned.ko "$MODDIR/extra/"
wait_until 30 grep -q '^extra/dev_signed.ko:' "$MODDIR/modules.dep" ||
    fail "modules.dep does not list dev_signed.ko after 30 s"

say "kmodctl check predicts both refusals"
run "$KMODCTL" check dev_unsigned
[ "$RC" -eq 1 ] || fail "check dev_unsigned should exit 1, not $RC"
expect_in "$OUT" "unsigned" "check says it is unsigned"
run "$KMODCTL" check dev_signed
[ "$RC" -eq 1 ] || fail "check dev_signed should exit 1, not $RC"
expect_in "$OUT" "kmodd test signing key" "check names the signer"
expect_in "$OUT" "mokutil --import" "check says how to enroll the key"

say "an in-tree module signed by Debian still loads"
must "$KMODCTL" check dummy
must "$KMODCTL" load dummy
expect_loaded dummy

say "an unsigned module"
error=$(load_error dev_unsigned)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.SignatureRejected "the error name is SignatureRejected"
expect_in "$error" "Cause: the module is unsigned" "the cause: unsigned"
expect_in "$error" "The kernel said: \"Loading of unsigned module is rejected\"" \
    "the error quotes the kernel's line, which does not name the module"
expect_not_loaded dev_unsigned

say "a module signed with a key the kernel does not hold"
error=$(load_error dev_signed)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.SignatureRejected "the error name is SignatureRejected"
expect_in "$error" "kmodd test signing key" "the cause names the signer"
expect_in "$error" "mokutil --import" "the fix says how to enroll the key"
expect_in "$error" "The kernel said: \"Loading of module with unavailable key is rejected\"" \
    "the error quotes the kernel's line"
expect_not_loaded dev_signed
expect_kmodd_alive

say "kernel.modules_disabled=1 (for good: the end of this scenario)"
echo 1 >/proc/sys/kernel/modules_disabled
expect_not_loaded nlmon
run "$KMODCTL" check nlmon
[ "$RC" -eq 1 ] || fail "check should say the load fails, exit 1, not $RC"
expect_in "$OUT" "kernel.modules_disabled is 1" "check names modules_disabled"
error=$(load_error nlmon)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.Failed "the error name is Failed"
expect_in "$error" "Cause: the kernel loads no more modules (kernel.modules_disabled is 1)" \
    "the cause: modules_disabled"
expect_not_loaded nlmon
expect_kmodd_alive
exit 0
