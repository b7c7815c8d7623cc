#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# modinfo_oracle.sh KMODCTL TREE_ROOT
#
# kmodctl invoked as modinfo against kmod's modinfo on a kernel tree indexed by kmod's depmod:
# every module file by path and by name (every fifth where they are compressed), every built-in
# one (modules.builtin.modinfo) through -b/-k, a sample of aliases,
# every tenth module with each of -F FIELD, -0, -p, -n, -a, -d, -l and -m, and the errors of a
# missing module, a missing file, a file that is no ELF and a truncated one. Modules are given 25
# to a run, the errors one to a run. Standard output, standard error and the exit status of each
# run must be the same; signatures (PKCS#7 signer, key, hash and signature) included.
set -eu

kmodctl=$1
tree=$2
[ -x "$kmodctl" ] || { echo "'$kmodctl' is not an executable file (is kmodctl built?)" >&2; exit 2; }
version=
for dir in "$tree"/lib/modules/*/; do
    [ -d "$dir" ] && version=$(basename "$dir") && break
done
[ -n "$version" ] || { echo "no kernel in $tree/lib/modules" >&2; exit 2; }

scratch=$(mktemp -d /tmp/kmodd-modinfo-oracle.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/root/lib/modules" "$scratch/kmod-bin" "$scratch/ours-bin"
cp -al "$tree/lib/modules/$version" "$scratch/root/lib/modules/$version"
/usr/sbin/depmod -C /dev/null -b "$scratch/root" "$version"
dir=$scratch/root/lib/modules/$version
ln -s "$(command -v kmod)" "$scratch/kmod-bin/modinfo"
ln -s "$(readlink -f "$kmodctl")" "$scratch/ours-bin/modinfo"

find "$dir" -name '*.ko*' | sort >"$scratch/all"
step=1
grep -q '\.ko$' "$scratch/all" || step=5
awk -v step="$step" 'NR % step == 0' "$scratch/all" >"$scratch/paths"
sed 's#.*/##; s#\.ko.*##' "$scratch/all" | awk -v step="$step" 'NR % step == 0' >"$scratch/names"
sed 's#.*/##; s#\.ko$##' "$dir/modules.builtin" >>"$scratch/names"
sed -n 's/^alias \([^ ]*\) .*/\1/p' "$dir/modules.alias" | awk 'NR % 50 == 0' >"$scratch/aliases"
awk 'NR % 10 == 0' "$scratch/paths" >"$scratch/some"
printf 'not a module\n' >"$scratch/not-elf.ko"
head -c 200 "$(sed -n 1p "$scratch/paths")" >"$scratch/truncated.ko"

# many MODINFO ARGS... <LIST: MODINFO ARGS... on each line of LIST, 25 at a time (modinfo takes
# many modules; one process per module made this test take minutes), standard output and
# standard error apart (their interleaving would depend on buffering), then the status.
many() {
    xargs -d '\n' -n 25 "$@" >"$scratch/out" 2>"$scratch/err" && status=0 || status=$?
    cat "$scratch/out"
    echo "-- standard error"
    cat "$scratch/err"
    echo "status $status"
}

# runs MODINFO_DIR: every case, each run's output and status under a header.
runs() {
    m=$1/modinfo
    b="-b $scratch/root -k $version"
    echo "== every path"
    many "$m" <"$scratch/paths"
    echo "== every name"
    # shellcheck disable=SC2086 # $b is words
    many "$m" $b <"$scratch/names"
    echo "== the aliases"
    # shellcheck disable=SC2086
    many "$m" $b <"$scratch/aliases"
    for option in "-F alias" "-F depends" "-F signer" "-F signature" "-F filename" -0 -p -n \
        -a -d -l; do
        echo "== $option on some paths"
        # shellcheck disable=SC2086 # the option's words
        many "$m" $option <"$scratch/some"
    done
    echo "== -m on some names"
    # shellcheck disable=SC2086
    sed 's#.*/##; s#\.ko.*##' "$scratch/some" | many "$m" $b -m
    echo "== missing module"
    # shellcheck disable=SC2086
    "$m" $b no-such-module 2>&1 && echo "status 0" || echo "status $?"
    for bad in not-elf truncated; do
        for option in "" -n -p "-F license"; do
            echo "== $option $bad.ko"
            # shellcheck disable=SC2086 # the option's words
            "$m" $option "$scratch/$bad.ko" 2>&1 && echo "status 0" || echo "status $?"
        done
    done
    echo "== missing file"
    "$m" "$scratch/no-such-file.ko" 2>&1 && echo "status 0" || echo "status $?"
    echo "== two modules, one missing"
    # shellcheck disable=SC2086
    "$m" $b no-such-module "$(head -n 1 "$scratch/names")" 2>&1 && echo "status 0" || echo "status $?"
}
runs "$scratch/kmod-bin" >"$scratch/kmod"
# kmod 34 also says why a truncated compressed file did not expand ("libkmod: ERROR:
# xz_uncompress_belch: xz: Unexpected end of input"); kmod 30, and kmodctl, do not.
sed -i '/^libkmod: ERROR: [a-z]*_uncompress_belch: /d' "$scratch/kmod"
runs "$scratch/ours-bin" >"$scratch/ours"
cases=$(($(wc -l <"$scratch/paths") + $(wc -l <"$scratch/names") + $(wc -l <"$scratch/aliases") \
    + 12 * $(wc -l <"$scratch/some") + 11))
signed=$(grep -c '^sig_id:' "$scratch/kmod" || true)
if ! cmp -s "$scratch/kmod" "$scratch/ours"; then
    echo "modinfo_oracle: $tree: kmodctl differs from kmod ($cases cases):"
    first=$(cmp "$scratch/kmod" "$scratch/ours" | sed -n 's/.* line \([0-9]*\).*/\1/p')
    echo "first in case: $(head -n "$first" "$scratch/kmod" | grep '^== ' | tail -n 1)"
    diff "$scratch/kmod" "$scratch/ours" | head -n 40
    exit 1
fi
echo "modinfo_oracle: $tree: $cases cases ($signed with a signature), the same as kmod's"
