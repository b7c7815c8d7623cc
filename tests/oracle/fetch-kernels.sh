#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Fetch Debian's amd64 and cloud-amd64 kernel images and lay out the module trees that the oracle
# tests run kmod's depmod and ours on:
#
#   CACHE/debs/                       the downloaded .deb files (meta packages and images)
#   CACHE/trees/<flavour>/            `dpkg -x` of the image: lib/modules/<version>/...
#   CACHE/trees/<flavour>-xz/         lib/modules only, every *.ko compressed like kbuild's xz step
#   CACHE/trees/<flavour>-zst/        lib/modules only, every *.ko compressed like kbuild's zstd step
#   CACHE/trees/<tree>.stamp          written last; a tree without a matching stamp is rebuilt
#
# Usage: fetch-kernels.sh [CACHE_DIR]   (default: ${KMODD_TEST_CACHE:-/var/cache/kmodd-test})
# Environment: KMODD_KERNEL_FLAVOURS (default "amd64 cloud-amd64"), KMODD_COMPRESSED_TREES (the
# compressed copies to make, default "xz zst"; empty for a release whose modules come compressed,
# as Debian 13's .ko.xz). The release is the one apt serves: in a Debian 13 root, Debian 13's.
#
# Idempotent: a second run with the same archive state downloads and rewrites nothing. If the
# archive moved to a new kernel ABI, the affected trees are rebuilt. Nothing is written outside
# CACHE_DIR except by `apt-get update`, which runs only when apt has no package lists.
set -euo pipefail

read -r -a kFlavours <<<"${KMODD_KERNEL_FLAVOURS:-amd64 cloud-amd64}"
read -r -a kCompressions <<<"${KMODD_COMPRESSED_TREES-xz zst}"
readonly kFlavours kCompressions
# The stamp format; bump it when the layout or the way a tree is built changes.
readonly kStampFormat=2
# kbuild's scripts/Makefile.modinst: xz modules need a CRC32 check for the in-kernel decompressor.
readonly kXzArgs=(--check=crc32 --lzma2=dict=1MiB)
readonly kZstdArgs=(-q --rm)

cache=${1:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}}
jobs=$(nproc 2>/dev/null || echo 2)

log() { printf 'fetch-kernels: %s\n' "$*" >&2; }
# Seconds since START (an $EPOCHREALTIME value), one decimal.
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
die() { log "error: $*"; exit 1; }

for tool in apt-get apt-cache dpkg dpkg-deb xz zstd sha256sum xargs find; do
    command -v "$tool" >/dev/null ||
        die "'$tool' not found (apt-get install apt dpkg xz-utils zstd findutils coreutils)"
done

case $cache in
/*) ;;
*) cache=$PWD/$cache ;;
esac
mkdir -p "$cache/debs" "$cache/trees"
debs=$cache/debs
trees=$cache/trees

# apt-get download and apt-cache need package lists; a fresh container has none.
ensure_apt_lists() {
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
        ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        log "apt has no usable package lists, running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
    fi
}

# fetch_deb SPEC: download the package SPEC (name or name=version) into $debs unless a file with
# the archive's SHA256 is already there. Prints the .deb's path and its sha256, tab-separated.
# Stale package lists name files the mirror no longer has: then the lists are updated, once.
fetch_deb() {
    local spec=$1 retry=${2:-1} line file sha started
    line=$(apt-get download --print-uris "$spec" 2>/dev/null | head -n 1) ||
        die "apt cannot locate '$spec'"
    [[ -n $line ]] || die "apt cannot locate '$spec'"
    # 'URI' FILENAME SIZE SHA256:HEX
    read -r _ file _ sha <<<"$line"
    sha=${sha#SHA256:}
    [[ $sha =~ ^[0-9a-f]{64}$ ]] || die "apt gave no SHA256 for '$spec': $line"
    if [[ ! -f $debs/$file ]] || [[ $(sha256sum <"$debs/$file" | cut -d' ' -f1) != "$sha" ]]; then
        log "downloading $file"
        started=$EPOCHREALTIME
        rm -f "$debs/$file"
        # As root apt would drop to the _apt user, which cannot write into a root-owned cache.
        if ! (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$spec" >&2); then
            [[ $retry -eq 1 ]] || die "apt-get download '$spec' failed"
            log "apt-get download '$spec' failed, updating the package lists and retrying"
            apt-get update -qq >&2 || die "apt-get update failed"
            fetch_deb "$spec" 0
            return
        fi
        [[ $(sha256sum <"$debs/$file" | cut -d' ' -f1) == "$sha" ]] ||
            die "'$file' does not have the archive's SHA256"
        log "$file: downloaded in $(elapsed "$started") s"
    fi
    printf '%s\t%s\n' "$debs/$file" "$sha"
}

# The single lib/modules/<version> directory of a tree.
module_version() {
    local dirs=("$1"/lib/modules/*/)
    [[ ${#dirs[@]} -eq 1 && -d ${dirs[0]} ]] ||
        die "'$1/lib/modules' must hold exactly one kernel version"
    basename "${dirs[0]}"
}

count_modules() {
    find "$1/lib/modules" -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' \
        -o -name '*.ko.gz' \) | wc -l
}

# is_fresh TREE STAMP_TEXT: the tree was finished from exactly these inputs.
is_fresh() {
    [[ -d $1 && -f $1.stamp && $(<"$1.stamp") == "$2" ]]
}

# finish TREE STAMP_TEXT: move TREE.tmp into place and write the stamp last.
finish() {
    mv "$1.tmp" "$1"
    printf '%s\n' "$2" >"$1.stamp.tmp"
    mv "$1.stamp.tmp" "$1.stamp"
}

# start TREE: forget whatever a previous (possibly interrupted) run left for TREE.
start() {
    rm -f "$1.stamp"
    # The oracle's cached kmod outputs belong to the old tree.
    rm -rf "$1" "$1.tmp" "$1.oracle"
}

# compress_tree SRC DST ALG: DST gets SRC's lib/modules with every *.ko compressed by ALG.
compress_tree() {
    local src=$1 dst=$2 alg=$3 started=$EPOCHREALTIME
    mkdir -p "$dst.tmp"
    # A hard-link farm; the compressors write a new file and unlink only the farm's link, so
    # SRC is left untouched.
    cp -al "$src/lib" "$dst.tmp/lib"
    case $alg in
    xz) find "$dst.tmp/lib/modules" -type f -name '*.ko' -print0 |
        xargs -0 -r -P "$jobs" -n 16 xz -f -q -T1 "${kXzArgs[@]}" ;;
    zst) find "$dst.tmp/lib/modules" -type f -name '*.ko' -print0 |
        xargs -0 -r -P "$jobs" -n 16 zstd -f "${kZstdArgs[@]}" ;;
    *) die "unknown compression '$alg'" ;;
    esac
    if find "$dst.tmp/lib/modules" -type f -name '*.ko' | grep -q .; then
        die "'$dst.tmp' still has uncompressed modules"
    fi
    # Trees share no inode: whatever happens to one tree's files cannot reach another's.
    find "$dst.tmp" -type f -links +1 -exec sh -c \
        'for f; do cp -p "$f" "$f.copy" && mv -f "$f.copy" "$f"; done' sh {} +
    log "$(basename "$dst"): compressed in $(elapsed "$started") s"
}

