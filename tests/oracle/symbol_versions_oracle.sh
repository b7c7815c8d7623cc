#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# symbol_versions_oracle.sh KMODCTL TREE_ROOT
#
# `kmodctl modprobe --show-modversions` and `--show-exports` against kmod's modprobe for the
# module files of a kernel tree: every one of an uncompressed tree, every fifth of a compressed
# one (kmod decompresses each file for each run). Standard output, standard error and the exit
# status of each run must be the same (kmod 34's errno for a missing section read as kmod 30's).
set -eu

kmodctl=$1
tree=$2
[ -x "$kmodctl" ] || { echo "'$kmodctl' is not an executable file (is kmodctl built?)" >&2; exit 2; }
version=
for dir in "$tree"/lib/modules/*/; do
    [ -d "$dir" ] && version=$(basename "$dir") && break
done
[ -n "$version" ] || { echo "no kernel in $tree/lib/modules" >&2; exit 2; }

scratch=$(mktemp -d /tmp/kmodd-symbol-versions-oracle.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
find "$tree/lib/modules/$version" -name '*.ko*' | sort >"$scratch/all"
step=1
grep -q '\.ko$' "$scratch/all" || step=5
awk -v step="$step" 'NR % step == 0' "$scratch/all" >"$scratch/files"

# run TOOL...: both options on every file, each run's output and status under a header.
run() {
    while read -r file; do
        for option in --show-modversions --show-exports; do
            echo "== $option $file"
            "$@" "$option" "$file" 2>&1 && echo "status 0" || echo "status $?"
        done
    done <"$scratch/files"
}
run /sbin/modprobe >"$scratch/kmod"
# A module without the section: kmod 30 says ENOENT, kmod 34 ENODATA; kmodctl says kmod 30's.
if ! /sbin/modprobe --version | grep -q '^kmod version 30$'; then
    sed -i 's/: No data available$/: No such file or directory/' "$scratch/kmod"
fi
run "$kmodctl" modprobe >"$scratch/ours"
files=$(wc -l <"$scratch/files")
lines=$(grep -c '^0x' "$scratch/kmod" || true)
if ! cmp -s "$scratch/kmod" "$scratch/ours"; then
    echo "symbol_versions_oracle: $tree: kmodctl differs from kmod:"
    diff "$scratch/kmod" "$scratch/ours" | head -n 40
    exit 1
fi
[ "$lines" -gt "$files" ] || { echo "symbol_versions_oracle: only $lines symbol lines for $files files"; exit 1; }
echo "symbol_versions_oracle: $tree: $files files, $lines symbol lines, the same as kmod's"
