# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# The seed's workflow on a real kernel: a developer's module lives in a folder outside
# /lib/modules and is softlinked into /lib/modules/$(uname -r)/extra/. Nobody runs depmod:
# kmodd notices the link, indexes the module, and `kmodctl load` loads it; when the file behind
# the link is replaced, the index follows. The same for a softlinked folder of modules.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

# wait_dep PATH_IN_TREE PATTERN WHAT: waits (30 s at most) for modules.dep's line of the module
# to match the grep pattern.
wait_dep() {
    if ! wait_until 30 sh -c "grep -q '^$1:$2' '$MODDIR/modules.dep'"; then
        printf 'modules.dep has: %s\n' "$(modules_dep_line "$1")"
        fail "$3: modules.dep did not follow within 30 s"
    fi
    ok "$3: $(modules_dep_line "$1")"
}

say "dummy leaves the tree for the developer's folder /root/dev"
mkdir -p /root/dev "$MODDIR/extra"
mv "$MODDIR/kernel/drivers/net/dummy$KO" "/root/dev/dummy$KO"
wait_until 30 sh -c "! grep -q '^kernel/drivers/net/dummy$KO:' '$MODDIR/modules.dep'" ||
    fail "modules.dep still lists kernel/drivers/net/dummy$KO after 30 s"
ok "modules.dep no longer lists kernel/drivers/net/dummy$KO"
must_fail "$KMODCTL" load dummy
expect_in "$ERR" dummy "kmodctl load dummy fails and names it"

say "softlinked into extra/, it is indexed without depmod"
ln -s "/root/dev/dummy$KO" "$MODDIR/extra/dummy$KO"
wait_dep "extra/dummy$KO" '$' "the link is indexed"
must "$KMODCTL" deps dummy
[ "$OUT" = dummy ] || fail "kmodctl deps dummy should print dummy alone"
run "$MODPROBE" -n -v dummy
expect_in "$OUT" "insmod $MODDIR/extra/dummy$KO" "kmod's modprobe finds it in kmodd's index"

say "kmodctl load loads it into the kernel"
must "$KMODCTL" load dummy numdummies=1
[ "$OUT" = dummy ] || fail "kmodctl load dummy should have inserted dummy"
expect_loaded dummy
[ -e /sys/class/net/dummy0 ] || fail "no dummy0: the module did not run"
ok "the module runs: dummy0 exists"
must "$KMODCTL" unload dummy
expect_not_loaded dummy

say "the file behind the link is replaced (macvtap's file copied over it): the index follows"
cp "$MODDIR/kernel/drivers/net/macvtap$KO" "/root/dev/dummy$KO"
wait_dep "extra/dummy$KO" ".*kernel/drivers/net/tap$KO" "the new file's dependencies are indexed"
grep -q "^extra/dummy$KO:.*kernel/drivers/net/macvlan$KO" "$MODDIR/modules.dep" ||
    fail "modules.dep misses macvlan for extra/dummy$KO: $(modules_dep_line "extra/dummy$KO")"
must "$KMODCTL" deps dummy
expected=$("$MODPROBE" --show-depends dummy | awk '$1 == "insmod" { print $2 }' |
    while read -r path; do name_of_path "$path"; done)
[ "$OUT" = "$expected" ] || fail "kmodctl deps dummy differs from kmod's: [$(words "$expected")]"
ok "kmodctl deps and kmod's modprobe agree: $(words "$OUT")"

say "a softlinked folder of modules: its modules are indexed, and new files in it too"
mkdir -p /root/drivers
mv "$MODDIR/kernel/drivers/net/veth$KO" "/root/drivers/veth$KO"
ln -s /root/drivers "$MODDIR/extra/drivers"
wait_dep "extra/drivers/veth$KO" '$' "the module in the linked folder is indexed"
mv "$MODDIR/kernel/drivers/net/ifb$KO" "/root/drivers/ifb$KO"
wait_dep "extra/drivers/ifb$KO" '$' "a file moved into the linked folder is indexed"
must "$KMODCTL" load veth
[ "$OUT" = veth ] || fail "kmodctl load veth should have inserted veth"
expect_loaded veth
grep -q "^kernel/drivers/net/veth$KO:" "$MODDIR/modules.dep" &&
    fail "modules.dep still lists the moved veth$KO"
ok "the old path is gone from modules.dep"

say "the link removed: the module leaves the index"
rm "$MODDIR/extra/dummy$KO"
wait_until 30 sh -c "! grep -q '^extra/dummy$KO:' '$MODDIR/modules.dep'" ||
    fail "modules.dep still lists extra/dummy$KO after 30 s"
ok "extra/dummy$KO left modules.dep"
exit 0
