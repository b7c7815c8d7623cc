# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Scenario 6: a module file dropped where DKMS puts them (updates/dkms/) can be loaded through
# kmodctl at once, without depmod. Then `apt-get remove` stops the service and leaves the index
# files in place, and `apt-get purge` removes /etc/kmodd and /run/kmodd.
# shellcheck source=tests/system/lib.sh
. /kmodd-test/lib.sh

# snapshot: every path of the root file system but what dpkg, apt, logs and this scenario
# change by design (the module tree: the index files stay, as they should), as piuparts does.
snapshot() {
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/cache -o -path /var/log -o -path /var/lib/dpkg -o -path /var/lib/apt \
        -o -path /var/lib/systemd -o -path /usr/lib/modules -o -path /root -o -path /kmodd-test \) \
        -prune -o -print | LC_ALL=C sort
}

mkdir -p /root/later
mv "$MODDIR/kernel/drivers/net/dummy$KO" /root/later/
ok "dummy is not in the tree before the install"
snapshot >/root/before.list
install_kmodd
must_fail "$KMODCTL" load dummy
ok "so kmodctl cannot load it"

say "dummy dropped into updates/dkms/ loads at once"
mkdir -p "$MODDIR/updates/dkms"
cp "/root/later/dummy$KO" "$MODDIR/updates/dkms/dummy$KO"
must "$KMODCTL" load dummy
expect_loaded dummy
grep -q "^updates/dkms/dummy$KO:" "$MODDIR/modules.dep" || fail "modules.dep does not list updates/dkms/dummy$KO"
ok "modules.dep lists updates/dkms/dummy$KO"
must "$KMODCTL" unload dummy
expect_not_loaded dummy

say "an administrator's configuration and kmodd's records exist"
mkdir -p /etc/kmodd
cp /usr/share/doc/kmodd/examples/kmodd.conf /etc/kmodd/kmodd.conf
[ -d /run/kmodd ] || fail "/run/kmodd does not exist"
ok "/etc/kmodd/kmodd.conf and /run/kmodd exist"

say "apt-get remove stops kmodd and leaves the index"
must env DEBIAN_FRONTEND=noninteractive apt-get remove -y kmodd
systemctl is-active --quiet kmodd.service && fail "kmodd.service is still active after the remove"
pgrep -x kmodd && fail "a kmodd process survived the remove"
ok "kmodd.service is stopped and no kmodd runs"
for file in modules.dep modules.dep.bin modules.alias.bin modules.symbols.bin; do
    [ -s "$MODDIR/$file" ] || fail "$file is gone after the remove"
done
ok "the index files are still in place"
must modprobe -n -v dummy
expect_in "$OUT" "updates/dkms/dummy$KO" "kmod's modprobe still finds dummy through the index"
[ -x /usr/bin/kmodctl ] && fail "/usr/bin/kmodctl is still installed"
[ -f /etc/kmodd/kmodd.conf ] || fail "the remove took the administrator's configuration"
ok "the configuration stays until the purge"

say "apt-get purge removes /etc/kmodd and /run/kmodd"
must env DEBIAN_FRONTEND=noninteractive apt-get purge -y kmodd
[ -e /etc/kmodd ] && fail "/etc/kmodd is still there after the purge"
[ -e /run/kmodd ] && fail "/run/kmodd is still there after the purge"
[ -e /var/cache/kmodd ] && fail "/var/cache/kmodd (the parse caches) is still there after the purge"
ok "/etc/kmodd, /run/kmodd and /var/cache/kmodd are gone"
dpkg-query -W -f '${db:Status-Status}\n' kmodd 2>/dev/null | grep -q installed &&
    fail "dpkg still has kmodd installed"
ok "dpkg knows kmodd no more"
[ -s "$MODDIR/modules.dep.bin" ] || fail "the purge took the index"
ok "the index stays: it belongs to the module tree, not to the package"
snapshot >/root/after.list
left=$(LC_ALL=C comm -3 /root/before.list /root/after.list)
[ -z "$left" ] || fail "install and purge changed the file system: $left"
ok "install, remove and purge left $(wc -l </root/after.list) paths as they were: no file added or lost"
exit 0
