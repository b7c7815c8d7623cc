# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 1: the installed service. dpkg -i starts kmodd through systemd (Type=notify, with a
# StatusText), the running kernel's index is written by kmodd and equals kmod's depmod byte for
# byte, the bus policy works without a reload of dbus, and the journal has kmodd's start and
# rebuild lines, including one for a change made after the start; a refused load quotes the
# kernel's own line (the unit lets kmodd read /dev/kmsg).
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

say "before the install, the tree has no index (the harness removed depmod's files)"
[ -e "$MODDIR/modules.dep" ] && fail "$MODDIR/modules.dep exists before kmodd was installed"
ok "no $MODDIR/modules.dep"

install_kmodd

say "systemd knows kmodd as a notify service with a status text"
must systemctl show --property=Type,NotifyAccess,StatusText,WatchdogUSec,ActiveState kmodd.service
expect_in "$OUT" "Type=notify" "the unit is Type=notify"
expect_in "$OUT" "ActiveState=active" "systemd calls it active"
expect_in "$OUT" "WatchdogUSec=1min" "the watchdog is armed (1 min)"
status_text=$(systemctl show --property=StatusText --value kmodd.service)
expect_in "$status_text" "Serving $KVER:" "StatusText came through sd_notify: '$status_text'"
must systemctl is-enabled kmodd.service
ok "dh_installsystemd enabled the unit ($OUT)"

say "the bus policy is live without a reload of dbus: root and bob reach kmodd"
must "$KMODCTL" status
expect_in "$OUT" "Kernel release:   $KVER" "kmodctl status answers as root"
must as_user bob "$KMODCTL" status
ok "bob may read the status"

# Before the hard-linked copy below: linking changes every module file's ctime, and a file
# whose ctime changed is parsed again (as it must be).
say "a restart reads the parse cache in /var/cache/kmodd: no module file is parsed again"
cache=/var/cache/kmodd/$KVER/modules.cache
[ -s "$cache" ] || fail "no parse cache at $cache"
ok "the parse cache has $(du -k "$cache" | cut -f1) kB"
must systemctl stop kmodd.service
rm "$MODDIR/modules.dep"
started=$(cut -d' ' -f1 /proc/uptime)
must systemctl start kmodd.service
ready=$(cut -d' ' -f1 /proc/uptime)
ok "systemctl start returned (READY=1) after $(awk -v a="$started" -v b="$ready" 'BEGIN { printf "%.2f", b - a }') s"
line=$(kmodd_journal | grep -F "index of '$KVER' written" | tail -n 1)
expect_in "$line" ", 0 parsed" "the restart took every module from the cache: $line"
[ -s "$MODDIR/modules.dep" ] || fail "the restart did not write modules.dep again"
ok "modules.dep is back"
KMODD_PID=$(kmodd_pid)

say "the index of the running kernel is current: byte for byte what kmod's depmod writes"
wait_until 60 sh -c "[ -s '$MODDIR/modules.dep.bin' ]" || fail "no modules.dep.bin"
# kmod 30's depmod has no --outdir: it runs on a copy of the tree made of hard links, without
# kmodd's files (depmod replaces its outputs by rename, the originals stay as they are).
rm -rf /root/kmod-out
mkdir -p /root/kmod-out/lib/modules
cp -al "$MODDIR" /root/kmod-out/lib/modules/
for file in "$MODDIR"/modules.*; do
    case ${file##*/} in
    modules.order | modules.builtin | modules.builtin.modinfo) ;;
    *) rm "/root/kmod-out/lib/modules/$KVER/${file##*/}" ;;
    esac
done
must depmod -b /root/kmod-out "$KVER"
compared=0
for file in modules.dep modules.dep.bin modules.alias modules.alias.bin modules.symbols \
    modules.symbols.bin modules.softdep modules.devname modules.builtin.bin \
    modules.builtin.alias.bin; do
    cmp "/root/kmod-out/lib/modules/$KVER/$file" "$MODDIR/$file" ||
        fail "$file differs from kmod's depmod"
    compared=$((compared + 1))
done
ok "$compared index files equal kmod's ($(wc -l <"$MODDIR/modules.dep") modules in modules.dep)"

say "journald has kmodd's start and first rebuild"
journal=$(kmodd_journal)
expect_in "$journal" "index of '$KVER' written" "the journal has the first rebuild"
expect_in "$journal" "serving org.kmodd1 on the system bus" "the journal has the start"
journalctl --boot --no-pager --output=cat | grep -q "Started kmodd.service" ||
    journalctl --boot --no-pager --output=cat | grep -q "Started .*Kernel module index" ||
    fail "systemd did not log that it started kmodd.service"
ok "systemd logged the start"

say "a change after the start: a module file moved within the tree is indexed at once"
rebuilds=$(journal_count "index of '$KVER' written")
mkdir -p "$MODDIR/extra"
mv "$MODDIR/kernel/drivers/net/dummy$KO" "$MODDIR/extra/dummy$KO"
wait_until 30 sh -c "grep -q '^extra/dummy$KO:' '$MODDIR/modules.dep'" ||
    fail "modules.dep does not list extra/dummy$KO"
ok "modules.dep lists extra/dummy$KO"
wait_until 10 sh -c "[ \$(journalctl -b -u kmodd.service -o cat | grep -c -F \"index of '$KVER' written\") -gt $rebuilds ]" ||
    fail "no new rebuild line in the journal"
kmodd_journal | grep -F "index of '$KVER' written" | tail -n 1
ok "the journal has the rebuild of the change"
must modinfo -n dummy
expect_in "$OUT" "/extra/dummy$KO" "kmod's modinfo finds dummy where kmodd's index says it went"
expect_kmodd_alive

say "a refused load under the unit quotes the kernel's own line (/dev/kmsg behind dmesg_restrict)"
[ "$(cat /proc/sys/kernel/dmesg_restrict)" = 1 ] || ok "(dmesg_restrict is not 1 here)"
run "$KMODCTL" load dummy numdummies=notanumber
[ "$RC" -eq 1 ] || fail "a refused load should exit 1, not $RC"
expect_in "$ERR" "The kernel said:" "kmodd read the kernel's lines about the insertion"
expect_in "$ERR" "notanumber" "the kernel's line names the value"
expect_not_loaded dummy

exit 0
