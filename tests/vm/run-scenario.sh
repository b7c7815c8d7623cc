#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs one scenario of tests/vm/scenarios/ on Debian's real kernel in a virtual machine:
#
#   run-scenario.sh [--kmodd=PATH] [--kmodctl=PATH] [--timeout=SECONDS] [--qemu-arg=ARG]...
#                   [--kernel-arg=ARG]... [--copy=HOSTPATH:GUESTPATH]... SCENARIO
#   run-scenario.sh --prepare
#
# SCENARIO is a file, or the name of one in tests/vm/scenarios/ (with or without .sh).
# --prepare only fetches the kernel and builds its cached part of the initramfs (step 1).
# --kmodd / --kmodctl default to $KMODD_VM_KMODD / $KMODD_VM_KMODCTL, else build/bin/ of the
# source tree. --qemu-arg passes one argument to qemu, e.g. --qemu-arg=-device --qemu-arg=e1000.
# --kernel-arg appends one argument to the kernel command line, e.g.
# --kernel-arg=module.sig_enforce=1. --copy places a file or directory built on the host at an
# absolute path in the guest (GUESTPATH's parents are created), e.g. out-of-tree modules:
# --copy=/tmp/mods:/vm/mods.
#
# What happens:
#   1. apt-get download fetches linux-image-amd64's kernel image package (the .deb that
#      tests/oracle/fetch-kernels.sh downloaded is reused when it has the archive's SHA256) into
#      CACHE/debs; CACHE/kernels/<package>_<version>/ then gets its vmlinuz and modules.cpio, an
#      uncompressed initramfs piece with every module of the package, modules.order,
#      modules.builtin and modules.builtin.modinfo, and none of the files depmod writes: kmodd
#      has to write the index itself. Both are built once per kernel package.
#   2. A second piece is built for every run (about a second): busybox, kmod's tools
#      (/sbin/modprobe, lsmod, depmod, modinfo, insmod, rmmod -> /usr/bin/kmod), xz (as
#      /usr/libexec/vm/xz), dbus-daemon with
#      Debian's system bus configuration plus systemd/org.kmodd1.conf, kmodd and kmodctl
#      (stripped) with every shared library ldd names and the dynamic loader, tests/vm/init as
#      /init, tests/vm/lib.sh and the scenario.
#   3. qemu-system-x86_64 -accel tcg -cpu max boots the kernel on the concatenation of both
#      pieces. /init starts the system bus, then `kmodd --bus system`, waits until `kmodctl
#      status` answers and kmodd's autoloading of the devices present has settled, runs the
#      scenario with sh and prints KMODD-VM-EXIT=<status>; this script exits with that status
#      (1 when the marker is missing, after a timeout or a crash).
#
# Environment: KMODD_VM_CACHE (default ${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/vm),
# KMODD_VM_MEMORY (MiB, default 2048), KMODD_VM_CPUS (default 1), KMODD_VM_TIMEOUT (seconds,
# default 180), KMODD_VM_VERBOSE=1 (print kmodd's log and the kernel's messages even when the
# scenario passes).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(cd "$here/../.." && pwd)

# The names kmod's tools are called by; busybox has applets of the same names, left out.
readonly kKmodTools=(modprobe lsmod depmod modinfo insmod rmmod)
# What depmod writes: none of it may reach the VM.
readonly kIndexFiles=(modules.dep modules.dep.bin modules.alias modules.alias.bin modules.softdep modules.weakdep
    modules.symbols modules.symbols.bin modules.builtin.bin modules.builtin.alias.bin
    modules.devname)
# Bump when the layout of CACHE/kernels/* changes.
readonly kKernelCacheFormat=1

