# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Loading real modules through kmodctl -> D-Bus -> kmodd inserts what kmod's modprobe would, in
# the same order: deep dependency chains, softdeps through aliases (btrfs's "pre: crypto-crc32c",
# "pre: blake2b-256", libcrc32c's "pre: crc32c"), modules an earlier load already brought, a
# load by alias, a builtin module. kmod's `modprobe -n -v` reads the index kmodd wrote: nobody
# ran depmod in this machine.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

# loaded_names: the names in /proc/modules, sorted.
loaded_names() { cut -d' ' -f1 /proc/modules | sort; }

# check_load NAME: kmodctl load NAME inserts exactly kmod's plan, and the kernel has them all.
check_load() {
    say "kmodctl load $1 inserts what 'modprobe -n -v $1' would insert, in that order"
    expected=$(kmod_plan "$1")
    printf 'kmod plans:\n%s\n' "$expected" | sed 's/^/  /'
    [ -n "$expected" ] || fail "kmod plans no insertion for '$1': the scenario is wrong"
    before=$(loaded_names)
    must "$KMODCTL" load "$1"
    if [ "$OUT" != "$expected" ]; then
        printf 'kmodctl inserted:\n%s\nkmod would insert:\n%s\n' "$OUT" "$expected"
        fail "kmodctl load $1 did not insert kmod's plan"
    fi
    ok "the inserted list is kmod's plan, in order"
    for module in $OUT; do
        grep -q "^$module [0-9]* [0-9-]* [^ ]* Live " /proc/modules ||
            fail "'$module' was reported inserted but is not live in /proc/modules"
    done
    ok "every inserted module is live in /proc/modules"
    appeared=$(loaded_names | grep -vxF "$before" || true)
    [ "$(printf '%s\n' "$appeared" | sort)" = "$(printf '%s\n' "$OUT" | sort)" ] ||
        fail "/proc/modules gained [$(words "$appeared")], kmodctl reported [$(words "$OUT")]"
    ok "/proc/modules gained exactly the reported modules"
}

say "kmodd wrote the index itself"
for file in modules.dep modules.dep.bin modules.alias.bin modules.softdep modules.symbols.bin; do
    [ -s "$MODDIR/$file" ] || fail "$MODDIR/$file is missing or empty"
done
ok "modules.dep and the binary indexes exist"

say "kmodctl deps btrfs lists what 'modprobe --show-depends btrfs' would insert"
expected=$("$MODPROBE" --show-depends btrfs | awk '$1 == "insmod" { print $2 }' |
    while read -r path; do name_of_path "$path"; done)
must "$KMODCTL" deps btrfs
[ "$OUT" = "$expected" ] || fail "kmodctl deps btrfs differs from kmod's: [$(words "$expected")]"
ok "same modules, same order"
expect_in "$OUT" blake2b_generic "btrfs's softdep 'blake2b-256' resolved through an alias"
expect_in "$OUT" crc32c "btrfs's softdep 'crypto-crc32c' resolved through an alias"

# xfs first: it brings libcrc32c and, through libcrc32c's softdep, crc32c; btrfs then needs
# them no more.
check_load xfs
check_load btrfs
check_load ext4
check_load fs-vfat
expect_loaded vfat

say "loading a module that is already loaded inserts nothing, as modprobe does"
[ -z "$(kmod_plan btrfs)" ] || fail "kmod would insert something for a loaded btrfs"
must "$KMODCTL" load btrfs
[ -z "$OUT" ] || fail "kmodctl load btrfs inserted something again: $OUT"
ok "nothing inserted, success"

say "loading a builtin module succeeds and inserts nothing"
grep -q '/ipv6.ko$' "$MODDIR/modules.builtin" || fail "ipv6 is not builtin in this kernel"
must "$KMODCTL" load ipv6
[ -z "$OUT" ] || fail "kmodctl load ipv6 inserted: $OUT"
ok "nothing inserted, success"

say "the kernel's own module requests, if any (they bypass kmodd)"
cat /run/kernel-modprobe.log 2>/dev/null || echo "  (none)"
exit 0
