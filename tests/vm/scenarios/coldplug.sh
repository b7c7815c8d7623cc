# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# kmodd's autoloading at start (coldplug) on qemu's real devices: for every device with a
# modalias, the modules kmod's `modprobe -R` resolves it to are loaded (or built in, or the
# kernel refused them: kmodd says why), as udev's `modprobe -b $MODALIAS` would do; no modalias
# is refused as a name (a CPU's is ~700 characters long, a DMI one holds slashes).
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

say "kmodd autoloaded drivers at start"
grep 'for /sys/devices' /run/kmodd.log | sed 's/^/  /'
grep -q '^kmodd: info: loaded .* for /sys/devices/' /run/kmodd.log ||
    fail "kmodd's log names no driver loaded for a device"
ok "kmodd loaded drivers for devices"

say "no modalias was refused as a module name"
if grep 'Invalid module name' /run/kmodd.log; then
    fail "kmodd refused a modalias the kernel gave"
fi
ok "none"

# refusal MODULE: the last "cannot insert" kmodd logged for MODULE or one of its dependencies
# (the name may be spelled with dashes, as its file is).
refusal() {
    for dep in $("$MODPROBE" --show-depends "$1" 2>/dev/null | awk '$1 == "insmod" { print $2 }' |
        while read -r path; do name_of_path "$path"; done); do
        pattern=$(echo "$dep" | sed 's/_/[-_]/g')
        grep -a -o "cannot insert '$pattern': [^;(]*" /run/kmodd.log | tail -n 1
    done | tail -n 1
}

say "every module kmod resolves a device's modalias to is loaded, built in, or refused by the kernel"
checked=0
# A for loop, not find | while: fail must end the scenario, not a subshell. Paths under
# /sys/devices have no blanks.
# shellcheck disable=SC2044
for file in $(find /sys/devices -name modalias -type f); do
    modalias=$(cat "$file" 2>/dev/null) || continue
    [ -n "$modalias" ] || continue
    for module in $("$MODPROBE" -R "$modalias" 2>/dev/null); do
        checked=$((checked + 1))
        is_loaded "$module" && continue
        grep -q "/$(echo "$module" | sed 's/_/[-_]/g')\.ko\$" "$MODDIR/modules.builtin" && continue
        why=$(refusal "$module")
        [ -n "$why" ] || fail "'$module' (for $(dirname "$file")) is neither loaded nor built in, and kmodd's log says nothing about it"
        echo "  $module: the kernel refused: ${why#cannot insert }"
    done
done
[ "$checked" -gt 0 ] || fail "kmod resolved no device's modalias: the scenario checks nothing"
ok "$checked modalias matches checked"

say "kmodctl list says the modules kmodd loaded for devices were autoloaded"
must "$KMODCTL" list
autoloaded=$(sed -n 's/^kmodd: info: loaded \(.*\) for \/sys\/devices\/.*/\1/p' /run/kmodd.log |
    tr -d ',' | tr ' ' '\n' | sort -u)
for module in $autoloaded; do
    is_loaded "$module" || continue
    origin=$(printf '%s\n' "$OUT" | awk -v m="$module" '$1 == m { print $NF }')
    case $origin in
    '[autoload]' | '[dependency]') ;;
    *) fail "'$module' was loaded for a device, kmodctl list says $origin" ;;
    esac
done
printf '%s\n' "$OUT" | grep -q '\[autoload\]$' || fail "no module is marked [autoload]"
printf '%s\n' "$OUT" | grep -q '\[explicit\]$' && fail "a module is marked as loaded by a user"
ok "marked [autoload] (their dependencies [dependency]), none [explicit]"
exit 0