ensure_apt_lists

current_debs=()
for flavour in "${kFlavours[@]}"; do
    meta=linux-image-$flavour
    fetched=$(fetch_deb "$meta")
    meta_deb=${fetched%%$'\t'*}
    current_debs+=("$(basename "$meta_deb")")
    depends=$(dpkg-deb -f "$meta_deb" Depends)
    # "linux-image-6.1.0-56-amd64 (= 6.1.192-2)[, ...]": the first alternative is the image.
    if [[ ! $depends =~ ^(linux-image-[^[:space:],|]+)[[:space:]]*(\(=[[:space:]]*([^\)[:space:]]+)\))? ]]; then
        die "cannot read the image package from $meta's Depends: '$depends'"
    fi
    image=${BASH_REMATCH[1]}
    image_version=${BASH_REMATCH[3]}
    spec=$image${image_version:+=$image_version}
    fetched=$(fetch_deb "$spec")
    image_deb=${fetched%%$'\t'*}
    image_sha=${fetched#*$'\t'}
    current_debs+=("$(basename "$image_deb")")

    base=$trees/$flavour
    base_stamp=$(printf 'format=%s\nflavour=%s\npackage=%s\ndeb=%s\nsha256=%s' \
        "$kStampFormat" "$flavour" "$image" "$(basename "$image_deb")" "$image_sha")
    if ! is_fresh "$base" "$base_stamp"; then
        start "$base"
        log "unpacking $(basename "$image_deb")"
        started=$EPOCHREALTIME
        mkdir -p "$base.tmp"
        dpkg -x "$image_deb" "$base.tmp"
        # Debian 13's packages are merged-/usr: the modules come in usr/lib/modules.
        if [[ ! -d $base.tmp/lib/modules && -d $base.tmp/usr/lib/modules ]]; then
            mkdir -p "$base.tmp/lib"
            mv "$base.tmp/usr/lib/modules" "$base.tmp/lib/modules"
        fi
        module_version "$base.tmp" >/dev/null
        [[ $(count_modules "$base.tmp") -gt 0 ]] || die "'$image_deb' holds no modules"
        finish "$base" "$base_stamp"
        log "$flavour: unpacked in $(elapsed "$started") s"
    fi

    for alg in "${kCompressions[@]}"; do
        tree=$base-$alg
        case $alg in
        xz) how="xz ${kXzArgs[*]} ($(xz --version | head -n 1))" ;;
        zst) how="zstd ${kZstdArgs[*]} ($(zstd --version))" ;;
        esac
        stamp=$(printf '%s\ncompression=%s' "$base_stamp" "$how")
        if ! is_fresh "$tree" "$stamp"; then
            start "$tree"
            compress_tree "$base" "$tree" "$alg"
            finish "$tree" "$stamp"
        fi
    done
done

# Debs of kernels the archive no longer points at only cost disk.
for deb in "$debs"/linux-image-*.deb; do
    [[ -e $deb ]] || continue
    name=$(basename "$deb")
    keep=0
    for c in "${current_debs[@]}"; do [[ $c == "$name" ]] && keep=1; done
    [[ $keep -eq 1 ]] || { log "removing stale $name"; rm -f "$deb"; }
done

for flavour in "${kFlavours[@]}"; do
    for tree in "$trees/$flavour" "${kCompressions[@]/#/$trees/$flavour-}"; do
        printf '%s\t%s\t%s modules\n' "$tree" "$(module_version "$tree")" "$(count_modules "$tree")"
    done
done
