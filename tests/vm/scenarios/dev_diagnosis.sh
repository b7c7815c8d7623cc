# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# A driver developer's out-of-tree modules (tests/vm/devmods/, built on the host against
# Debian's linux-headers for this kernel, copied to /vm/devmods): every refused load is named
# with its cause and fix, by its own D-Bus error name, and `kmodctl check` predicts each outcome
# before anything is loaded. Signatures are not enforced here (dev_sig_enforced.sh boots with
# module.sig_enforce=1).
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh


say "the modules, in extra/ (dev_a linked in from the build directory, as a developer does)"
[ "$(cat /vm/devmods/release)" = "$KVER" ] ||
    fail "the modules were built for $(cat /vm/devmods/release), this kernel is $KVER"
mkdir -p "$MODDIR/extra" /root/build
cp /vm/devmods/dev_a.ko /root/build/dev_a.ko
ln -s /root/build/dev_a.ko "$MODDIR/extra/dev_a.ko"
for module in dev_b dev_nosym dev_magic dev_signed dev_unsigned dev_many; do
    cp "/vm/devmods/$module.ko" "$MODDIR/extra/"
done
wait_until 30 grep -q '^extra/dev_b.ko: extra/dev_a.ko$' "$MODDIR/modules.dep" ||
    fail "modules.dep does not say dev_b needs dev_a after 30 s: $(modules_dep_line extra/dev_b.ko)"
ok "modules.dep: $(modules_dep_line extra/dev_b.ko)"

say "kmodctl check predicts every outcome without loading anything"
for module in dev_a dev_b dev_signed dev_unsigned; do
    must "$KMODCTL" check "$module"
    expect_in "$OUT" "The load should succeed" "check says $module loads"
done
run "$KMODCTL" check dev_nosym
[ "$RC" -eq 1 ] || fail "check dev_nosym should exit 1, not $RC"
expect_in "$OUT" kmodd_no_such_symbol "check names the missing symbol"
run "$KMODCTL" check dev_magic
[ "$RC" -eq 1 ] || fail "check dev_magic should exit 1, not $RC"
expect_in "$OUT" "mod_unlxad" "check shows the module's vermagic"
expect_in "$OUT" "mod_unload" "check shows the kernel's vermagic"
run "$KMODCTL" check dev_a level=notanumber
[ "$RC" -eq 1 ] || fail "check dev_a level=notanumber should exit 1, not $RC"
expect_in "$OUT" "'level'" "check names the parameter"
run "$KMODCTL" check /vm/devmods/dev_a.ko no_such_param=1
[ "$RC" -eq 0 ] || fail "an unknown parameter does not fail a load: check should exit 0, not $RC"
expect_in "$OUT" "unknown parameter 'no_such_param'" "check warns of the unknown parameter"
expect_in "$OUT" "level (int)" "check lists the real parameters"
run "$KMODCTL" check dev_many
[ "$RC" -eq 1 ] || fail "check dev_many should exit 1, not $RC"
expect_in "$OUT" "kmodd_missing_00" "check names the first missing symbol"
expect_in "$OUT" "kmodd_missing_99" "check names the last missing symbol"
started=$(cut -d' ' -f1 /proc/uptime)
for _ in 1 2 3 4 5; do "$KMODCTL" check dev_many >/dev/null; done
echo "FIGURE kmodctl check of a module with 100 undefined symbols (TCG):" \
    "$(awk -v a="$started" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print (b - a) * 200 }') ms"
for module in dev_a dev_b dev_nosym dev_magic dev_signed dev_unsigned dev_many; do
    is_loaded "$module" && fail "kmodctl check loaded $module"
done
ok "nothing was loaded by the checks"

say "dev_b: its out-of-tree dependency dev_a comes first"
must "$KMODCTL" load dev_b
expect_in "$(words "$OUT")" "dev_a dev_b" "dev_a, then dev_b"
expect_loaded dev_a
expect_loaded dev_b
must "$KMODCTL" unload dev_b
expect_not_loaded dev_a

say "an unknown symbol"
error=$(load_error dev_nosym)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.UnknownSymbol "the error name is UnknownSymbol"
expect_in "$error" kmodd_no_such_symbol "the error names the symbol"
expect_in "$error" 'The kernel said: "dev_nosym: Unknown symbol kmodd_no_such_symbol (err -2)"' \
    "the error quotes the kernel's line"
