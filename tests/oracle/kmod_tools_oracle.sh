#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# kmod_tools_oracle.sh KMODCTL
#
# kmodctl invoked as lsmod, insmod, rmmod and kmod (list, static-nodes, help) against kmod's own
# tools on the same staged kernel state: in a private mount namespace, /sys/module and
# /proc/modules are replaced by crafted ones (modules with holders, in use, without unloading
# support, leaving halfway through a read, a built-in one) and /lib/modules/$(uname -r) gets a
# modules.devname and a modules.builtin.bin (an overlay on /usr/lib: nothing on the machine
# changes). Standard output must be byte-identical, the exit status the same, and standard
# error the same once kmod's libkmod lines lose their source location ("../libkmod/x.c:123
# func()"), which kmodctl does not print. The kernel calls themselves fail here (no module
# support, or an unknown module) and must fail alike. Needs root.
#
# On kmod newer than 30 (Debian 13's 34) only the cases whose output kmod kept are compared:
# kmodctl follows kmod 30's messages.
set -eu

kmodctl=$(readlink -f "$1")
[ -x "$kmodctl" ] || { echo "'$1' is not an executable file (is kmodctl built?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "kmod_tools_oracle.sh needs root (mount namespace)" >&2; exit 2; }
if [ -z "${KMODD_TOOLS_ORACLE_INSIDE:-}" ]; then
    # In a chroot (tests/trixie) "/" is no mount point and cannot be made private; its mounts
    # are private already there (run.sh unshares with private propagation).
    propagation=private
    unshare --mount --propagation private true 2>/dev/null || propagation=unchanged
    KMODD_TOOLS_ORACLE_INSIDE=1 exec unshare --mount --propagation "$propagation" "$0" "$@"
fi

kmod_binary=$(command -v kmod || echo /bin/kmod)
kmod_version=$("$kmod_binary" --version | sed -n 's/^kmod version \([0-9]*\).*/\1/p')
scratch=$(mktemp -d /tmp/kmodd-tools-oracle.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/kmod" "$scratch/ours" "$scratch/upper" "$scratch/work"
for tool in lsmod insmod rmmod kmod; do
    ln -s "$kmod_binary" "$scratch/kmod/$tool"
    ln -s "$kmodctl" "$scratch/ours/$tool"
done

# The running kernel's module directory, as both tools find it.
release=$(uname -r)
mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$scratch/upper,workdir=$scratch/work" /usr/lib
moddir=/lib/modules/$release
rm -rf "$moddir"
mkdir -p "$moddir"

failures=0
cases=0

# run_both NAME COMMAND [ARGS...]: runs COMMAND under its own name from each tool directory
# (so argv[0] is the bare name for both) and compares.
run_both() {
    name=$1
    shift
    cases=$((cases + 1))
    for side in kmod ours; do
        set +e
        (cd "$scratch" && PATH="$scratch/$side:$PATH" "$@" >"$scratch/$side.out" 2>"$scratch/$side.err")
        echo $? >"$scratch/$side.rc"
        set -e
    done
    # libkmod's own lines: "libkmod: ERROR ../libkmod/f.c:12 func: text" (lsmod's default
    # logger) and "rmmod: ERROR: ../libkmod/f.c:12 func() text" (the tools' logger).
    sed -e "s#^libkmod: ERROR [^ ]*:[0-9]* [a-z_]*: #$1: ERROR: #" \
        -e 's#^\([a-z-]*\): ERROR: [^ ]*libkmod[^ ]*:[0-9]* [a-z_]*() #\1: ERROR: #' \
        "$scratch/kmod.err" >"$scratch/kmod.err.normal"
    if cmp -s "$scratch/kmod.out" "$scratch/ours.out" &&
        cmp -s "$scratch/kmod.err.normal" "$scratch/ours.err" &&
        cmp -s "$scratch/kmod.rc" "$scratch/ours.rc"; then
        return 0
    fi
    failures=$((failures + 1))
    echo "DIFFERS: $name: $*"
    echo "  exit status: kmod $(cat "$scratch/kmod.rc"), kmodctl $(cat "$scratch/ours.rc")"
    diff "$scratch/kmod.out" "$scratch/ours.out" | sed 's/^/  stdout: /' | head -20 || true
    diff "$scratch/kmod.err.normal" "$scratch/ours.err" | sed 's/^/  stderr: /' | head -20 || true
}

is_kmod30() { [ "$kmod_version" = 30 ]; }

# --- kmod, help and usage errors (kmod 30's words) ----------------------------------------
if is_kmod30; then
    run_both "no command" kmod
    run_both "unknown command" kmod frobnicate
    run_both "unknown option" kmod -x
    run_both "list with an argument" kmod list extra
    run_both "lsmod with an argument" lsmod extra
    run_both "insmod without a file" insmod
    run_both "insmod from stdin" insmod -
    run_both "insmod unknown option" insmod -x
    run_both "insmod help" insmod -h
    run_both "rmmod without a name" rmmod
    run_both "rmmod help" rmmod --help
    run_both "rmmod unknown option" rmmod --frobnicate
fi
run_both "static-nodes help" kmod static-nodes --help
run_both "static-nodes unknown format" kmod static-nodes --format=yaml
run_both "static-nodes unknown option" kmod static-nodes -x

# --- static-nodes ----------------------------------------------------------------------------
run_both "static-nodes without modules.devname" kmod static-nodes
cat >"$moddir/modules.devname" <<'EOF'
# Device nodes to trigger on-demand module loading.
fuse fuse c10:229
cuse cuse c10:203
btrfs btrfs-control c10:234
loop loop-control c10:237
tun net/tun c10:200
dm_mod mapper/control c10:236
snd_timer snd/timer c116:33
snd_seq snd/seq c116:1
vfio vfio/vfio c10:196
uhid uhid c10:239
uinput uinput c10:223
hci_vhci vhci c10:137
ppp_generic ppp c108:0
nvram nvram c10:144
floppy fd0 b2:0
brd ram0 b1:0
EOF
for format in human tmpfiles devname; do
    run_both "static-nodes -f $format" kmod static-nodes -f "$format"
    # shellcheck disable=SC2016 # expanded by the inner shell, in each tool's run
    run_both "static-nodes --format $format -o FILE" \
        sh -c 'out=$PWD/out/$(basename "$(dirname "$(command -v kmod)")")/$0/nested/nodes &&
               kmod static-nodes --format="$0" -o "$out" && cat "$out"' "$format"
done
printf 'bad line\nx y z1:2\nsnd_hrtimer snd/hrtimer q116:34\ngood good c1:2\n' \
    >>"$moddir/modules.devname"
run_both "static-nodes with invalid entries" kmod static-nodes --format=tmpfiles

# --- a staged /sys/module (names no real kernel has: rmmod's syscall reaches the real one) --- --------------------------------------------------------------------
mount -t tmpfs sysmodule /sys/module
# stage NAME REFCNT CORESIZE [HOLDER...]: a loaded module's directory ("-": leave out the file).
stage() {
    dir=/sys/module/$1
    mkdir -p "$dir/holders"
    [ "$2" = - ] || printf '%s\n' "$2" >"$dir/refcnt"
    [ "$3" = - ] || printf '%s\n' "$3" >"$dir/coresize"
    printf 'live\n' >"$dir/initstate"
    shift 3
    for holder in "$@"; do
        ln -s "../../$holder" "$dir/holders/$holder"
    done
}
stage fake_libata 3 294912 fake_ata_piix fake_ata_generic fake_pata_acpi
stage fake_ata_piix 0 40960
stage fake_ata_generic 0 16384
stage fake_pata_acpi 1 16384
stage fake_scsi_mod 2 278528 fake_libata fake_sd_mod
stage fake_sd_mod 0 61440
stage a_module_with_a_long_name_indeed 0 123456789012
stage no_coresize 0 -
stage junk_refcnt nonsense 4096
mkdir -p /sys/module/no_refcnt/holders
printf 'live\n' >/sys/module/no_refcnt/initstate
printf '12288\n' >/sys/module/no_refcnt/coresize
stage coming_module 0 8192
printf 'coming\n' >/sys/module/coming_module/initstate
mkdir -p /sys/module/builtin_thing/parameters # a built-in module: no initstate, no holders
mkdir -p /sys/module/builtin_listed           # built in, and in modules.builtin.bin
printf 'kernel/drivers/builtin_listed.ko\n' >"$moddir/modules.builtin"
/usr/sbin/depmod -b / "$release" 2>/dev/null || true # writes modules.builtin.bin

# --- rmmod -----------------------------------------------------------------------------------
run_both "rmmod a module not loaded" rmmod no_such_module
run_both "rmmod a name with dashes and dots" rmmod no-such.module
run_both "rmmod a module held by others" rmmod fake_libata
run_both "rmmod a module in use" rmmod fake_pata_acpi
run_both "rmmod a module without refcnt" rmmod no_refcnt
run_both "rmmod a refcnt that is no number" rmmod junk_refcnt
run_both "rmmod a module not in use" rmmod fake_ata_piix
run_both "rmmod a module still coming" rmmod coming_module
run_both "rmmod a built-in module without initstate" rmmod builtin_thing
run_both "rmmod a built-in module listed in modules.builtin" rmmod builtin_listed
run_both "rmmod several, some failing" rmmod fake_sd_mod fake_libata no_such fake_ata_generic
run_both "rmmod -f a module held by others" rmmod -f fake_libata
run_both "rmmod -f a module not loaded" rmmod -f no_such_module
run_both "rmmod by the path of an existing file" rmmod /etc/hostname
run_both "rmmod -v -s (messages to syslog)" rmmod -v -s no_such_module
run_both "rmmod of an empty name" rmmod ''

# --- insmod ----------------------------------------------------------------------------------
printf 'not an ELF file\n' >"$scratch/plain.ko"
run_both "insmod a missing file" insmod /no/such/file.ko
run_both "insmod a directory" insmod /etc
run_both "insmod a file that is no module" insmod "$scratch/plain.ko"
run_both "insmod with parameters" insmod "$scratch/plain.ko" a=1 "b=two words" c
if is_kmod30; then
    run_both "insmod -s -p" insmod -s -p "$scratch/plain.ko" # kmod 34 dropped -p
fi

# --- lsmod and kmod list on a staged /proc/modules (/proc hidden: run last) --------------------
cat >"$scratch/modules" <<'EOF'
fake_pata_acpi 16384 1 - Live 0xffffffffc0a1f000
fake_ata_generic 16384 0 - Live 0xffffffffc0a19000
fake_ata_piix 40960 0 - Live 0xffffffffc0a0c000
fake_libata 294912 3 fake_ata_piix,fake_ata_generic,fake_pata_acpi, Live 0xffffffffc09c1000
fake_sd_mod 61440 0 - Live 0xffffffffc09b0000
fake_scsi_mod 278528 2 fake_libata,fake_sd_mod, Live 0xffffffffc0960000
a_module_with_a_long_name_indeed 123456789012 0 - Live 0xffffffffc0900000
no_coresize 77777 0 - Live 0xffffffffc08f0000
junk_refcnt 4096 0 - Live 0xffffffffc08e0000
no_refcnt 12288 - - Live 0xffffffffc08d0000
coming_module 8192 0 - Loading 0xffffffffc08c0000
gone_already 8192 0 - Unloading 0xffffffffc08b0000
EOF
mount -t tmpfs proc-staged /proc
if is_kmod30; then
    run_both "lsmod without /proc/modules" lsmod # kmod 34 words it differently
fi
cp "$scratch/modules" /proc/modules
: >/proc/cmdline
run_both "lsmod" lsmod
run_both "kmod list" kmod list
: >/proc/modules
run_both "lsmod with no module loaded" lsmod

echo "kmod_tools_oracle: $cases cases against kmod $kmod_version, $failures differ"
[ "$failures" = 0 ]
