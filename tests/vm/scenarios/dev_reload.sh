# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# `kmodctl dev` on the real kernel: a developer's dev_a (built on the host against Debian's
# headers, copied to /vm/devmods) is linked into the tree and loaded with a parameter, and
# loaded again each time the "build" writes it anew (a half-written file is waited out), with
# the kernel's lines about it shown live; a module that uses it stops a reload until it goes;
# Ctrl-C unloads and unlinks it. Prints the figure: file written -> new instance live, p50.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

[ "$(cat /vm/devmods/release)" = "$KVER" ] ||
    fail "the modules were built for $(cat /vm/devmods/release), this kernel is $KVER"
mkdir -p /root/build "$MODDIR/extra"
cp /vm/devmods/dev_a.ko /root/build/dev_a.ko
# dev_b (in the tree) needs dev_a's symbol: it is the user that blocks a reload.
cp /vm/devmods/dev_b.ko "$MODDIR/extra/"

# build: what `make` does to the module file: a new file renamed over the old one.
build() {
    cp /vm/devmods/dev_a.ko /root/build/.dev_a.ko.tmp
    mv /root/build/.dev_a.ko.tmp /root/build/dev_a.ko
}
count() { grep -c "$1" /tmp/dev.out || true; }
has_count() { [ "$(count "$1")" -ge "$2" ]; }

say "kmodctl dev links dev_a and loads it with level=3"
"$KMODCTL" dev /root/build/dev_a.ko level=3 >/tmp/dev.out 2>&1 &
dev=$!
wait_until 60 grep -q '^loaded dev_a' /tmp/dev.out || fail "dev_a was not loaded: $(cat /tmp/dev.out)"
expect_loaded dev_a
[ "$(cat /sys/module/dev_a/parameters/level)" = 3 ] || fail "level is not 3"
ok "dev_a's level is 3"
expect_in "$(readlink "$MODDIR/updates/kmodd-dev/dev_a.ko")" /root/build/dev_a.ko \
    "the link in updates/kmodd-dev points to the build's file"
wait_until 10 grep -q '^kernel: dev_a: live with level 3' /tmp/dev.out ||
    fail "the kernel's line of dev_a's init is not shown: $(cat /tmp/dev.out)"
ok "the kernel's line is shown: $(grep '^kernel: dev_a: live' /tmp/dev.out | head -n 1)"

say "ten builds, ten reloads"
round=1
while [ "$round" -le 10 ]; do
    build
    wait_until 60 has_count '^reloaded dev_a in ' "$round" ||
        fail "build $round was not reloaded: $(cat /tmp/dev.out)"
    round=$((round + 1))
done
grep '^reloaded dev_a' /tmp/dev.out | sed 's/^/  | /'
[ "$(cat /sys/module/dev_a/parameters/level)" = 3 ] || fail "level is not 3 after the reloads"
ok "every reload kept level=3"
wait_until 10 has_count '^kernel: dev_a: gone' 10 ||
    fail "the kernel's lines of the unloads are not all shown: $(cat /tmp/dev.out)"
ok "the kernel's lines of each unload and load are shown ($(count '^kernel: dev_a'))"

say "a half-written module is waited out"
head -c 2000 /vm/devmods/dev_a.ko >/root/build/dev_a.ko
wait_until 30 grep -q 'is not a complete module' /tmp/dev.out ||
    fail "the truncated file was not noticed: $(cat /tmp/dev.out)"
[ "$(count '^reloaded dev_a in ')" -eq 10 ] || fail "the truncated file was loaded"
expect_loaded dev_a
build
wait_until 60 has_count "^reloaded dev_a in " 11 || fail "the whole file was not reloaded: $(cat /tmp/dev.out)"
ok "the whole file was reloaded"

say "dev_b uses dev_a: no reload while it does"
must "$KMODCTL" load dev_b
build
wait_until 30 grep -q "is not reloaded: it is used by 'dev_b'" /tmp/dev.out ||
    fail "the refusal naming dev_b is not shown: $(cat /tmp/dev.out)"
grep "is not reloaded" /tmp/dev.out | sed 's/^/  | /'
must "$KMODCTL" unload dev_b
expect_loaded dev_a

say "Ctrl-C unloads and unlinks dev_a"
kill -INT "$dev"
wait "$dev" || fail "kmodctl dev exited with status $?: $(cat /tmp/dev.out)"
sed 's/^/  | /' /tmp/dev.out | tail -n 6
expect_not_loaded dev_a
[ -e "$MODDIR/updates/kmodd-dev/dev_a.ko" ] && fail "the link is still there"
ok "the link is gone"
grep -q 'updates/kmodd-dev' "$MODDIR/modules.dep" && fail "modules.dep still has the link"
ok "modules.dep no longer has it"
figure=$(sed -n 's/^\([0-9]*\) reloads: file written -> live p50 \([0-9]*\) ms, max \([0-9]*\) ms$/\1 reloads, p50 \2 ms, max \3 ms/p' /tmp/dev.out)
[ -n "$figure" ] || fail "no figure line in: $(cat /tmp/dev.out)"
echo "FIGURE kmodctl dev, file written -> new instance live (TCG): $figure"
expect_kmodd_alive

say "--force-holders: dev_b goes for each reload and comes back; --keep leaves dev_a"
# A file of its own: the first run's output must not answer the waits below.
"$KMODCTL" dev --force-holders --keep /root/build/dev_a.ko >/tmp/dev2.out 2>&1 &
dev=$!
wait_until 60 grep -q '^loaded dev_a' /tmp/dev2.out || fail "dev_a was not loaded: $(cat /tmp/dev2.out)"
must "$KMODCTL" load dev_b
build
wait_until 60 grep -q '^reloaded dev_a in ' /tmp/dev2.out || fail "dev_a was not reloaded: $(cat /tmp/dev2.out)"
wait_until 10 grep -q "^loaded 'dev_b' back" /tmp/dev2.out ||
    fail "dev_b was not loaded back: $(cat /tmp/dev2.out)"
expect_in "$(cat /tmp/dev2.out)" "unloaded 'dev_b', which used 'dev_a'" "dev_b went for the reload"
expect_loaded dev_b
kill -INT "$dev"
wait "$dev" || fail "kmodctl dev --keep exited with status $?: $(cat /tmp/dev2.out)"
expect_in "$(cat /tmp/dev2.out)" "kept dev_a loaded and linked" "--keep says what it left"
expect_loaded dev_a
[ -L "$MODDIR/updates/kmodd-dev/dev_a.ko" ] || fail "--keep removed the link"
must "$KMODCTL" unload dev_b
must "$KMODCTL" unload dev_a
expect_not_loaded dev_a
must "$KMODCTL" dev --unlink dev_a
[ -e "$MODDIR/updates/kmodd-dev/dev_a.ko" ] && fail "dev --unlink left the link"
ok "dev --unlink removed the link"
expect_kmodd_alive