log() { printf 'run-scenario: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Seconds since START (an $EPOCHREALTIME value), one decimal.
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
    # The comment at the top, up to "What happens".
    sed -n '3,/^# What happens/{/^# What happens/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

kmodd=${KMODD_VM_KMODD:-$source_root/build/bin/kmodd}
kmodctl=${KMODD_VM_KMODCTL:-$source_root/build/bin/kmodctl-tools}
timeout=${KMODD_VM_TIMEOUT:-180}
memory=${KMODD_VM_MEMORY:-2048}
qemu_args=()
kernel_args=()
copies=()
scenario=
prepare_only=0
for arg in "$@"; do
    case $arg in
    --qemu-arg=*) qemu_args+=("${arg#--qemu-arg=}") ;;
    --kernel-arg=*) kernel_args+=("${arg#--kernel-arg=}") ;;
    --copy=*) copies+=("${arg#--copy=}") ;;
    --kmodd=*) kmodd=${arg#--kmodd=} ;;
    --kmodctl=*) kmodctl=${arg#--kmodctl=} ;;
    --timeout=*) timeout=${arg#--timeout=} ;;
    --prepare) prepare_only=1 ;;
    -h | --help) usage ;;
    -*) log "unknown option '$arg'"; usage ;;
    *) [[ -z $scenario ]] || { log "more than one scenario given"; usage; }
       scenario=$arg ;;
    esac
done
[[ -n $scenario || $prepare_only -eq 1 ]] || usage
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a number of seconds, not '$timeout'"
for arg in "${kernel_args[@]}"; do
    [[ -n $arg && $arg != *[[:space:]]* ]] ||
        die "--kernel-arg wants one argument without spaces, not '$arg'"
