# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# modprobe.d reaches the kernel through kmodd: `options` and command-line parameters end up in
# /sys/module/<m>/parameters (and in what the module does with them), `blacklist` stops loads by
# alias but not by name (as kmod does), `install` commands run with $CMDLINE_OPTS instead of the
# insertion, `alias` lines resolve.
#
# kmodd reads modprobe.d with each index it opens, not on every request: after changing the
# configuration the scenario asks for a rebuild (see modprobe_config_live.sh for the change
# seen without one).
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

say "modinfo: the parameters used here exist and are readable in sysfs"
for param in brd:rd_nr brd:rd_size brd:max_part dummy:numdummies ifb:numifbs; do
    "$MODPROBE" --show-depends "${param%%:*}" >/dev/null || fail "no module '${param%%:*}'"
    /sbin/modinfo -F parm "${param%%:*}" | grep -q "^${param#*:}:" ||
        fail "'${param%%:*}' has no parameter '${param#*:}'"
done
ok "brd, dummy and ifb are modules with those parameters"

mkdir -p /etc/modprobe.d
cat >/etc/modprobe.d/kmodd-vm.conf <<'EOF'
options brd rd_nr=3 rd_size=4096
blacklist veth
install ifb /bin/echo "install ran: $CMDLINE_OPTS" > /tmp/install-ifb
alias kmodd-vm-netmon nlmon
EOF
sed 's/^/  /' /etc/modprobe.d/kmodd-vm.conf
must "$KMODCTL" rebuild

say "options from modprobe.d and from the command line reach the kernel"
must "$KMODCTL" load brd max_part=2
[ "$OUT" = brd ] || fail "kmodctl load brd should have inserted brd alone"
for expect in rd_nr=3 rd_size=4096 max_part=2; do
    value=$(cat "/sys/module/brd/parameters/${expect%%=*}")
    [ "$value" = "${expect#*=}" ] ||
        fail "/sys/module/brd/parameters/${expect%%=*} is '$value', expected '${expect#*=}'"
    ok "/sys/module/brd/parameters/${expect%%=*} = $value"
done
if [ ! -e /sys/block/ram2 ] || [ -e /sys/block/ram3 ]; then
    fail "rd_nr=3 should give ram0..ram2: $(words "$(ls /sys/block)")"
fi
ok "brd made exactly ram0..ram2"

say "a parameter sysfs does not show still reaches the module (dummy numdummies=2)"
must "$KMODCTL" load dummy numdummies=2
if [ ! -e /sys/class/net/dummy1 ] || [ -e /sys/class/net/dummy2 ]; then
    fail "numdummies=2 should give dummy0 and dummy1: $(words "$(ls /sys/class/net)")"
fi
ok "dummy0 and dummy1, no dummy2"

say "a blacklisted module is not loaded through an alias"
/sbin/modinfo -F alias veth | grep -qx rtnl-link-veth || fail "veth has no alias rtnl-link-veth"
must_fail "$KMODCTL" load rtnl-link-veth
expect_in "$ERR" blacklisted "the error says the module is blacklisted"
expect_in "$ERR" veth "the error names the module"
expect_not_loaded veth
run dbus-send --system --print-reply --dest=org.kmodd1 /org/kmodd1 org.kmodd1.Manager.Load \
    string:rtnl-link-veth string:
expect_in "$ERR" org.kmodd1.Error.Blacklisted "the D-Bus error is org.kmodd1.Error.Blacklisted"
run "$MODPROBE" -n -v rtnl-link-veth
[ -z "$OUT" ] || fail "kmod would insert something for the blacklisted alias: $OUT"
ok "kmod inserts nothing for it either"

say "a blacklisted module still loads by its name, as with modprobe"
must "$KMODCTL" load veth
[ "$OUT" = veth ] || fail "kmodctl load veth should have inserted veth"
expect_loaded veth

say "an install command runs instead of the insertion, with the parameters as \$CMDLINE_OPTS"
rm -f /tmp/install-ifb
must "$KMODCTL" load ifb numifbs=3
[ "$(cat /tmp/install-ifb 2>/dev/null)" = "install ran: numifbs=3" ] ||
    fail "the install command did not run as configured: '$(cat /tmp/install-ifb 2>/dev/null)'"
ok "the install command ran: $(cat /tmp/install-ifb)"
expect_not_loaded ifb

say "an alias from modprobe.d resolves"
must "$KMODCTL" load kmodd-vm-netmon
[ "$OUT" = nlmon ] || fail "kmodctl load kmodd-vm-netmon should have inserted nlmon"
expect_loaded nlmon
exit 0
