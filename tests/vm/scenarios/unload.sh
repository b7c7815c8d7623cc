# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Unloading on the real kernel: an in-use module is refused and the holders are named; unloading
# a top module removes the dependencies kmodd loaded for it and keeps those a user loaded
# explicitly or another module still holds; `kmodctl list --json` agrees with /proc/modules
# (refcounts, holders) and says who loaded what; `kmodctl list` is lsmod plus the origin.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

# The awk helper both tables use: holders joined by commas, sorted ('-' for none).
SORT_HOLDERS='function sorted(list,   n, a, i, j, t, out) {
    n = split(list, a, ",")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    out = ""
    for (i = 1; i <= n; i++) if (a[i] != "" && a[i] != "-") out = out (out == "" ? "" : ",") a[i]
    return out == "" ? "-" : out
}'

# proc_table: "name refcount holders" per loaded module from /proc/modules, sorted by name.
proc_table() {
    awk "$SORT_HOLDERS"' { print $1, $3, sorted($4) }' /proc/modules | sort
}

# json_table JSON: the same from `kmodctl list --json`, plus the origin as a fourth column.
json_table() {
    printf '%s\n' "$1" | sed -e 's/^\[//' -e 's/\]$//' -e 's/},{/}\n{/g' | awk "$SORT_HOLDERS"'
        function field(object, key,   value) {
            if (!match(object, "\"" key "\":(\"[^\"]*\"|-?[0-9]+|\\[[^]]*\\])"))
                return ""
            value = substr(object, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
            gsub(/"/, "", value)
            sub(/^\[/, "", value)
            sub(/\]$/, "", value)
            return value
        }
        NF { print field($0, "name"), field($0, "refcount"), sorted(field($0, "holders")),
                   field($0, "origin") }' | sort
}

# check_list: kmodctl list --json matches /proc/modules; leaves its table in LIST.
check_list() {
    must "$KMODCTL" list --json
    LIST=$(json_table "$OUT")
    proc=$(proc_table)
    if [ "$(printf '%s\n' "$LIST" | cut -d' ' -f1-3)" != "$proc" ]; then
        printf 'kmodctl list --json:\n%s\n/proc/modules:\n%s\n' "$LIST" "$proc"
        fail "kmodctl list --json does not match /proc/modules"
    fi
    ok "names, refcounts and holders match /proc/modules ($(printf '%s\n' "$proc" | wc -l) modules)"
}

# expect_origin NAME ORIGIN: as LIST (from check_list) says.
expect_origin() {
    origin=$(printf '%s\n' "$LIST" | awk -v m="$1" '$1 == m { print $4 }')
    [ "$origin" = "$2" ] || fail "'$1' should have origin '$2', kmodctl list says '$origin'"
    ok "'$1' was loaded: $2"
}

say "load: xor by hand, then xfs and btrfs (which need xor, libcrc32c, crc32c)"
must "$KMODCTL" load xor
must "$KMODCTL" load xfs
expect_in "$OUT" libcrc32c "xfs brought libcrc32c"
must "$KMODCTL" load btrfs
btrfs_inserted=$OUT
expect_in "$btrfs_inserted" raid6_pq "btrfs brought raid6_pq"
case " $(words "$btrfs_inserted") " in
*" xor "* | *" libcrc32c "*) fail "btrfs's load inserted a module that was already loaded" ;;
esac
say "a module loaded behind kmodd's back (kmod's modprobe)"
must "$MODPROBE" dummy
expect_loaded dummy

say "kmodctl list --json agrees with /proc/modules and knows who loaded what"
check_list
expect_origin xor explicit
expect_origin xfs explicit
expect_origin btrfs explicit
expect_origin libcrc32c dependency
expect_origin raid6_pq dependency
expect_origin dummy external

# sorted_holders: lsmod's lines with the holders sorted (lsmod lists them in sysfs's order,
# kmodd sorted).
sorted_holders() {
    awk "$SORT_HOLDERS"' NR > 1 && NF == 4 { sub(/ [^ ]*$/, " " sorted($4)) } { print }'
}

say "kmodctl list is lsmod's output plus the origin"
must "$KMODCTL" list
ours=$(printf '%s\n' "$OUT" | sed 's/  \[[a-z]*\]$//' | sorted_holders)
lsmod_out=$(/sbin/lsmod | sorted_holders)
if [ "$ours" != "$lsmod_out" ]; then
    printf 'lsmod (holders sorted):\n%s\n' "$lsmod_out"
    fail "kmodctl list without the origins differs from lsmod"
fi
ok "same bytes as /sbin/lsmod up to the origins (and the holders' order)"

say "unloading a module in use is refused and names its holders"
must_fail "$KMODCTL" unload raid6_pq
expect_in "$ERR" btrfs "the error names the holder btrfs"
expect_loaded raid6_pq
must_fail "$KMODCTL" unload libcrc32c
expect_in "$ERR" btrfs "the error names the holder btrfs"
expect_in "$ERR" xfs "the error names the holder xfs"
expect_loaded libcrc32c

say "unloading btrfs removes what was loaded for it only"
before=$(cut -d' ' -f1 /proc/modules)
must "$KMODCTL" unload btrfs
removed=$OUT
[ "$(printf '%s\n' "$removed" | head -n 1)" = btrfs ] || fail "btrfs should be removed first"
for module in $removed; do expect_not_loaded "$module"; done
for module in $before; do
    case " $(words "$removed") " in
    *" $module "*) ;;
    *) is_loaded "$module" || fail "'$module' disappeared but kmodctl did not report it" ;;
    esac
done
ok "every module not reported removed is still loaded"
for module in $btrfs_inserted; do
    is_loaded "$module" || continue
    # What btrfs brought may stay only when something else holds it.
    holders=0
    for holder in "/sys/module/$module/holders"/*; do
        [ -e "$holder" ] && holders=$((holders + 1))
    done
    refcount=$(cat "/sys/module/$module/refcnt")
    [ "$refcount" -gt 0 ] || [ "$holders" -gt 0 ] ||
        fail "'$module' was loaded for btrfs, is unused and was not removed"
    ok "'$module' (loaded for btrfs) stays: refcount $refcount"
done
expect_loaded xor
ok "xor stays: a user loaded it"
expect_loaded libcrc32c
ok "libcrc32c stays: xfs holds it"
expect_not_loaded raid6_pq
check_list

say "unloading xfs removes libcrc32c and crc32c now; xor and dummy stay"
must "$KMODCTL" unload xfs
expect_in "$OUT" libcrc32c "libcrc32c removed with xfs"
for module in xfs libcrc32c; do expect_not_loaded "$module"; done
expect_loaded xor
expect_loaded dummy
check_list

say "unloading what a user loaded removes it"
must "$KMODCTL" unload xor
[ "$OUT" = xor ] || fail "kmodctl unload xor should report xor alone"
expect_not_loaded xor
must "$KMODCTL" unload dummy
expect_not_loaded dummy

say "unloading a module that is not loaded fails"
must_fail "$KMODCTL" unload xor
expect_in "$ERR" xor "the error names xor"
check_list
exit 0
