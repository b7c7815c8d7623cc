# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# kmodctl as lsmod, insmod, rmmod and kmod on the real kernel, against kmod's own tools: the
# same standard output, the same exit status and the same standard error (kmod's libkmod
# lines without their source location, which kmodctl does not print) for the loaded list,
# static nodes, inserting a module, a missing symbol, an unknown parameter, a module already
# loaded, removing a module in use, held, built in or not loaded, and removing for real.
# Each kernel call is made once by each tool, in turn, from the same state.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

# By full path: busybox's sh prefers its own applets (insmod, lsmod...) to anything on PATH.
mkdir -p /tmp/kmod /tmp/ours
for tool in lsmod insmod rmmod modinfo kmod; do
    ln -sf "$(command -v kmod)" "/tmp/kmod/$tool"
    ln -sf "$(command -v "$KMODCTL")" "/tmp/ours/$tool"
done
kmod_version=$(kmod --version | sed -n 's/^kmod version \([0-9]*\).*/\1/p')

# tool_run SIDE TOOL [ARGS...]: kmod's TOOL (SIDE kmod) or kmodctl's (ours), by the same file
# name; its output in /tmp/SIDE.{out,err,rc}.
tool_run() {
    side=$1
    shift
    tool=/tmp/$side/$1
    shift
    "$tool" "$@" >"/tmp/$side.out" 2>"/tmp/$side.err"
    echo $? >"/tmp/$side.rc"
    sed -i -e "s#^libkmod: ERROR [^ ]*:[0-9]* [a-z_]*: #${tool##*/}: ERROR: #" \
        -e 's#^\([a-z-]*\): ERROR: [^ ]*libkmod[^ ]*:[0-9]* [a-z_]*() #\1: ERROR: #' \
        "/tmp/$side.err"
}

# same WHAT: fails unless the last kmod and kmodctl runs printed and returned the same.
same() {
    if cmp -s /tmp/kmod.out /tmp/ours.out && cmp -s /tmp/kmod.err /tmp/ours.err &&
        cmp -s /tmp/kmod.rc /tmp/ours.rc; then
        ok "$1: the same bytes, exit status $(cat /tmp/ours.rc) $(head -n 1 /tmp/ours.err)"
        return 0
    fi
    echo "kmod (exit status $(cat /tmp/kmod.rc)):"
    sed 's/^/  | /' /tmp/kmod.out
    sed 's/^/  ! /' /tmp/kmod.err
    echo "kmodctl (exit status $(cat /tmp/ours.rc)):"
    sed 's/^/  | /' /tmp/ours.out
    sed 's/^/  ! /' /tmp/ours.err
    fail "$1: kmodctl differs from kmod"
}

# both WHAT COMMAND...: runs COMMAND with each tool and compares (for commands that change
# nothing, or whose change is undone before the other runs).
both() {
    what=$1
    shift
    tool_run kmod "$@"
    tool_run ours "$@"
    same "$what"
}

say "lsmod and kmod list on the running kernel"
both "lsmod" lsmod
[ "$(wc -l </tmp/ours.out)" -gt 10 ] || fail "lsmod listed only $(wc -l </tmp/ours.out) lines"
both "kmod list" kmod list

say "static nodes of the running kernel's modules.devname"
[ -s "$MODDIR/modules.devname" ] || fail "no modules.devname in $MODDIR"
# kmod 30 writes to /dev/stdout by name, which udev provides on a real system.
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
for format in human tmpfiles devname; do
    both "kmod static-nodes --format=$format" kmod static-nodes --format="$format"
    [ -s /tmp/ours.out ] || fail "kmod static-nodes --format=$format printed nothing"
done
for side in kmod ours; do
    rm -rf "/tmp/nodes-$side"
    tool_run "$side" kmod static-nodes -f tmpfiles -o "/tmp/nodes-$side/tmpfiles.d/nodes.conf"
done
same "kmod static-nodes -o FILE in a directory it creates"
cmp "/tmp/nodes-kmod/tmpfiles.d/nodes.conf" "/tmp/nodes-ours/tmpfiles.d/nodes.conf" ||
    fail "the files kmod static-nodes -o wrote differ"
ok "-o: the same file ($(wc -l </tmp/nodes-ours/tmpfiles.d/nodes.conf) lines)"

# A module nothing loaded, without dependencies, with a parameter: dummy.
dummy=$("$MODPROBE" -D dummy | awk '$1 == "insmod" { print $2 }')
[ -n "$dummy" ] || fail "no dummy module"