must_fail "$KMODCTL" load dev_nosym
expect_in "$ERR" "Fix:" "kmodctl load prints the fix"
expect_not_loaded dev_nosym
run "$KMODCTL" --json load dev_nosym
[ "$RC" -eq 1 ] || fail "kmodctl --json load dev_nosym should exit 1, not $RC"
expect_in "$OUT" '"error":"org.kmodd1.Error.UnknownSymbol"' "--json gives the error name"
expect_in "$OUT" '"kernel_messages":["dev_nosym: Unknown symbol kmodd_no_such_symbol (err -2)"]' \
    "--json gives the kernel's lines"
expect_in "$OUT" '"failed_module":"dev_nosym"' "--json names the module the kernel refused"
expect_in "$OUT" '"errno":2' "--json gives the errno"
usec=$(printf '%s\n' "$OUT" | sed -n 's/.*"diagnosis_usec":\([0-9]*\).*/\1/p')
[ -n "$usec" ] || fail "no diagnosis_usec in the outcome"
echo "FIGURE diagnosis of an unknown symbol: $usec us"

say "a vermagic for another kernel"
error=$(load_error dev_magic)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.VersionMismatch "the error name is VersionMismatch"
expect_in "$error" "mod_unlxad" "the error shows the module's vermagic"
expect_in "$error" "SMP preempt mod_unload modversions" "the error shows the kernel's vermagic"
expect_in "$error" "$KVER" "the fix names the release to build against"
expect_in "$error" "The kernel said: \"dev_magic: version magic" "the error quotes the kernel's line"
usec=$("$KMODCTL" --json load dev_magic 2>/dev/null | sed -n 's/.*"diagnosis_usec":\([0-9]*\).*/\1/p')
echo "FIGURE diagnosis of a vermagic: $usec us"
expect_not_loaded dev_magic

say "a parameter value the module refuses"
error=$(load_error dev_a level=notanumber)
printf '  %s\n' "$error"
expect_in "$error" org.kmodd1.Error.BadParameter "the error name is BadParameter"
expect_in "$error" "'level'" "the error names the parameter"
expect_in "$error" "notanumber" "the error names the value"
expect_in "$error" "The kernel said: \"dev_a: \`notanumber' invalid for parameter \`level'\"" \
    "the error quotes the kernel's line"
expect_not_loaded dev_a

say "a misspelt parameter: the kernel loads the module and ignores it; kmodctl says so"
must "$KMODCTL" load dev_a no_such_param=1
expect_loaded dev_a
expect_in "$ERR" "unknown parameter 'no_such_param'" "kmodctl load warns of the unknown parameter"
expect_in "$ERR" "level (int)" "the warning lists the real parameters"
dmesg | grep -q "dev_a: unknown parameter 'no_such_param' ignored" ||
    fail "the kernel did not log the ignored parameter"
ok "the kernel logged: $(dmesg | grep "unknown parameter 'no_such_param'" | tail -n 1)"
must "$KMODCTL" --json load dev_b
expect_in "$OUT" '"inserted":["dev_b"]' "--json names what was inserted"
expect_in "$OUT" '"loaded":true' "--json gives the outcome"
must "$KMODCTL" unload dev_b
must "$KMODCTL" unload dev_a

say "unsigned and self-signed modules load while signatures are not enforced (the kernel taints)"
must "$KMODCTL" load dev_unsigned
must "$KMODCTL" load dev_signed
expect_loaded dev_unsigned
expect_loaded dev_signed

say "a renamed copy of a loaded module: the kernel knows it by its .modinfo name"
cp /vm/devmods/dev_unsigned.ko "$MODDIR/extra/dev_renamed.ko"
wait_until 30 grep -q '^extra/dev_renamed.ko:' "$MODDIR/modules.dep" ||
    fail "modules.dep does not list dev_renamed.ko after 30 s"
run "$KMODCTL" check dev_renamed
expect_in "$OUT" "the file's module is named 'dev_unsigned'" "check names the module's own name"
must "$KMODCTL" load dev_renamed
expect_in "$ERR" "dev_renamed: nothing was inserted: the file's module is named 'dev_unsigned'" \
    "kmodctl load warns that nothing was inserted"
expect_not_loaded dev_renamed
expect_kmodd_alive
exit 0
