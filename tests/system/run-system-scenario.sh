#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Runs one scenario of tests/system/scenarios/ on a whole Debian 12 system: systemd as PID 1,
# the real system bus, polkitd, systemd-udevd and journald, on Debian's kernel under qemu.
#
#   run-system-scenario.sh [--deb=PATH] [--timeout=SECONDS] [--qemu-arg=ARG]... SCENARIO
#   run-system-scenario.sh --prepare [--deb=PATH]
#
# SCENARIO is a file, or the name of one in tests/system/scenarios/ (with or without .sh).
# --deb is kmodd's package to install, or the directory packaging/build-deb.sh left it in
# (default $KMODD_SYSTEM_DEB, else build/deb/). --prepare only builds the cached parts (step 1).
#
# What happens:
#   1. The kernel comes from tests/vm/run-scenario.sh --prepare (the same package and cache as
#      the vm tests). mmdebstrap makes a Debian 12 minbase root with systemd-sysv, dbus,
#      polkitd, udev, kmod and what the package depends on (read from the .deb), users alice
#      and bob (alice in group `drivers`), the kernel's module tree without the files depmod
#      writes, and no getty on the serial line. It is kept as one uncompressed initramfs piece
#      (about 700 MB) per package list and kernel; building it takes about 4 minutes.
#   2. A second piece per run: the .deb, the scenario, tests/vm/lib.sh and tests/system/lib.sh
#      under /kmodd-test, and kmodd-system-test.service, which multi-user.target wants.
#   3. qemu-system-x86_64 -accel tcg -cpu max boots the kernel with systemd as PID 1 (the root
#      is the initramfs, in RAM). When the boot reaches multi-user.target, the test service
#      runs the scenario as root (it installs the .deb with dpkg -i itself, see lib.sh), prints
#      the journal when it failed and KMODD-SYSTEM-EXIT=<status>; this script exits with that
#      status (1 when the marker is missing, after a timeout or a crash). It reports the boot
#      and scenario times.
#
# Environment: KMODD_SYSTEM_CACHE (default ${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/system),
# KMODD_SYSTEM_MEMORY (MiB, default 3072), KMODD_SYSTEM_TIMEOUT (seconds, default 420),
# KMODD_SYSTEM_VERBOSE=1 (print the journal even when the scenario passes). Needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(cd "$here/../.." && pwd)
# Bump when what step 1 puts in the root changes.
readonly kRootFormat=2
readonly kMirror=http://deb.debian.org/debian
readonly kSecurityMirror=http://deb.debian.org/debian-security

