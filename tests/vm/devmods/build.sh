#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the out-of-tree modules of the vm tests against Debian's linux-headers for the kernel
# the vm tests boot:
#
#   build.sh OUTDIR
#
# OUTDIR gets, for that kernel's release:
#   dev_a.ko        an int parameter `level`; exports kmodd_dev_a_level
#   dev_b.ko        needs kmodd_dev_a_level (of another out-of-tree module)
#   dev_nosym.ko    needs kmodd_no_such_symbol, which nobody exports
#   dev_magic.ko    its vermagic altered ("mod_unload" -> "mod_unlxad"), as if built for another
#                   kernel configuration
#   dev_signed.ko   signed by sign-file with a key made here (the kernel does not hold it)
#   dev_unsigned.ko no signature
#   dev_many.ko     needs 100 symbols nobody exports (kmodd_missing_00 ... _99)
#   signing_key.x509, release, stamp
# The kernel is the one run-scenario.sh --prepare put in the vm cache; linux-headers-RELEASE is
# installed with apt-get when /usr/src/linux-headers-RELEASE is missing. OUTDIR is kept while its
# stamp (release and the sources' digest) still holds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'devmods: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $# -eq 1 ]] || { sed -n 's/^#   build.sh/usage: build.sh/p' "${BASH_SOURCE[0]}" >&2; exit 2; }
out=$1
case $out in /*) ;; *) out=$PWD/$out ;; esac

cache=${KMODD_VM_CACHE:-${KMODD_TEST_CACHE:-/var/cache/kmodd-test}/vm}
[[ -f $cache/kernel-lookup ]] ||
    die "no kernel in '$cache': run tests/vm/run-scenario.sh --prepare first"
read -r _ kernel_dir <"$cache/kernel-lookup"
release=$(<"$kernel_dir/release")
stamp="release=$release sources=$(cat "$here"/Kbuild "$here"/*.c "${BASH_SOURCE[0]}" |
    sha256sum | cut -d' ' -f1)"
if [[ -f $out/stamp && $(<"$out/stamp") == "$stamp" ]]; then
    log "modules for $release are built already in $out"
    exit 0
fi

headers=/usr/src/linux-headers-$release
if [[ ! -f $headers/Makefile ]]; then
    log "installing linux-headers-$release"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "linux-headers-$release" >&2 || die "cannot install linux-headers-$release"
fi
for tool in make gcc openssl; do
    command -v "$tool" >/dev/null || die "'$tool' is missing: run ./packaging/install-deps.sh --with-vm"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/Kbuild "$here"/*.c "$work/"
# dev_nosym's symbol is undefined on purpose: modpost warns instead of failing.
make -s -C "$headers" M="$work" KBUILD_MODPOST_WARN=1 modules >"$work/make.log" 2>&1 || {
    cat "$work/make.log" >&2
    die "building the modules against $headers failed"
}

# Another vermagic: the same length, so that nothing else in the file moves.
vermagic=$(modinfo -F vermagic "$work/dev_magic.ko")
[[ $vermagic == *mod_unload* ]] || die "dev_magic's vermagic '$vermagic' has no mod_unload"
LC_ALL=C sed -i 's/mod_unload/mod_unlxad/' "$work/dev_magic.ko"
[[ $(modinfo -F vermagic "$work/dev_magic.ko") == "${vermagic/mod_unload/mod_unlxad}" ]] ||
    die "altering dev_magic's vermagic failed"

# A key of our own, as a developer (or DKMS) makes one.
cat >"$work/x509.genkey" <<'CONF'
[ req ]
default_bits = 2048
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = extensions
[ req_distinguished_name ]
CN = kmodd test signing key
[ extensions ]
basicConstraints = critical,CA:FALSE
keyUsage = digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CONF
openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config "$work/x509.genkey" \
    -outform DER -out "$work/signing_key.x509" -keyout "$work/signing_key.pem" 2>/dev/null ||
    die "openssl could not make a signing key"
"$headers/scripts/sign-file" sha256 "$work/signing_key.pem" "$work/signing_key.x509" \
    "$work/dev_signed.ko" || die "sign-file failed"
[[ $(modinfo -F signer "$work/dev_signed.ko") == "kmodd test signing key" ]] ||
    die "dev_signed.ko is not signed"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$work"/*.ko "$work/signing_key.x509" "$out.tmp/"
printf '%s\n' "$release" >"$out.tmp/release"
printf '%s\n' "$stamp" >"$out.tmp/stamp"
rm -rf "$out"
mv "$out.tmp" "$out"
log "built $(cd "$out" && echo *.ko) for $release in $out"
