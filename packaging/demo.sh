#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, on embedded defaults: builds kmodd and kmodctl, starts a private D-Bus bus and
# kmodd on it in sandbox mode (a simulated kernel: nothing touches the real one) on a demo
# module tree, and plays the seed's story: a developer softlinks two freshly built modules into
# the tree, the index updates by itself, `kmodctl load mod2` loads mod1 first, `kmodctl unload
# mod2` removes both. kmodd then keeps running for you to try more, until Ctrl-C.
#
#   packaging/demo.sh [--once]     --once: stop after the story (used by the tests)
set -eu
cd "$(dirname "$0")/.."
once=no
[ "${1:-}" = "--once" ] && once=yes

./packaging/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kmodd kmodctl kmodctl_front kmodd_fixture_modules

demo=${KMODD_DEMO_DIR:-/tmp/kmodd-demo}
version=1.0.0-demo
modules=build/tests/fixtures/modules
tree=$demo/lib/modules/$version
kmodd_pid=
bus_pid=
stop() {
    if [ -n "$kmodd_pid" ] && kill "$kmodd_pid" 2>/dev/null; then
        wait "$kmodd_pid" 2>/dev/null || true
    fi
    if [ -n "$bus_pid" ]; then
        kill "$bus_pid" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 0' INT TERM

rm -rf "$demo"
mkdir -p "$tree/kernel/drivers" "$tree/extra" "$demo/home/dev/mydriver"
# What a kernel's `make modules_install` provides besides the modules: here no module at all
# yet (blockdev stands in for the kernel's own), and the files depmod reads.
cp "$modules/blockdev.ko" "$tree/kernel/drivers/"
printf 'kernel/drivers/blockdev.ko\n' > "$tree/modules.order"
: > "$tree/modules.builtin"
: > "$tree/modules.builtin.modinfo"

# A bus of our own: the demo needs neither root nor the system bus.
bus="unix:path=$demo/bus"
cat > "$demo/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>$bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file="$demo/bus.conf" --nofork >"$demo/dbus.log" 2>&1 &
bus_pid=$!

kmodctl="build/bin/kmodctl --bus $bus"
build/bin/kmodd --bus "$bus" --modules-dir "$demo/lib/modules" --kernel-release "$version" \
    --sandbox-kernel "$demo/sandbox" --config /dev/null >"$demo/kmodd.log" 2>&1 &
kmodd_pid=$!
tries=0
until $kmodctl status >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$kmodd_pid" 2>/dev/null; then
        echo "kmodd did not start; its log:" >&2
        cat "$demo/kmodd.log" >&2
        exit 1
    fi
    sleep 0.1
done

say() { printf '\n$ %s\n' "$*"; }
show() { say "$@"; sh -c "$*"; }

echo "kmodd serves kernel release $version of $demo/lib/modules on a private bus ($bus),"
echo "loading into a simulated kernel kept in $demo/sandbox. Its log: $demo/kmodd.log"
show "$kmodctl status"

echo
echo "A developer has just built two modules (mod2 needs mod1) in $demo/home/dev/mydriver"
echo "and softlinks them into the tree. Nobody runs depmod:"
cp "$modules/mod1.ko" "$modules/mod2.ko" "$demo/home/dev/mydriver/"
show "ln -s $demo/home/dev/mydriver/mod1.ko $demo/home/dev/mydriver/mod2.ko $tree/extra/"
tries=0
until grep -q '^extra/mod2.ko: extra/mod1.ko$' "$tree/modules.dep" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -gt 100 ] && { echo "the index did not follow; kmodd's log:" >&2; cat "$demo/kmodd.log" >&2; exit 1; }
    sleep 0.05
done
show "cat $tree/modules.dep"
show "$kmodctl deps mod2"
show "$kmodctl load mod2"
show "$kmodctl list"
show "$kmodctl unload mod2"
show "$kmodctl list"

if [ "$once" = yes ]; then
    exit 0
fi
cat <<EOF

kmodd keeps running (Ctrl-C stops it and the bus). In another terminal, try:
  $kmodctl monitor                  # signals as they come
  $kmodctl load mod2                # inserts mod1, then mod2
  $kmodctl info mod1
  cp build/tests/fixtures/modules/mod3.ko $demo/home/dev/mydriver/ && \\
    ln -s $demo/home/dev/mydriver/mod3.ko $tree/extra/   # indexed within milliseconds
  $kmodctl status --json
  $kmodctl unload mod2              # removes mod2, then mod1
EOF
wait "$kmodd_pid"
