#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Oracle test: kmodctl's depmod must write the same index files as kmod's depmod, byte for byte:
# ten with kmod 30 (Debian 12), eleven (modules.weakdep too) with kmod 33 on (Debian 13's 34).
#
# Usage: depmod_oracle.sh KMODCTL TREE_ROOT
#
# TREE_ROOT is a tree made by fetch-kernels.sh: TREE_ROOT/lib/modules/<one version>/ and the stamp
# TREE_ROOT.stamp. The tree is never written to: kmod's depmod (which can only write next to its
# input) runs on a hard-link farm, and so does ours, which must honour -o like kmod >= 31 does:
# `-o DIR` is a root like `-b`, so the files land in DIR/lib/modules/<version>/.
#
# kmod's outputs are cached in TREE_ROOT.oracle/expected/, keyed by the tree's stamp and the depmod
# binary, so a re-run only runs ours.
#
# Environment:
#   KMODD_ORACLE_KMOD_DEPMOD  kmod's depmod (default: /usr/sbin/depmod, else depmod from PATH)
#   KMODD_ORACLE_KEEP         1: keep the scratch directory for inspection
#
# Exit status: 0 if all the files are identical, ours exited 0 and left the tree alone; 1 if not;
# 2 on a usage or setup error.
set -euo pipefail

# Every file some kmod release writes; kOutputs (below) holds those of the release at hand.
readonly kAllOutputs=(modules.dep modules.dep.bin modules.alias modules.alias.bin modules.softdep
    modules.weakdep modules.symbols modules.symbols.bin modules.builtin.bin
    modules.builtin.alias.bin modules.devname)
# Bump when the way the expected set is produced changes.
readonly kExpectedFormat=1

log() { printf '%s\n' "$*"; }
die() { printf 'depmod_oracle: error: %s\n' "$*" >&2; exit 2; }
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