done
for copy in "${copies[@]}"; do
    [[ $copy == *:/* ]] || die "--copy wants HOSTPATH:/GUESTPATH, not '$copy'"
    [[ -e ${copy%%:/*} ]] || die "--copy: '${copy%%:/*}' does not exist"
done

if [[ $prepare_only -eq 0 ]]; then
    if [[ ! -f $scenario ]]; then
        for candidate in "$here/scenarios/$scenario" "$here/scenarios/$scenario.sh"; do
            [[ -f $candidate ]] && { scenario=$candidate; break; }
        done
    fi
    [[ -f $scenario ]] || die "no scenario '$scenario' (neither a file nor in $here/scenarios/)"
    scenario_name=$(basename "$scenario" .sh)
fi

# Fail fast, before any download, when something the run needs is not there.
missing=()
for tool in qemu-system-x86_64 busybox cpio dbus-daemon kmod ldd apt-get dpkg-deb flock \
    timeout sha256sum strip xz; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ ${#missing[@]} -eq 0 ]] ||
    die "missing ${missing[*]}: run ./packaging/install-deps.sh --with-vm"
if [[ $prepare_only -eq 0 ]]; then
    for binary in "$kmodd" "$kmodctl"; do
        [[ -x $binary ]] || die "'$binary' is not an executable: build kmodd and kmodctl" \
            "first (cmake --build build --target kmodd kmodctl)"
    done
fi
busybox=$(command -v busybox)
file -b "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    die "'$busybox' is not static: install busybox-static (./packaging/install-deps.sh --with-vm)"
dbus_system_conf=/usr/share/dbus-1/system.conf
[[ -f $dbus_system_conf ]] || die "'$dbus_system_conf' is missing: run ./packaging/install-deps.sh --with-vm"
policy=$source_root/systemd/org.kmodd1.conf
[[ -f $policy ]] || die "'$policy' is missing"

cache=${KMODD_VM_CACHE:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/vm}
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
mkdir -p "$cache/debs" "$cache/kernels" "$cache/runs" || die "cannot create the cache '$cache'"
# A run's directory holds a 400 MB initramfs; one left by a killed run goes after two hours.
find "$cache/runs" -mindepth 1 -maxdepth 1 -mmin +120 -exec rm -rf {} + 2>/dev/null || true
# fetch-kernels.sh's downloads, reused when they are the archive's current file.
oracle_debs=${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/debs

# ---- 1. the kernel ---------------------------------------------------------------------------

ensure_apt_lists() {
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null ||
        ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        log "apt has no usable package lists, running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
    fi
}

sha256_of() { sha256sum <"$1" | cut -d' ' -f1; }

# fetch_deb SPEC: the path of package SPEC's .deb in $cache/debs (or fetch-kernels.sh's copy),
# downloaded unless a file with the archive's SHA256 is already there.
fetch_deb() {
    local spec=$1 line file sha started
    line=$(apt-get download --print-uris "$spec" 2>/dev/null | head -n 1) || true
    [[ -n $line ]] || return 1
    read -r _ file _ sha <<<"$line"
    sha=${sha#SHA256:}
    [[ $sha =~ ^[0-9a-f]{64}$ ]] || die "apt gave no SHA256 for '$spec': $line"
    for candidate in "$cache/debs/$file" "$oracle_debs/$file"; do
        if [[ -f $candidate && $(sha256_of "$candidate") == "$sha" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    log "downloading $file"
    started=$EPOCHREALTIME
    rm -f "$cache/debs/$file"
    # As root apt would drop to the _apt user, which cannot write into a root-owned cache.
    (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "$spec" >&2) ||
        die "apt-get download '$spec' failed"
    [[ $(sha256_of "$cache/debs/$file") == "$sha" ]] ||
        die "'$file' does not have the archive's SHA256"
    log "$file: downloaded in $(elapsed "$started") s"
    printf '%s\n' "$cache/debs/$file"
}

# The image package linux-image-amd64 points at, as a .deb path; empty when apt cannot tell.
locate_kernel_deb() {
    local meta_deb depends spec
    ensure_apt_lists
    meta_deb=$(fetch_deb linux-image-amd64) || return 0
    depends=$(dpkg-deb -f "$meta_deb" Depends)
    # "linux-image-6.1.0-56-amd64 (= 6.1.192-2)": the first alternative is the image.
    [[ $depends =~ ^(linux-image-[^[:space:],|]+)[[:space:]]*(\(=[[:space:]]*([^\)[:space:]]+)\))? ]] ||
        die "cannot read the image package from linux-image-amd64's Depends: '$depends'"
    spec=${BASH_REMATCH[1]}${BASH_REMATCH[3]:+=${BASH_REMATCH[3]}}
    fetch_deb "$spec" || die "apt cannot locate '$spec'"
}

# build_kernel_cache DEB DIR: DIR/vmlinuz, DIR/modules.cpio, DIR/release from the image package.
build_kernel_cache() {
    local deb=$1 dir=$2 tmp=$2.tmp started=$EPOCHREALTIME versions release
    rm -rf "$tmp"
    mkdir -p "$tmp/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" || die "cannot unpack '$deb'"
    # Debian 13's packages are merged-/usr: the modules come in usr/lib/modules.
    if [[ ! -d $tmp/root/lib/modules && -d $tmp/root/usr/lib/modules ]]; then
        mkdir -p "$tmp/root/lib"
        mv "$tmp/root/usr/lib/modules" "$tmp/root/lib/modules"
    fi
    find "$tmp/root" -mindepth 1 -maxdepth 1 ! -name boot ! -name lib -exec rm -rf {} +
    find "$tmp/root/lib" -mindepth 1 -maxdepth 1 ! -name modules -exec rm -rf {} +
    versions=("$tmp"/root/lib/modules/*/)
    [[ ${#versions[@]} -eq 1 && -d ${versions[0]} ]] ||
        die "'$deb' must hold exactly one lib/modules/<version>"
    release=$(basename "${versions[0]}")
    [[ -f $tmp/root/boot/vmlinuz-$release ]] || die "'$deb' has no boot/vmlinuz-$release"
    mv "$tmp/root/boot/vmlinuz-$release" "$tmp/vmlinuz"
    rm -rf "$tmp/root/boot"
    for file in "${kIndexFiles[@]}"; do rm -f "$tmp/root/lib/modules/$release/$file"; done
    for file in modules.order modules.builtin modules.builtin.modinfo; do
        [[ -f $tmp/root/lib/modules/$release/$file ]] || die "'$deb' has no $file"
    done
    # Uncompressed: under TCG the kernel copies 400 MB faster than it would inflate 70 MB.
    (cd "$tmp/root" && find lib | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
        >"$tmp/modules.cpio" || die "cpio failed"
    rm -rf "$tmp/root"
    printf '%s\n' "$release" >"$tmp/release"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    log "kernel $release: vmlinuz and $(du -m "$dir/modules.cpio" | cut -f1) MB of modules" \
        "ready in $(elapsed "$started") s"
}

# A key of apt's package lists: the kernel apt points at changes only when they do.
apt_lists_key() {
    stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null | sha256sum | cut -d' ' -f1
}

started_all=$EPOCHREALTIME
# One run at a time builds the caches: ctest may start several scenarios at once.
exec 9>"$cache/lock"
flock 9
# Asking apt takes seconds; its answer is kept until its package lists change.
lists_key=$(apt_lists_key)
kernel_dir=
if [[ -f $cache/kernel-lookup ]]; then
    read -r known_key known_dir <"$cache/kernel-lookup" || true
    [[ ${known_key:-} == "$lists_key" && -f ${known_dir:-/nonexistent}/stamp ]] &&
        kernel_dir=$known_dir
fi
if [[ -z $kernel_dir ]]; then
    kernel_deb=$(locate_kernel_deb)
    if [[ -n $kernel_deb ]]; then
        kernel_dir=$cache/kernels/$(basename "$kernel_deb" .deb)
        stamp="format=$kKernelCacheFormat sha256=$(sha256_of "$kernel_deb")"
        if [[ ! -f $kernel_dir/stamp || $(<"$kernel_dir/stamp") != "$stamp" ]]; then
            build_kernel_cache "$kernel_deb" "$kernel_dir"
            printf '%s\n' "$stamp" >"$kernel_dir/stamp"
        fi
        # Kernels the archive has left behind only cost disk.
        for old in "$cache"/kernels/*/; do
            [[ ${old%/} == "$kernel_dir" ]] || rm -rf "${old%/}"
        done
        # apt-get update may have run meanwhile.
        printf '%s %s\n' "$(apt_lists_key)" "$kernel_dir" >"$cache/kernel-lookup"
    else
        # apt cannot reach the archive: a kernel cached earlier still proves something.
        kernel_dir=
        for dir in "$cache"/kernels/*/; do
            [[ -d $dir ]] && kernel_dir=$dir # the last in glob order, as ls sorts
        done
        kernel_dir=${kernel_dir%/}
        [[ -n $kernel_dir && -f $kernel_dir/stamp ]] ||
            die "apt cannot locate linux-image-amd64 and no kernel is cached in '$cache/kernels'"
        log "warning: apt cannot locate linux-image-amd64; using the cached" \
            "$(basename "$kernel_dir")"
    fi
fi
flock -u 9
release=$(<"$kernel_dir/release")
if [[ $prepare_only -eq 1 ]]; then
    log "kernel $release ready in $kernel_dir ($(du -m "$kernel_dir/modules.cpio" | cut -f1) MB" \
        "of modules), in $(elapsed "$started_all") s"
    exit 0
fi

# ---- 2. the run's own piece: tools, kmodd, the scenario ---------------------------------------

run_dir=$(mktemp -d "$cache/runs/$scenario_name.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
trap 'exit 130' INT TERM

root=$run_dir/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib64,etc/dbus-1,proc,sys,dev,run,tmp,root,vm,var/lib/dbus} \
    "$root/usr/share/dbus-1/system.d"
chmod 1777 "$root/tmp"

# copy_with_libraries FILE DEST: FILE at DEST inside the root, and what it links, at the paths
# ldd names (the dynamic loader included).
copy_with_libraries() {
    local file=$1 dest=$2 lib
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$file" "$root/$dest"
    while read -r lib; do
        [[ -e $root/$lib ]] && continue
        mkdir -p "$root/$(dirname "$lib")"
        cp -L "$lib" "$root/$lib"
    done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

strip -o "$run_dir/kmodd" "$kmodd"
strip -o "$run_dir/kmodctl" "$kmodctl"
copy_with_libraries "$run_dir/kmodd" /usr/sbin/kmodd
copy_with_libraries "$run_dir/kmodctl" /usr/bin/kmodctl
copy_with_libraries "$(command -v dbus-daemon)" /usr/bin/dbus-daemon
copy_with_libraries "$(command -v dbus-send)" /usr/bin/dbus-send
copy_with_libraries "$(readlink -f "$(command -v kmod)")" /usr/bin/kmod
# xz-utils' xz, which compresses (busybox's only decompresses), by a path no applet shadows.
copy_with_libraries "$(command -v xz)" /usr/libexec/vm/xz
for tool in "${kKmodTools[@]}"; do ln -s /usr/bin/kmod "$root/sbin/$tool"; done

cp "$busybox" "$root/bin/busybox"
# /init links the other applets (busybox --install), leaving out kmod's names.
ln -s busybox "$root/bin/sh"

cp "$dbus_system_conf" "$root/usr/share/dbus-1/system.conf"
cp "$policy" "$root/usr/share/dbus-1/system.d/org.kmodd1.conf"
printf 'root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/nonexistent:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
printf 'root:x:0:\nmessagebus:x:101:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$root/etc/machine-id"
cp "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"

cp "$here/init" "$root/init"
cp "$here/lib.sh" "$root/vm/lib.sh"
cp "$scenario" "$root/vm/scenario.sh"
chmod 0755 "$root/init" "$root/vm/scenario.sh"
# SCENARIO.before.sh, if there is one, runs before kmodd starts (e.g. to take a driver away).
before=${scenario%.sh}.before.sh
[[ -f $before ]] && cp "$before" "$root/vm/before-kmodd.sh"
printf '%s\n' "$scenario_name" >"$root/vm/name"
for copy in "${copies[@]}"; do
    guest_path=/${copy#*:/}
    [[ $guest_path != *..* ]] || die "--copy: '$guest_path' must not contain '..'"
    mkdir -p "$root$(dirname "$guest_path")"
    cp -a "${copy%%:/*}" "$root$guest_path"
done

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$run_dir/run.cpio" ||
    die "cpio failed"
# The kernel unpacks concatenated archives in order: the modules, then this run's files.
cat "$kernel_dir/modules.cpio" "$run_dir/run.cpio" >"$run_dir/initrd"
initrd_mb=$(du -m "$run_dir/initrd" | cut -f1)
log "$scenario_name: kernel $release, initramfs $initrd_mb MB ($(du -k "$run_dir/run.cpio" |
    cut -f1) kB of it this run's), ready in $(elapsed "$started_all") s"

# ---- 3. the VM -------------------------------------------------------------------------------

append="console=ttyS0 panic=-1 quiet"
[[ ${KMODD_VM_VERBOSE:-0} == 1 ]] && append="$append kmodd_vm.verbose=1"
[[ ${#kernel_args[@]} -eq 0 ]] || append="$append ${kernel_args[*]}"
console=$run_dir/console.log
# qemu's human monitor on two FIFOs: a console line "KMODD-VM-HMP: COMMAND" from the scenario
# is sent to it (e.g. device_add, to hotplug a device while the scenario watches).
mkfifo "$run_dir/monitor.in" "$run_dir/monitor.out"
exec 7<>"$run_dir/monitor.in" 8<>"$run_dir/monitor.out"
cat <&8 >"$run_dir/monitor.log" &
monitor_reader=$!
# relay_console: the console to stdout and the log (without the serial line's CRs), monitor
# commands to qemu at once (no buffering filter in between: the scenario waits for them).
relay_console() {
    local line
    while IFS= read -r line; do
        line=${line//$'\r'/}
        printf '%s\n' "$line"
        printf '%s\n' "$line" >>"$console"
        if [[ $line == KMODD-VM-HMP:\ * ]]; then
            printf '%s\n' "${line#KMODD-VM-HMP: }" >&7
            log "$scenario_name: sent '${line#KMODD-VM-HMP: }' to qemu's monitor"
        fi
    done
}
: >"$console"
started_vm=$EPOCHREALTIME
set +e
timeout --kill-after=5 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$memory" \
    -smp "${KMODD_VM_CPUS:-1}" -nodefaults -display none -serial stdio -no-reboot \
    -monitor "pipe:$run_dir/monitor" \
    -kernel "$kernel_dir/vmlinuz" -initrd "$run_dir/initrd" -append "$append" \
    "${qemu_args[@]}" </dev/null 2>&1 | relay_console
qemu_status=${PIPESTATUS[0]}
set -e
kill "$monitor_reader" 2>/dev/null || true
exec 7>&- 8<&-
vm_seconds=$(elapsed "$started_vm")

marker=$(grep -a -o '^KMODD-VM-EXIT=[0-9]*$' "$console" | tail -n 1 || true)
if [[ $qemu_status -eq 124 || $qemu_status -eq 137 ]]; then
    log "$scenario_name: FAILED: the VM did not finish within $timeout s; killed"
    exit 1
fi
if [[ -z $marker ]]; then
    log "$scenario_name: FAILED: no KMODD-VM-EXIT line on the console (qemu exited with" \
        "$qemu_status after $vm_seconds s): the VM crashed or /init did not finish"
    exit 1
fi
status=${marker#KMODD-VM-EXIT=}
if [[ $status -eq 0 ]]; then
    log "$scenario_name: passed (VM $vm_seconds s, whole run $(elapsed "$started_all") s)"
else
    log "$scenario_name: FAILED with status $status (VM $vm_seconds s)"
fi
exit "$status"
