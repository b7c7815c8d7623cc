#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Crash consistency: kmodd killed with SIGKILL at random moments while it rebuilds must, after a
# restart, publish an index byte-identical to kmod's depmod for the tree, leave none of its
# temp files (".NAME.kmodd-PID-N") behind, and keep every record of who loaded what.
#
# Usage: kill9_oracle.sh KMODD KMODCTL TREE_ROOT [CYCLES]
#
# TREE_ROOT is a tree made by fetch-kernels.sh (never written to, nor linked: kmodd works on a
# copy of it). Each cycle starts kmodd on a private dbus-daemon, links a module into extra/ or
# removes the link, kills kmodd 0-80 ms later (its rebuild of this tree takes tens of milliseconds, so
# most kills land inside one), then starts kmodd again, waits until it has checked the tree,
# and compares. CYCLES defaults to $KMODD_KILL_CYCLES, else 20 (label oracle); 1000 is the
# long run (label long).
#
# Exit status: 0 when every cycle held; 1 when one did not (the scratch directory is kept);
# 2 on a usage or setup error.
set -euo pipefail

die() { printf 'kill9_oracle: error: %s\n' "$*" >&2; exit 2; }
fail() { printf 'kill9_oracle: FAIL (cycle %s): %s\n' "$cycle" "$*" >&2; keep=1; exit 1; }

