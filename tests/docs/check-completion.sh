#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives kmodctl's bash completion as bash would (COMP_WORDS, COMP_CWORD, then the function)
# on a module tree of our own, and checks what it offers.
#
# Usage: check-completion.sh COMPLETION_FILE
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 COMPLETION_FILE" >&2; exit 2; }
# shellcheck source=packaging/completion/kmodctl
source "$1"
status=0
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/6.1.0-test" "$dir/6.12.0-other"
printf '%s\n' 'kernel/fs/btrfs/btrfs.ko.xz: kernel/lib/raid6.ko.xz' 'kernel/lib/raid6.ko.xz:' \
    'kernel/drivers/net/dummy.ko:' >"$dir/6.1.0-test/modules.dep"
printf '%s\n' 'kernel/fs/xfs/xfs.ko.xz:' >"$dir/6.12.0-other/modules.dep"
export KMODCTL_COMPLETION_MODULE_DIR=$dir/6.1.0-test

# offers LINE EXPECTED...: completing the last word of LINE offers exactly EXPECTED.
offers() {
    local line=$1
    shift
    read -r -a COMP_WORDS <<<"$line"
    [[ $line == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _kmodctl
    local got want
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    if [[ $got == "$want" ]]; then
        echo "ok: '$line' offers: $got"
    else
        echo "FAIL: '$line' offers [$got], expected [$want]"
        status=1
    fi
}

offers 'kmodctl lo' load
offers 'kmodctl de' deps depmod dev
offers 'kmodctl load b' btrfs
offers 'kmodctl load ' btrfs raid6 dummy
offers 'kmodctl --bus s' session system
offers 'kmodctl --bus session info d' dummy
offers 'kmodctl rebuild 6.12' 6.12.0-other
offers 'kmodctl depmod --kmod' --kmod-format
offers 'kmodctl modprobe --show-d' --show-depends
offers 'kmodctl modprobe r' raid6
offers 'kmodctl --ver' --version
offers 'kmodctl load dummy --no' --no-ask-password
offers 'kmodctl info dummy --no'
offers 'kmodctl rm' rmmod
offers 'kmodctl rmmod --f' --force
offers 'kmodctl kmod s' static-nodes
offers 'kmodctl modinfo d' dummy
offers 'kmodctl modinfo --fi' --field --filename
offers 'kmodctl kmod static-nodes --f' --format
offers 'kmodctl --kernel 6.12' 6.12.0-other
offers 'kmodctl --kernel 6.12.0-other deps ' xfs
offers 'kmodctl rdeps --kernel 6.12.0-other x' xfs
offers 'kmodctl rdeps r' raid6
offers 'kmodctl unload --d' --dry-run
offers 'kmodctl k' kernels kmod
offers 'kmodctl wh' why
offers 'kmodctl dev --f' --force-holders
mkdir -p "$dir/6.1.0-test/updates/kmodd-dev" "$dir/build"
ln -s "$dir/build/my_drv.ko" "$dir/6.1.0-test/updates/kmodd-dev/my_drv.ko"
offers 'kmodctl dev --unlink m' my_drv
: >"$dir/build/my_drv.ko"
: >"$dir/build/notes.txt"
offers "kmodctl dev $dir/build/" "$dir/build/my_drv.ko"
exit "$status"