say "modinfo on the running kernel's index: by name, path, alias, built in, each field"
both "modinfo dummy" modinfo dummy
grep -q '^sig_id:' /tmp/ours.out || fail "modinfo dummy shows no signature"
both "modinfo of the file" modinfo "$dummy"
both "modinfo of an alias" modinfo rtnl-link-dummy
both "modinfo of a loaded module with dependencies" modinfo libata
first_builtin=$(sed -n '1{s#.*/##; s#\.ko$##; p}' "$MODDIR/modules.builtin")
both "modinfo of a built-in module ($first_builtin)" modinfo "$first_builtin"
for option in "-F signer" "-F sig_key" -p -n -0 "-F vermagic"; do
    # shellcheck disable=SC2086 # the option's words
    both "modinfo $option dummy" modinfo $option dummy
done
both "modinfo of a module that does not exist" modinfo no-such-module
expect_not_loaded dummy

say "insmod: a parameter value the module refuses, then for real, then once more"
both "insmod with an invalid parameter value" insmod "$dummy" numdummies=many
expect_not_loaded dummy
for side in kmod ours; do
    # The kernel ignores a parameter the module does not have (and says so in dmesg).
    tool_run "$side" insmod "$dummy" no_such_parameter=1 numdummies=2
    [ "$(cat "/tmp/$side.rc")" = 0 ] || fail "$side: insmod $dummy failed: $(cat "/tmp/$side.err")"
    expect_loaded dummy
    [ -e /sys/class/net/dummy1 ] || fail "$side: numdummies=2 did not reach the module"
    cp "/tmp/$side.out" "/tmp/$side.insert.out"
    tool_run "$side" insmod "$dummy"
    cp "/tmp/$side.err" "/tmp/$side.again.err"
    cp "/tmp/$side.rc" "/tmp/$side.again.rc"
    tool_run "$side" rmmod dummy
    [ "$(cat "/tmp/$side.rc")" = 0 ] || fail "$side: rmmod dummy failed: $(cat "/tmp/$side.err")"
    expect_not_loaded dummy
done
cmp -s /tmp/kmod.insert.out /tmp/ours.insert.out || fail "insmod printed differently"
if ! cmp -s /tmp/kmod.again.err /tmp/ours.again.err || ! cmp -s /tmp/kmod.again.rc /tmp/ours.again.rc; then
    fail "insmod of a loaded module: kmod said '$(cat /tmp/kmod.again.err)' ($(cat /tmp/kmod.again.rc)), kmodctl '$(cat /tmp/ours.again.err)' ($(cat /tmp/ours.again.rc))"
fi
ok "insmod, insmod again ('$(cat /tmp/ours.again.err)') and rmmod as kmod's"