log() { printf 'run-system-scenario: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
usage() {
    sed -n 's/^#   run-system-scenario.sh/usage: run-system-scenario.sh/p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

deb=${KMODD_SYSTEM_DEB:-}
timeout=${KMODD_SYSTEM_TIMEOUT:-420}
memory=${KMODD_SYSTEM_MEMORY:-3072}
qemu_args=()
scenario=
prepare_only=0
for arg in "$@"; do
    case $arg in
    --qemu-arg=*) qemu_args+=("${arg#--qemu-arg=}") ;;
    --deb=*) deb=${arg#--deb=} ;;
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
[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap, and file owners in the root's archive)"

[[ -n $deb ]] || deb=$source_root/build/deb
if [[ -d $deb ]]; then
    for candidate in "$deb"/kmodd_*.deb; do
        [[ $candidate == *-dbgsym_* ]] || deb=$candidate
    done
fi
[[ -n $deb && -f $deb ]] ||
    die "no kmodd .deb ('${deb:-build/deb/kmodd_*.deb}'): run ./packaging/build-deb.sh, or give --deb"
[[ $(dpkg-deb -f "$deb" Package) == kmodd ]] || die "'$deb' is not kmodd's package"

if [[ $prepare_only -eq 0 ]]; then
    if [[ ! -f $scenario ]]; then
        for candidate in "$here/scenarios/$scenario" "$here/scenarios/$scenario.sh"; do
            [[ -f $candidate ]] && { scenario=$candidate; break; }
        done
    fi
    [[ -f $scenario ]] || die "no scenario '$scenario' (neither a file nor in $here/scenarios/)"
    scenario_name=$(basename "$scenario" .sh)
fi

missing=()
for tool in qemu-system-x86_64 mmdebstrap cpio dpkg-deb flock timeout; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[[ ${#missing[@]} -eq 0 ]] ||
    die "missing ${missing[*]}: run ./packaging/install-deps.sh --with-vm --with-deb"

cache=${KMODD_SYSTEM_CACHE:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/system}
case $cache in /*) ;; *) cache=$PWD/$cache ;; esac
mkdir -p "$cache/roots" "$cache/runs" || die "cannot create the cache '$cache'"
find "$cache/runs" -mindepth 1 -maxdepth 1 -mmin +120 -exec rm -rf {} + 2>/dev/null || true

# ---- 1. the kernel and the root --------------------------------------------------------------

started_all=$EPOCHREALTIME
vm_cache=${KMODD_VM_CACHE:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/vm}
KMODD_VM_CACHE=$vm_cache "$source_root/tests/vm/run-scenario.sh" --prepare >&2 ||
    die "tests/vm/run-scenario.sh --prepare could not provide the kernel"
read -r _ kernel_dir <"$vm_cache/kernel-lookup" || die "no kernel in '$vm_cache/kernel-lookup'"
[[ -f $kernel_dir/vmlinuz && -f $kernel_dir/modules.cpio ]] || die "'$kernel_dir' is incomplete"
release=$(<"$kernel_dir/release")

# What the root holds: the issue's packages, and what the .deb depends on (the guest has no
# network, dpkg -i must find them installed). Alternatives: the first one.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' |
    grep -v '^$' | LC_ALL=C sort -u | tr '\n' ',')
packages="systemd-sysv,dbus,polkitd,udev,kmod,procps,${depends%,}"
root_key=$(printf 'format=%s\npackages=%s\nkernel=%s\n' "$kRootFormat" "$packages" \
    "$(basename "$kernel_dir")" | sha256sum | cut -c1-16)
root_dir=$cache/roots/$root_key

# build_root DIR: DIR/root.cpio, the whole Debian system with the kernel's modules.
build_root() {
    local dir=$1 tmp=$1.tmp started=$EPOCHREALTIME
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "building the Debian 12 root ($packages) with mmdebstrap"
    # shellcheck disable=SC2016 # $1 is mmdebstrap's: the root's path
    mmdebstrap --variant=minbase --include="$packages" \
        --customize-hook='chroot "$1" groupadd --system drivers' \
        --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash --groups drivers alice' \
        --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash bob' \
        --customize-hook='systemctl --root="$1" mask serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer' \
        --customize-hook='echo kmodd-system >"$1/etc/hostname"; systemd-machine-id-setup --root="$1"' \
        bookworm "$tmp/root" "deb $kMirror bookworm main" "deb $kMirror bookworm-updates main" \
        "deb $kSecurityMirror bookworm-security main" >&2 || die "mmdebstrap failed"
    [[ -L $tmp/root/lib ]] || die "the root is not merged-/usr: /lib is not a link"
    # The kernel's tree (lib/modules/... in the piece) under usr/, where /lib points.
    (cd "$tmp/root/usr" && cpio -i -d -m --quiet) <"$kernel_dir/modules.cpio" ||
        die "cannot unpack the modules"
    [[ -d $tmp/root/usr/lib/modules/$release/kernel ]] || die "no usr/lib/modules/$release"
    # A root without /init: the kernel is told rdinit=/lib/systemd/systemd.
    (cd "$tmp/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) \
        >"$tmp/root.cpio" || die "cpio failed"
    rm -rf "$tmp/root"
    printf '%s\n' "$packages" >"$tmp/packages"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    log "root ready in $(elapsed "$started") s: $(du -m "$dir/root.cpio" | cut -f1) MB"
}

exec 9>"$cache/lock"
flock 9
if [[ ! -f $root_dir/root.cpio ]]; then
    build_root "$root_dir"
    for old in "$cache"/roots/*/; do
        [[ ${old%/} == "$root_dir" ]] || rm -rf "${old%/}"
    done
fi
flock -u 9
if [[ $prepare_only -eq 1 ]]; then
    log "kernel $release and root $root_key ready in $(elapsed "$started_all") s"
    exit 0
fi

# ---- 2. the run's own piece ------------------------------------------------------------------

run_dir=$(mktemp -d "$cache/runs/$scenario_name.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
trap 'exit 130' INT TERM
piece=$run_dir/piece
mkdir -p "$piece/kmodd-test" "$piece/etc/systemd/system/multi-user.target.wants"
cp "$deb" "$piece/kmodd-test/kmodd.deb"
cp "$source_root/tests/vm/lib.sh" "$piece/kmodd-test/vm-lib.sh"
cp "$here/lib.sh" "$piece/kmodd-test/lib.sh"
cp "$here/runner.sh" "$piece/kmodd-test/runner.sh"
cp "$scenario" "$piece/kmodd-test/scenario.sh"
printf '%s\n' "$scenario_name" >"$piece/kmodd-test/name"
cat >"$piece/etc/systemd/system/kmodd-system-test.service" <<'EOF'
[Unit]
Description=kmodd's system test scenario
After=multi-user.target

[Service]
Type=exec
ExecStart=/kmodd-test/runner.sh

[Install]
WantedBy=multi-user.target
EOF
ln -s ../kmodd-system-test.service \
    "$piece/etc/systemd/system/multi-user.target.wants/kmodd-system-test.service"
find "$piece" -type d -exec chmod 0755 {} +
chmod 0755 "$piece/kmodd-test/runner.sh" "$piece/kmodd-test/scenario.sh"
# Without ".": an entry for the root itself would give / this directory's owner and mode.
(cd "$piece" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
    >"$run_dir/piece.cpio" || die "cpio failed"
cat "$root_dir/root.cpio" "$run_dir/piece.cpio" >"$run_dir/initrd"
log "$scenario_name: kernel $release, root $root_key, initramfs $(du -m "$run_dir/initrd" |
    cut -f1) MB, ready in $(elapsed "$started_all") s"

# ---- 3. the VM -------------------------------------------------------------------------------

append="console=ttyS0 panic=-1 quiet rdinit=/lib/systemd/systemd systemd.show_status=error"
[[ ${KMODD_SYSTEM_VERBOSE:-0} == 1 ]] && append="$append kmodd_system.verbose=1"
console=$run_dir/console.log
started_vm=$EPOCHREALTIME
set +e
timeout --kill-after=5 "$timeout" qemu-system-x86_64 -accel tcg -cpu max -m "$memory" \
    -smp "${KMODD_SYSTEM_CPUS:-1}" -nodefaults -display none -serial stdio -no-reboot \
    -kernel "$kernel_dir/vmlinuz" -initrd "$run_dir/initrd" -append "$append" \
    "${qemu_args[@]}" </dev/null 2>&1 | tr -d '\r' | tee "$console"
qemu_status=${PIPESTATUS[0]}
set -e
vm_seconds=$(elapsed "$started_vm")

marker=$(grep -a -o '^KMODD-SYSTEM-EXIT=[0-9]*$' "$console" | tail -n 1 || true)
if [[ $qemu_status -eq 124 || $qemu_status -eq 137 ]]; then
    log "$scenario_name: FAILED: the VM did not finish within $timeout s; killed"
    exit 1
fi
if [[ -z $marker ]]; then
    log "$scenario_name: FAILED: no KMODD-SYSTEM-EXIT line on the console (qemu exited with" \
        "$qemu_status after $vm_seconds s): the VM crashed or the test service did not run"
    exit 1
fi
status=${marker#KMODD-SYSTEM-EXIT=}
times=$(grep -a '^kmodd-system: times ' "$console" | tail -n 1 | sed 's/^kmodd-system: times //')
if [[ $status -eq 0 ]]; then
    log "$scenario_name: passed (VM $vm_seconds s: $times; whole run $(elapsed "$started_all") s)"
else
    log "$scenario_name: FAILED with status $status (VM $vm_seconds s: $times)"
fi
exit "$status"