[[ $# -ge 3 && $# -le 4 ]] || die "usage: $0 KMODD KMODCTL TREE_ROOT [CYCLES]"
kmodd=$1
kmodctl=$2
tree=${3%/}
cycles=${4:-${KMODD_KILL_CYCLES:-20}}
[[ -x $kmodd && -x $kmodctl ]] || die "kmodd or kmodctl is not built"
[[ -f $tree.stamp ]] || die "'$tree' is no finished tree (run fetch-kernels.sh)"
versions=("$tree"/lib/modules/*/)
[[ ${#versions[@]} -eq 1 ]] || die "'$tree' must hold exactly one kernel version"
version=$(basename "${versions[0]}")
kmod_depmod=/usr/sbin/depmod
[[ -x $kmod_depmod ]] || kmod_depmod=$(command -v depmod) || die "kmod's depmod not found"
dbus_daemon=$(command -v dbus-daemon) || die "dbus-daemon not found"

scratch=$(mktemp -d /tmp/kmodd-kill9.XXXXXX)
keep=0
bus_pid=""
kmodd_pid=""
cleanup() {
    [[ -n $kmodd_pid ]] && kill -KILL "$kmodd_pid" 2>/dev/null && wait "$kmodd_pid" 2>/dev/null
    [[ -n $bus_pid ]] && kill "$bus_pid" 2>/dev/null
    if [[ $keep -eq 1 ]]; then
        printf 'kill9_oracle: scratch kept in %s\n' "$scratch" >&2
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

root=$scratch/root
moddir=$root/lib/modules/$version
mkdir -p "$root/lib/modules"
# A copy, not a hard-link farm: linking changes the ctime of the shared tree's files, and the
# oracle tests running beside this one trust only files unchanged for two seconds. The farms
# that kmod's depmod runs on below link this copy's files.
cp -a "${versions[0]%/}" "$moddir"
rm -f "$moddir"/modules.{dep,dep.bin,alias,alias.bin,softdep,weakdep,symbols,symbols.bin}
rm -f "$moddir"/modules.{builtin.bin,builtin.alias.bin,devname}
mkdir -p "$scratch/cache" "$scratch/state" "$moddir/extra"
# The modules a cycle links in and out: a few of the tree's, linked from outside it.
mapfile -t pool < <(find "$moddir/kernel" -name '*.ko*' | LC_ALL=C sort | awk 'NR % 97 == 1' |
    head -n 8)
[[ ${#pool[@]} -ge 2 ]] || die "the tree has too few modules"
mkdir -p "$scratch/outside"
for module in "${pool[@]}"; do cp "$module" "$scratch/outside/"; done

cat >"$scratch/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:dir=$scratch</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
EOF
exec 3< <("$dbus_daemon" --config-file="$scratch/bus.conf" --nofork --print-address=1 \
    --print-pid=1 2>"$scratch/dbus.log")
read -r -t 10 address <&3 || die "dbus-daemon did not start: $(cat "$scratch/dbus.log")"
read -r -t 10 bus_pid <&3 || die "dbus-daemon did not say its pid"
ctl() { "$kmodctl" --bus "$address" "$@"; }

start_kmodd() {
    "$kmodd" --bus "$address" --modules-dir "$root/lib/modules" --kernel-release "$version" \
        --sandbox-kernel "$scratch/state" --depmod-config /dev/null --modprobe-config /dev/null \
        --cmdline "" --cache-dir "$scratch/cache" --debounce-ms 10 --config /dev/null \
        --log-level warning >>"$scratch/kmodd.log" 2>&1 &
    kmodd_pid=$!
    for _ in $(seq 400); do
        ctl status >/dev/null 2>&1 && return 0
        kill -0 "$kmodd_pid" 2>/dev/null || fail "kmodd exited at start: $(tail -n 5 "$scratch/kmodd.log")"
        sleep 0.05
    done
    fail "kmodd did not answer within 20 s"
}

wait_verified() {
    for _ in $(seq 600); do
        ctl status 2>/dev/null | grep -q '^Index verified: *yes' && return 0
        sleep 0.05
    done
    fail "kmodd did not finish checking the tree within 30 s"
}

stop_kmodd() {
    kill -TERM "$kmodd_pid"
    wait "$kmodd_pid" || fail "kmodd exited with status $? on SIGTERM"
    kmodd_pid=""
}

# A record of who loaded what, which no kill may lose or tear.
cycle=0
start_kmodd
wait_verified
first=$(basename "${pool[0]}")
first=${first%%.ko*}
first=${first//-/_}
ctl load "$first" >/dev/null || fail "cannot load $first into the sandbox kernel"
stop_kmodd

kills_in_rebuild=0
for ((cycle = 1; cycle <= cycles; cycle++)); do
    start_kmodd
    # Link or unlink one module, then kill kmodd somewhere in the rebuild that follows.
    pick=${pool[RANDOM % ${#pool[@]}]}
    link=$moddir/extra/$(basename "$pick")
    if [[ -L $link ]]; then rm -f "$link"; else ln -s "$scratch/outside/$(basename "$pick")" "$link"; fi
    sleep "0.0$((RANDOM % 8))$((RANDOM % 10))"
    kill -KILL "$kmodd_pid"
    wait "$kmodd_pid" 2>/dev/null || true
    kmodd_pid=""
    # A kill inside a publication leaves its temp files: the next start must clear them.
    if [[ -n $(find "$moddir" "$scratch/cache" -name '.*.kmodd-*') ]]; then
        kills_in_rebuild=$((kills_in_rebuild + 1))
    fi

    start_kmodd
    wait_verified
    ctl list 2>/dev/null | grep -q "^$first .*\[explicit\]$" ||
        fail "the record that kmodd loaded $first is lost: $(ctl list 2>&1 | head -n 3)"
    stop_kmodd
    left=$(find "$moddir" "$scratch/cache" "$scratch/state" -name '.*.kmodd-*')
    [[ -z $left ]] || fail "temp files left behind: $left"

    # kmod's depmod writes beside its input: it runs on a hard-link farm of the same tree.
    rm -rf "$scratch/expected"
    cp -al "$root" "$scratch/expected"
    expected=$scratch/expected/lib/modules/$version
    outputs=()
    for file in "$moddir"/modules.*; do
        name=$(basename "$file")
        [[ $name == modules.order || $name == modules.builtin* && $name != *.bin ]] && continue
        outputs+=("$name")
        rm -f "$expected/$name"
    done
    [[ ${#outputs[@]} -ge 10 ]] || fail "kmodd published only ${#outputs[@]} index files"
    "$kmod_depmod" -C /dev/null -b "$scratch/expected" "$version" 2>/dev/null ||
        fail "kmod's depmod failed"
    for name in "${outputs[@]}"; do
        cmp -s "$expected/$name" "$moddir/$name" || fail "$name differs from kmod's"
    done
done
printf 'kill9_oracle: %d kills (%d left temp files of a publication behind), each restart published kmod'"'"'s index, left no temp file and kept the records\n' \
    "$cycles" "$kills_in_rebuild"
