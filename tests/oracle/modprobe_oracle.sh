#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# modprobe_oracle.sh KMODCTL TREE_ROOT [CONFIG]
#
# Compares `kmodctl modprobe -D` with kmod's `modprobe -D` (Debian 12's kmod 30) for every
# module of a kernel tree, and for a large set of aliases (every literal alias of
# modules.alias, fs-*, crypto-*, symbol:* names and a few that match nothing), in one `-a -D`
# run each, and `-c` (the configuration and the alias and symbol indexes). CONFIG replaces the
# modprobe.d configuration (-C); default: /dev/null. Byte-identical standard output and the
# same exit status are required.
set -eu

kmodctl=$1
tree=$2
config=${3:-/dev/null}
[ -x "$kmodctl" ] || { echo "'$kmodctl' is not an executable file (is kmodctl built?)" >&2; exit 2; }
version=
for dir in "$tree"/lib/modules/*/; do
    [ -d "$dir" ] && version=$(basename "$dir") && break
done
[ -n "$version" ] || { echo "no kernel in $tree/lib/modules" >&2; exit 2; }

scratch=$(mktemp -d /tmp/kmodd-modprobe-oracle.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# The index files come from kmod's depmod on a hard-link copy (the cache tree stays as it is).
mkdir -p "$scratch/root/lib/modules"
cp -al "$tree/lib/modules/$version" "$scratch/root/lib/modules/$version"
/usr/sbin/depmod -C /dev/null -b "$scratch/root" "$version"
dir="$scratch/root/lib/modules/$version"

# Every module name, then aliases: the literal ones (no glob characters) and a sample of
# pattern ones, used as given.
sed -n 's#^\([^:]*\):.*#\1#p' "$dir/modules.dep" | sed 's#.*/##; s#\.ko.*##' > "$scratch/names"
sed -n 's/^alias \([^ ]*\) .*/\1/p' "$dir/modules.alias" | grep -v '[][*?]' | sort -u > "$scratch/literal"
sed -n 's/^alias \([^ ]*\) .*/\1/p' "$dir/modules.alias" | grep '[][*?]' | awk 'NR % 7 == 0' > "$scratch/patterns"
sed -n 's/^alias \(symbol:[^ ]*\) .*/\1/p' "$dir/modules.symbols" | awk 'NR % 5 == 0' > "$scratch/symbols"
printf '%s\n' my-fs my-glob-anything crypto-my-crc dummy loop floppy pcspkr ext4 vfat \
    snd-hda-intel no-such-module symbol:no_such_symbol "fs-no-such" > "$scratch/special"

status=0
for set in names literal patterns symbols special; do
    count=$(wc -l < "$scratch/$set")
    set +e
    # The set's names are words on purpose: one argument each.
    # shellcheck disable=SC2046
    /usr/sbin/modprobe -C "$config" -d "$scratch/root" -S "$version" -a -D $(cat "$scratch/$set") \
        > "$scratch/kmod.$set.out" 2> "$scratch/kmod.$set.err"
    kmod_status=$?
    # shellcheck disable=SC2046
    "$kmodctl" modprobe -C "$config" -d "$scratch/root" -S "$version" -a -D $(cat "$scratch/$set") \
        > "$scratch/ours.$set.out" 2> "$scratch/ours.$set.err"
    ours_status=$?
    set -e
    lines=$(wc -l < "$scratch/kmod.$set.out")
    if cmp -s "$scratch/kmod.$set.out" "$scratch/ours.$set.out" && [ "$kmod_status" = "$ours_status" ]; then
        echo "$set: identical ($count requests, $lines lines, exit $kmod_status)"
    else
        echo "$set: DIFFERENT ($count requests; exit kmod $kmod_status, ours $ours_status)"
        diff "$scratch/kmod.$set.out" "$scratch/ours.$set.out" | head -n 20
        echo "-- kmod stderr:"; head -n 5 "$scratch/kmod.$set.err"
        echo "-- our stderr:"; head -n 5 "$scratch/ours.$set.err"
        status=1
    fi
done

# -c: the configuration as kmod reads it, then the alias and symbol indexes. kmod before 33
# knows no weakdep lines (it rejects them, kmodctl keeps them): those leave the configuration.
kmod_version=$(/usr/sbin/modprobe --version | sed -n 's/^kmod version \([0-9]*\).*/\1/p')
show_config=$config
if [ "$kmod_version" -lt 33 ] && [ "$config" != /dev/null ]; then
    grep -v '^weakdep' "$config" >"$scratch/config-without-weakdep.conf"
    show_config=$scratch/config-without-weakdep.conf
fi
set +e
/usr/sbin/modprobe -c -C "$show_config" -d "$scratch/root" -S "$version" >"$scratch/kmod.c" 2>/dev/null
kmod_status=$?
"$kmodctl" modprobe -c -C "$show_config" -d "$scratch/root" -S "$version" >"$scratch/ours.c" 2>/dev/null
ours_status=$?
set -e
if cmp -s "$scratch/kmod.c" "$scratch/ours.c" && [ "$kmod_status" = "$ours_status" ]; then
    echo "-c: identical ($(wc -l <"$scratch/kmod.c") lines, exit $kmod_status)"
else
    echo "-c: DIFFERENT (exit kmod $kmod_status, ours $ours_status)"
    diff "$scratch/kmod.c" "$scratch/ours.c" | head -n 20
    status=1
fi
exit $status
