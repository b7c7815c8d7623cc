#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# depmod_files_oracle.sh KMODCTL TREE_ROOT
#
# `depmod VERSION FILE...`: the index of the module files named on the command line alone.
# kmodctl's and kmod's depmod each index every twentieth module file of a kernel tree, given
# by absolute path, plus one copied outside the module directory (written by its absolute
# path); the ten output files must be byte-identical. Then a relative path and a missing
# file must fail with kmod's message and status, and -a must index the whole tree.
set -eu

kmodctl=$1
tree=$2
[ -x "$kmodctl" ] || { echo "'$kmodctl' is not an executable file (is kmodctl built?)" >&2; exit 2; }
version=
for dir in "$tree"/lib/modules/*/; do
    [ -d "$dir" ] && version=$(basename "$dir") && break
done
[ -n "$version" ] || { echo "no kernel in $tree/lib/modules" >&2; exit 2; }

scratch=$(mktemp -d /tmp/kmodd-depmod-files-oracle.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/root/lib/modules" "$scratch/outside"
cp -al "$tree/lib/modules/$version" "$scratch/root/lib/modules/$version"
dir=$scratch/root/lib/modules/$version
find "$dir" -name '*.ko*' | sort >"$scratch/all"
awk 'NR % 20 == 0' "$scratch/all" >"$scratch/files"
outside=$(sed -n 1p "$scratch/all")
cp "$outside" "$scratch/outside/"
echo "$scratch/outside/$(basename "$outside")" >>"$scratch/files"
kmod_depmod=/usr/sbin/depmod
[ -x "$kmod_depmod" ] || kmod_depmod=/sbin/depmod
outputs="modules.dep modules.dep.bin modules.alias modules.alias.bin modules.softdep
modules.symbols modules.symbols.bin modules.builtin.bin modules.builtin.alias.bin modules.devname"

status=0
# compare WHAT ARGS...: both depmods with ARGS on the copy; outputs, stderr and status compared.
compare() {
    what=$1
    shift
    for side in kmod ours; do
        rm -f "$dir"/modules.*.bin "$dir/modules.dep" "$dir/modules.alias" "$dir/modules.softdep" \
            "$dir/modules.symbols" "$dir/modules.devname"
        set +e
        if [ "$side" = kmod ]; then
            "$kmod_depmod" -C /dev/null -b "$scratch/root" "$@" 2>"$scratch/$side.err"
        else
            "$kmodctl" depmod -C /dev/null -b "$scratch/root" "$@" 2>"$scratch/$side.err"
        fi
        echo $? >"$scratch/$side.rc"
        set -e
        mkdir -p "$scratch/$side.out"
        rm -f "$scratch/$side.out"/*
        for file in $outputs; do
            [ ! -e "$dir/$file" ] || cp "$dir/$file" "$scratch/$side.out/"
        done
    done
    # libkmod's lines lose their source location, which kmodctl does not print.
    grep -v WARNING "$scratch/kmod.err" |
        sed 's#^depmod: ERROR: [^ ]*libkmod[^ ]*:[0-9]* [a-z_]*() #depmod: ERROR: #' \
            >"$scratch/kmod.err.fatal" || true
    grep -v WARNING "$scratch/ours.err" >"$scratch/ours.err.fatal" || true
    if diff -r "$scratch/kmod.out" "$scratch/ours.out" >/dev/null &&
        cmp -s "$scratch/kmod.rc" "$scratch/ours.rc" &&
        cmp -s "$scratch/kmod.err.fatal" "$scratch/ours.err.fatal"; then
        modules=0
        [ ! -e "$scratch/ours.out/modules.dep" ] || modules=$(wc -l <"$scratch/ours.out/modules.dep")
        echo "$what: identical ($(find "$scratch/ours.out" -type f | wc -l) files, $modules" \
            "modules, exit $(cat "$scratch/ours.rc"))"
    else
        echo "$what: DIFFERENT (exit kmod $(cat "$scratch/kmod.rc"), ours $(cat "$scratch/ours.rc"))"
        diff -r "$scratch/kmod.out" "$scratch/ours.out" | head -n 20 || true
        diff "$scratch/kmod.err.fatal" "$scratch/ours.err.fatal" || true
        status=1
    fi
}

# shellcheck disable=SC2046 # one argument per file
compare "$(wc -l <"$scratch/files") files by path" "$version" $(cat "$scratch/files")
compare "a relative path" "$version" "kernel/$(basename "$outside")"
compare "one file twice" "$version" "$outside" "$outside"
compare "two files of one module name" "$version" "$outside" "$scratch/outside/$(basename "$outside")"
compare "a missing file" "$version" "$dir/no-such-module.ko"
compare "-a with a file (the whole tree)" -a "$version" "$(head -n 1 "$scratch/files")"
exit "$status"