[[ $# -eq 2 ]] || die "usage: $0 KMODCTL TREE_ROOT"
kmodctl=$1
tree=${2%/}
[[ -x $kmodctl && -f $kmodctl ]] || die "'$kmodctl' is not an executable file (is kmodctl built?)"
[[ -d $tree ]] || die "'$tree' is not a directory (run fetch-kernels.sh)"
tree=$(cd "$tree" && pwd -P)
[[ -f $tree.stamp ]] || die "'$tree' has no stamp, so it is unfinished (run fetch-kernels.sh)"

kmod_depmod=${KMODD_ORACLE_KMOD_DEPMOD:-}
if [[ -z $kmod_depmod ]]; then
    if [[ -x /usr/sbin/depmod ]]; then kmod_depmod=/usr/sbin/depmod; else
        kmod_depmod=$(command -v depmod) || die "kmod's depmod not found (apt-get install kmod)"
    fi
fi
kmod_version=$("$kmod_depmod" --version 2>&1 | head -n 1)
[[ $kmod_version =~ ^kmod\ version\ ([0-9]+) ]] || die "'$kmod_depmod' is not kmod: '$kmod_version'"
kmod_major=${BASH_REMATCH[1]}
kOutputs=()
for f in "${kAllOutputs[@]}"; do
    [[ $f == modules.weakdep && $kmod_major -lt 33 ]] && continue
    kOutputs+=("$f")
done
log "reference: $kmod_version, ${#kOutputs[@]} files"

versions=("$tree"/lib/modules/*/)
[[ ${#versions[@]} -eq 1 && -d ${versions[0]} ]] ||
    die "'$tree/lib/modules' must hold exactly one kernel version"
version=$(basename "${versions[0]}")
moddir=$tree/lib/modules/$version

state=$tree.oracle
mkdir -p "$state"
scratch=$(mktemp -d "$state/run.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [[ ${KMODD_ORACLE_KEEP:-0} == 1 ]]; then
        log "scratch kept: $scratch"
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

# make_farm ROOT: ROOT/lib/modules/VERSION as hard links to the tree's inputs, without any index
# file a previous depmod may have left in the tree.
make_farm() {
    mkdir -p "$1/lib/modules"
    cp -al "$moddir" "$1/lib/modules/"
    local f
    for f in "${kAllOutputs[@]}"; do
        rm -f "$1/lib/modules/$version/$f" "$1/lib/modules/$version/$f.tmp"
    done
}

# Everything depmod could change in a tree: entries, sizes, mtimes, inodes.
snapshot() {
    (cd "$1" && find . -printf '%p\t%y\t%s\t%T@\t%i\n' | LC_ALL=C sort)
}

log "tree: $tree ($version)"

# --- expected set: kmod's depmod, cached -------------------------------------------------------
key=$(
    printf 'format=%s\n' "$kExpectedFormat"
    cat "$tree.stamp"
    printf 'depmod=%s\n%s\n' "$kmod_depmod" "$kmod_version"
    sha256sum <"$(readlink -f "$kmod_depmod")"
    printf 'args=-C /dev/null -b ROOT %s\n' "$version"
)
expected=$state/expected
if [[ -f $expected/key && $(<"$expected/key") == "$key" ]]; then
    log "kmod: reusing cached outputs ($(<"$expected/time") s when made)"
else
    make_farm "$scratch/kmod"
    started=$EPOCHREALTIME
    if ! "$kmod_depmod" -C /dev/null -b "$scratch/kmod" "$version" \
        >"$scratch/kmod.stdout" 2>"$scratch/kmod.stderr"; then
        cat "$scratch/kmod.stderr" >&2
        die "kmod's depmod failed on '$tree'"
    fi
    kmod_time=$(elapsed "$started")
    log "kmod: depmod took $kmod_time s"
    new=$scratch/expected
    mkdir -p "$new"
    for f in "${kOutputs[@]}"; do
        [[ -f $scratch/kmod/lib/modules/$version/$f ]] || die "kmod's depmod wrote no $f"
        cp "$scratch/kmod/lib/modules/$version/$f" "$new/$f"
    done
    cp "$scratch/kmod.stderr" "$new/stderr"
    printf '%s\n' "$kmod_time" >"$new/time"
    # The key goes in last: a set without it is never trusted.
    printf '%s\n' "$key" >"$new/key"
    rm -rf "$expected"
    mv "$new" "$expected" 2>/dev/null || [[ -f $expected/key ]] ||
        die "cannot store the expected set in '$expected'"
fi

# --- ours ----------------------------------------------------------------------------------------
make_farm "$scratch/ours"
out=$scratch/out
mkdir -p "$out"
before=$(snapshot "$scratch/ours")
cache_before=$(snapshot "$moddir")
ours_status=0
started=$EPOCHREALTIME
"$kmodctl" depmod -C /dev/null -b "$scratch/ours" -o "$out" "$version" \
    >"$scratch/ours.stdout" 2>"$scratch/ours.stderr" || ours_status=$?
log "ours: kmodctl depmod took $(elapsed "$started") s, exit status $ours_status"
after=$(snapshot "$scratch/ours")

failed=0
if [[ $ours_status -ne 0 ]]; then
    log "FAIL: kmodctl depmod exited with status $ours_status"
    failed=1
fi
if [[ $before != "$after" ]]; then
    log "FAIL: kmodctl depmod changed the input tree (it must write only under -o):"
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | head -n 20 || true
    failed=1
fi
# The farm's files are hard links into the cache: one changed in place spoils the cache too.
if [[ $cache_before != "$(snapshot "$moddir")" ]]; then
    log "FAIL: the cached tree changed while kmodctl ran; its stamp is removed so that"
    log "      fetch-kernels.sh rebuilds it"
    rm -f "$tree.stamp"
    failed=1
fi

outmod=$out/lib/modules/$version
if [[ ! -d $outmod ]] && compgen -G "$out/modules.*" >/dev/null; then
    log "FAIL: kmodctl wrote into OUTDIR itself; like kmod's, -o names a root: OUTDIR/lib/modules/$version/"
fi

# A file the reference does not write must not appear either (ours detects the release too).
for f in "${kAllOutputs[@]}"; do
    if [[ ! " ${kOutputs[*]} " =~ \ $f\  && -e $outmod/$f ]]; then
        log "FAIL: kmodctl wrote $f, which $kmod_version does not write"
        failed=1
    fi
done

# compare_outputs LABEL EXPECTED_DIR GOT_DIR: each of kOutputs in GOT_DIR against EXPECTED_DIR;
# counts the identical ones in `identical` and sets `failed` on any difference.
compare_outputs() {
    local label=$1 expdir=$2 gotdir=$3 f exp got exp_size got_size first offset
    identical=0
    for f in "${kOutputs[@]}"; do
        exp=$expdir/$f
        got=$gotdir/$f
        exp_size=$(stat -c %s "$exp")
        if [[ ! -f $got ]]; then
            log "$label: $f: MISSING (expected $exp_size bytes)"
            failed=1
            continue
        fi
        got_size=$(stat -c %s "$got")
        if cmp -s "$exp" "$got"; then
            [[ $label == cold ]] && log "$f: identical ($exp_size bytes)"
            identical=$((identical + 1))
            continue
        fi
        failed=1
        first=$(cmp "$exp" "$got" 2>&1 | head -n 1 || true)
        case $f in
        *.bin)
            # "differ: byte N, line M" or "EOF on X after byte N"
            offset=$(sed -n 's/.*differ: byte \([0-9]*\),.*/\1/p; s/.*EOF on .* after byte \([0-9]*\).*/\1/p' \
                <<<"$first")
            log "$label: $f: DIFFERENT at byte offset $((${offset:-1} - 1)) (expected $exp_size bytes, got $got_size)"
            cmp -l "$exp" "$got" 2>/dev/null | head -n 5 |
                awk '{ printf "    offset %d: expected 0%s, got 0%s (octal)\n", $1 - 1, $2, $3 }' || true
            ;;
        *)
            log "$label: $f: DIFFERENT (expected $exp_size bytes, got $got_size); first differing lines:"
            diff -U 1 --label "kmod/$f" --label "ours/$f" "$exp" "$got" | head -n 20 || true
            ;;
        esac
    done
}

compare_outputs cold "$expected" "$outmod"
cold_identical=$identical

# --- the parse cache: cold, warm, damaged outputs, and a change, a `cp -p` and a deletion ------
# Each changed state is checked against kmod's outputs for it, and the -v line shows that the run
# used the cache without skipping (a file changed within 2 s of the run that cached it is parsed
# again by the next run too, so counts are not exact). A second farm, whose files the scenarios
# change: each file changed is first made a copy of its
# own, so the cached tree is never written through a hard link. kmod's depmod runs on that farm
# for each changed state (it writes next to its input; the module files stay as they are) and
# ours writes under -o with a cache of its own.
warm=$scratch/warm
make_farm "$warm"
wmod=$warm/lib/modules/$version
wout=$scratch/warm-out
cache=$scratch/cache
# unshare FILE: FILE becomes a copy of its own (same content, size and mtime; new inode).
unshare() { cp -p "$1" "$1.unshare" && mv -f "$1.unshare" "$1"; }

# Three modules: one others depend on (replaced), one with an alias (changed in place when the
# tree is not compressed), and a third one (deleted); all distinct.
modules=()
mapfile -t modules < <(sed -n 's/:.*//p' "$expected/modules.dep")
picks=("$(awk -F': ' '$2 != "" { split($2, d, " "); print d[1]; exit }' "$expected/modules.dep")")
for f in "${modules[@]:20}"; do
    if [[ $f != "${picks[0]}" && ($f != *.ko || $(grep -ca 'alias=' "$wmod/$f") -gt 0) ]]; then
        picks+=("$f")
        break
    fi
done
picks+=("${modules[100]}")
[[ ${#picks[@]} -eq 3 ]] || die "cannot pick three modules from modules.dep (got ${#picks[*]})"
replaced=${picks[0]} edited=${picks[1]} deleted=${picks[2]}
[[ $replaced != "$edited" && $edited != "$deleted" && $replaced != "$deleted" ]] ||
    die "picked the same module twice: ${picks[*]}"
donor=${modules[200]}
for f in "$replaced" "$edited"; do unshare "$wmod/$f"; done
# Linking the farm changed every ctime: entries younger than 2 s before the run that writes the
# cache are not trusted (the racy-timestamp rule), and the warm run would parse them again.
sleep 2.1

# run_ours LABEL: our depmod on the warm farm with the scenario cache; its -v lines kept.
run_ours() {
    local status=0
    "$kmodctl" depmod -v -C /dev/null -b "$warm" -o "$wout" --cache-dir="$cache" "$version" \
        >/dev/null 2>"$scratch/$1.stderr" || status=$?
    grep -E 'parse cache|director(y|ies) read' "$scratch/$1.stderr" | sed "s|^|$1: |" || true
    if [[ $status -ne 0 ]]; then
        log "FAIL: $1: kmodctl depmod exited with status $status"
        failed=1
    fi
}
# kmod_on_warm: kmod's outputs for the farm as it is now, in $scratch/kmod-now; dies unless they
# differ from the previous state's (a change that changes no output would prove nothing).
kmod_on_warm() {
    "$kmod_depmod" -C /dev/null -b "$warm" "$version" >/dev/null 2>&1 ||
        die "kmod's depmod failed on the changed farm"
    rm -rf "$scratch/kmod-prev"
    if [[ -d $scratch/kmod-now ]]; then
        mv "$scratch/kmod-now" "$scratch/kmod-prev"
    else
        cp -r "$expected" "$scratch/kmod-prev"
    fi
    mkdir -p "$scratch/kmod-now"
    local f changed=0
    for f in "${kOutputs[@]}"; do
        cp "$wmod/$f" "$scratch/kmod-now/"
        cmp -s "$scratch/kmod-now/$f" "$scratch/kmod-prev/$f" || changed=1
    done
    [[ $changed -eq 1 ]] || die "the change to the farm changed none of kmod's outputs"
}
scenario_total=0
scenario_passed=0
# check_scenario LABEL EXPECTED_DIR [REQUIRED_PATTERN]: the outputs, and a -v line when given.
check_scenario() {
    local before_failed=$failed
    failed=0
    compare_outputs "$1" "$2" "$wout/lib/modules/$version"
    if [[ -n ${3:-} ]] && ! grep -Eq "$3" "$scratch/$1.stderr"; then
        log "FAIL: $1: no line matching '$3' in kmodctl's -v output"
        failed=1
    fi
    scenario_total=$((scenario_total + 1))
    if [[ $failed -eq 0 ]]; then
        scenario_passed=$((scenario_passed + 1))
        log "$1: $identical/${#kOutputs[@]} files identical"
    fi
    [[ $before_failed -eq 0 ]] || failed=1
}

run_ours cache-cold
check_scenario cache-cold "$expected" ' 0 modules taken from it, [1-9]'
run_ours cache-warm
check_scenario cache-warm "$expected" 'nothing written'
# Every directory is older than the racy margin: the cold run's listings stand for all of them.
if ! grep -Eq ' 0 directories read, [1-9][0-9]* unchanged' "$scratch/cache-warm.stderr"; then
    log "FAIL: cache-warm: directories were read again though none changed"
    failed=1
fi
# Outputs changed behind our back (emptied, deleted) are written again, though no input changed.
: >"$wout/lib/modules/$version/modules.dep"
rm -f "$wout/lib/modules/$version/modules.alias.bin"
run_ours cache-outputs-damaged
check_scenario cache-outputs-damaged "$expected" 'taken from it, [0-9]+ parsed'

cp "$wmod/$donor" "$wmod/$replaced.new" && mv -f "$wmod/$replaced.new" "$wmod/$replaced"
kmod_on_warm
run_ours cache-replaced
check_scenario cache-replaced "$scratch/kmod-now" \
    'taken from it, [1-9][0-9]* parsed, [1-9][0-9]* numbered by its symbol table'

if [[ $edited != *.ko ]]; then
    log "cache-cp-p: skipped (the tree is compressed: an edit in place would break the file)"
else
    # One byte of the first alias changed in place; size and mtime as before, only ctime moves.
    touch -r "$wmod/$edited" "$scratch/edited.times"
    was=$(stat -c '%s %i %Y' "$wmod/$edited")
    offset=$(grep -obUa 'alias=' "$wmod/$edited" | head -n 1 | cut -d: -f1)
    byte=$(dd if="$wmod/$edited" bs=1 skip=$((offset + 6)) count=1 2>/dev/null)
    [[ $byte == q ]] && new=r || new=q
    printf '%s' "$new" | dd of="$wmod/$edited" bs=1 seek=$((offset + 6)) conv=notrunc 2>/dev/null
    touch -r "$scratch/edited.times" "$wmod/$edited"
    [[ $(stat -c '%s %i %Y' "$wmod/$edited") == "$was" ]] ||
        die "the edit of $edited changed its size, inode or mtime"
    kmod_on_warm
    run_ours cache-cp-p
    # Only an alias changed: spliced into the last run's outputs, unless the module has soft
    # dependencies or a device name (then a full run).
    check_scenario cache-cp-p "$scratch/kmod-now" \
        'taken from it, [1-9][0-9]* parsed, [1-9][0-9]* numbered by its symbol table|outputs made from the last run'
fi

rm -f "$wmod/$deleted"
kmod_on_warm
run_ours cache-deleted
check_scenario cache-deleted "$scratch/kmod-now" 'taken from it, [0-9]+ parsed'

# One more module rebuilt to the same bytes (new inode and times): parsed again and proven to
# change no output, so nothing is written. The files the scenarios above changed must first be
# older than the racy margin in the cache and the output state: a run after a pause rewrites them.
rebuilt=${modules[300]:-}
[[ -n $rebuilt ]] || die "fewer than 301 modules in modules.dep"
for f in "$replaced" "$edited" "$deleted"; do
    [[ $rebuilt != "$f" ]] || die "picked the same module twice: $rebuilt"
done
sleep 2.1
run_ours cache-settled
check_scenario cache-settled "$scratch/kmod-now" 'parse cache'
cp "$wmod/$rebuilt" "$wmod/$rebuilt.new" && mv -f "$wmod/$rebuilt.new" "$wmod/$rebuilt"
run_ours cache-rebuilt
check_scenario cache-rebuilt "$scratch/kmod-now" ' 1 changed module file parsed as before'
# A module added beside the deleted one, in a directory the last run's listings hold (it
# changed before the pause above): that directory is read again, the others are not.
added=$(dirname "$deleted")/kmodd_added_${donor##*/}
cp "$wmod/$donor" "$wmod/$added"
kmod_on_warm
run_ours cache-added
check_scenario cache-added "$scratch/kmod-now" \
    ' [1-9] director(y|ies) read, [1-9][0-9]* unchanged since the last run'

# A leaf module (it owns no symbol and has no soft dependency or device name) that needs other
# modules gets the content of another such module with other dependencies and aliases: the run
# after it splices the change into the last run's outputs, which must be kmod's. First a pause
# and a run, so that no module changed within the racy margin before the last run.
# leaf_modules: "path deps" of each such module of kmod's outputs now that has dependencies.
leaf_modules() {
    local now=$scratch/kmod-now
    awk 'FNR == 1 { file++ }
         file == 1 { owns[$3] = 1 }
         file == 2 && ($1 == "softdep" || $1 == "weakdep") { listed[$2] = 1 }
         file == 3 && !/^#/ { listed[$1] = 1 }
         file == 4 && NF > 1 {
             path = substr($1, 1, length($1) - 1); name = path
             sub(/.*\//, "", name); sub(/\.ko.*/, "", name); gsub(/-/, "_", name)
             if (!(name in owns) && !(name in listed)) { $1 = ""; print path $0 }
         }' "$now/modules.symbols" <(cat "$now/modules.softdep" "$now/modules.weakdep" 2>/dev/null) \
        "$now/modules.devname" "$now/modules.dep"
}
sleep 2.1
run_ours cache-settled-again
check_scenario cache-settled-again "$scratch/kmod-now" 'parse cache'
spliced='' donor_leaf=''
while read -r path deps; do
    case " $replaced $edited $deleted $rebuilt $added " in *" $path "*) continue ;; esac
    if [[ -z $spliced ]]; then
        spliced=$path spliced_deps=$deps
    elif [[ $deps != "$spliced_deps" ]]; then
        donor_leaf=$path
        break
    fi
done < <(leaf_modules)
[[ -n $donor_leaf ]] || die "found no two leaf modules with other dependencies"
cp "$wmod/$donor_leaf" "$wmod/$spliced.new" && mv -f "$wmod/$spliced.new" "$wmod/$spliced"
kmod_on_warm
run_ours cache-spliced
check_scenario cache-spliced "$scratch/kmod-now" 'outputs made from the last run'
log "parse cache: $scenario_passed/$scenario_total scenarios identical to kmod's" \
    "(replaced $replaced, edited $edited, deleted $deleted, rebuilt $rebuilt, added $added," \
    "spliced $spliced with $donor_leaf's content)"

# Warnings are compared loosely: shown side by side, not asserted.
kmod_lines=$(grep -c . "$expected/stderr" || true)
ours_lines=$(grep -c . "$scratch/ours.stderr" || true)
log "stderr: kmod $kmod_lines lines, ours $ours_lines lines (not asserted)"
if [[ $kmod_lines -gt 0 || $ours_lines -gt 0 ]]; then
    log "--- kmod stderr"
    head -n 20 "$expected/stderr"
    log "--- ours stderr"
    head -n 20 "$scratch/ours.stderr"
fi

if [[ $failed -eq 0 ]]; then
    log "PASS: $cold_identical/${#kOutputs[@]} files identical to kmod's for $(basename "$tree")," \
        "and in $scenario_passed parse cache scenarios"
    exit 0
fi
log "FAIL: $cold_identical/${#kOutputs[@]} files identical to kmod's for $(basename "$tree")," \
    "$scenario_passed/$scenario_total parse cache scenarios identical"
[[ ${KMODD_ORACLE_KEEP:-0} == 1 ]] || log "(set KMODD_ORACLE_KEEP=1 to keep $scratch)"
exit 1