say "forcing: insmod -f and modprobe -f, plain and compressed, on a module of another build"
# dummy with one byte of its vermagic changed after the release (which modversions ignore).
plain=/tmp/dummy-other-build.ko
case $dummy in
*.xz) unxz -c "$dummy" >"$plain" ;;
*.zst) fail "no zstd in the VM for $dummy" ;;
*) cp "$dummy" "$plain" ;;
esac
line=$(strings -t d "$plain" | grep 'vermagic=' | head -n 1)
[ -n "$line" ] || fail "no vermagic in $plain"
offset=${line%%vermagic=*}
magic=${line#*vermagic=}
release_part=${magic%% *}
printf 'X' | dd of="$plain" bs=1 seek=$((offset + 9 + ${#release_part} + 1)) conv=notrunc 2>/dev/null
ok "vermagic '$magic' is now '$(strings "$plain" | sed -n 's/^vermagic=//p')'"
/usr/libexec/vm/xz --check=crc32 -c "$plain" >"$plain.xz"
# Whether the kernel takes a forced module (CONFIG_MODULE_FORCE_LOAD) decides the outcome;
# kmod's and kmodctl's must be the same either way, and a forced load is undone at once.
for case in "insmod $plain" "insmod -f $plain" "insmod -f $plain.xz" "insmod -f $dummy"; do
    for side in kmod ours; do
        # shellcheck disable=SC2086 # the case's words
        tool_run "$side" $case
        loaded=no
        is_loaded dummy && loaded=yes && "/tmp/kmod/rmmod" dummy
        echo "$loaded" >>"/tmp/$side.out"
        cp "/tmp/$side.out" "/tmp/$side.case.out"
        cp "/tmp/$side.err" "/tmp/$side.case.err"
        cp "/tmp/$side.rc" "/tmp/$side.case.rc"
    done
    for part in out err rc; do cp "/tmp/kmod.case.$part" "/tmp/kmod.$part"; done
    for part in out err rc; do cp "/tmp/ours.case.$part" "/tmp/ours.$part"; done
    same "$case (loaded: $(tail -n 1 /tmp/ours.out))"
done
for flag in -f --force-vermagic --force-modversion; do
    for side in kmod ours; do
        modprobe=$MODPROBE
        [ "$side" = ours ] && modprobe="$KMODCTL modprobe"
        $modprobe "$flag" dummy >/dev/null 2>"/tmp/$side.modprobe.err"
        echo "status $?, loaded: $(is_loaded dummy && echo yes || echo no)" >"/tmp/$side.modprobe"
        is_loaded dummy && "/tmp/kmod/rmmod" dummy
    done
    cmp -s /tmp/kmod.modprobe /tmp/ours.modprobe ||
        fail "modprobe $flag dummy: kmod $(cat /tmp/kmod.modprobe), kmodctl $(cat /tmp/ours.modprobe) ($(cat /tmp/ours.modprobe.err))"
    ok "modprobe $flag dummy as kmod's: $(cat /tmp/ours.modprobe)"
done

say "insmod of a module whose dependencies are not loaded: unknown symbols"
top=
for candidate in vxlan bonding nf_nat ip6_tunnel; do
    plan=$(kmod_plan "$candidate")
    [ "$(printf '%s\n' "$plan" | wc -l)" -ge 2 ] || continue
    loaded_deps=
    for module in $plan; do is_loaded "$module" && loaded_deps="$loaded_deps $module"; done
    [ -z "$loaded_deps" ] && top=$candidate && break
done
[ -n "$top" ] || fail "no module with dependencies that are all unloaded"
top_path=$("$MODPROBE" -D "$top" | awk '$1 == "insmod" { path = $2 } END { print path }')
both "insmod $top without its dependencies" insmod "$top_path"
expect_not_loaded "$top"

say "rmmod: not loaded, built in, held by another module, in use, forced, and for real"
both "rmmod of a module not loaded" rmmod "$top"
builtin=$(sed -n '1{s#.*/##; s#\.ko$##; s#-#_#g; p}' "$MODDIR/modules.builtin")
[ -n "$builtin" ] || fail "modules.builtin is empty"
both "rmmod of a built-in module ($builtin)" rmmod "$builtin"
holder_dep=$(kmod_plan "$top" | head -n 1)
must "$MODPROBE" "$top"
both "rmmod of $holder_dep, held by $top" rmmod "$holder_dep"
both "rmmod -f of $holder_dep (a kernel without forced unloading)" rmmod -f "$holder_dep"
both "rmmod of several, some failing" rmmod no_such_module "$holder_dep"
expect_loaded "$top"
for side in kmod ours; do
    [ "$side" = kmod ] || must "$MODPROBE" "$top"
    tool_run "$side" rmmod "$top"
    cp "/tmp/$side.rc" "/tmp/$side.remove.rc"
    expect_not_loaded "$top"
done
cmp -s /tmp/kmod.remove.rc /tmp/ours.remove.rc || fail "rmmod $top: statuses differ"
ok "rmmod $top removed it with each tool"

say "modprobe -r --remove-holders $holder_dep: $top, which holds it, goes first"
for side in kmod ours; do
    modprobe=$MODPROBE
    [ "$side" = ours ] && modprobe="$KMODCTL modprobe"
    must "$MODPROBE" "$top"
    $modprobe -r --remove-holders "$holder_dep" >/dev/null 2>"/tmp/$side.holders.err"
    echo "$?" >"/tmp/$side.holders.rc"
    echo "$top loaded: $(is_loaded "$top" && echo yes || echo no);" \
        "$holder_dep loaded: $(is_loaded "$holder_dep" && echo yes || echo no)" >"/tmp/$side.holders"
done
cmp -s /tmp/kmod.holders /tmp/ours.holders ||
    fail "kmod: $(cat /tmp/kmod.holders) ($(cat /tmp/kmod.holders.err)); kmodctl: $(cat /tmp/ours.holders) ($(cat /tmp/ours.holders.err))"
# kmod 30 then removes $holder_dep a second time, already gone with $top's dependencies, and
# fails with ENOENT; kmodctl succeeds.
[ "$(cat /tmp/ours.holders.rc)" = 0 ] || fail "kmodctl modprobe -r --remove-holders failed: $(cat /tmp/ours.holders.err)"
ok "the same modules left as with kmod: $(cat /tmp/ours.holders) (kmod's exit status $(cat /tmp/kmod.holders.rc), kmodctl's 0)"
[ "$kmod_version" = 30 ] || ok "(kmod $kmod_version: only messages it shares with kmod 30 compared)"
exit 0
