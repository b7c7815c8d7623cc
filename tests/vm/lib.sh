# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Helpers for the scenarios of tests/vm/scenarios/, sourced inside the VM (busybox sh) as
# `. /vm/lib.sh`. kmod's tools are called by full path (/sbin/modprobe, ...), never by a bare
# name that one of busybox's applets of the same names could answer.

KVER=$(uname -r)
MODDIR=/lib/modules/$KVER
# The suffix of the tree's module files: .ko on Debian 12's kernel, .ko.xz on Debian 13's.
KO=$(find "$MODDIR/kernel/drivers/net" -maxdepth 1 -name 'dummy.ko*' 2>/dev/null | head -n 1)
KO=${KO#"$MODDIR/kernel/drivers/net/dummy"}
: "${KO:=.ko}"
MODPROBE=/sbin/modprobe
KMODCTL=kmodctl
# Set by /init: the running kmodd's pid.
: "${KMODD_PID:=}"

# What the last `run` saw.
OUT=
ERR=
RC=0

say() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
# fail MESSAGE: ends the scenario; the harness then prints kmodd's log and the kernel's messages.
fail() {
    printf 'FAIL: %s\n' "$*"
    exit 1
}

# run COMMAND...: runs it, keeps its stdout in OUT, stderr in ERR and status in RC, and shows
# all three.
run() {
    printf '$ %s\n' "$*"
    set +e
    "$@" >/tmp/run.out 2>/tmp/run.err
    RC=$?
    OUT=$(cat /tmp/run.out)
    ERR=$(cat /tmp/run.err)
    [ -n "$OUT" ] && printf '%s\n' "$OUT" | sed 's/^/  | /'
    [ -n "$ERR" ] && printf '%s\n' "$ERR" | sed 's/^/  ! /'
    [ "$RC" -eq 0 ] || printf '  (exit status %s)\n' "$RC"
    return 0
}

# must COMMAND...: run, and fail unless it succeeds.
must() {
    run "$@"
    [ "$RC" -eq 0 ] || fail "'$*' failed with status $RC"
}

# must_fail COMMAND...: run, and fail unless it fails with one line `kmodctl: ...` on stderr.
must_fail() {
    run "$@"
    [ "$RC" -ne 0 ] || fail "'$*' succeeded; it should have failed"
    [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] ||
        fail "'$*' should say why in one line on stderr, not $(printf '%s\n' "$ERR" | wc -l)"
    case $ERR in
    kmodctl:\ *) ;;
    *) fail "'$*': stderr should start with 'kmodctl: '" ;;
    esac
}

# expect_in TEXT WORD WHAT: fail unless TEXT contains WORD.
expect_in() {
    case $1 in
    *"$2"*) ok "$3" ;;
    *) fail "$3: '$2' not found in: $1" ;;
    esac
}

# The module name of a module file's path, as kmod derives it.
name_of_path() {
    basename "$1" | sed -e 's/\.ko\(\.xz\|\.zst\|\.gz\)\?$//' -e 's/-/_/g'
}

# words TEXT: the lines of TEXT as one line, separated by blanks.
words() { printf '%s\n' "$1" | tr '\n' ' ' | sed 's/ $//'; }

is_loaded() { grep -q "^$1 " /proc/modules; }

expect_loaded() {
    is_loaded "$1" || fail "'$1' should be in /proc/modules"
    ok "'$1' is in /proc/modules"
}

expect_not_loaded() {
    if is_loaded "$1"; then fail "'$1' should not be in /proc/modules"; fi
    ok "'$1' is not in /proc/modules"
}

# kmod_plan NAME [PARAM...]: the modules kmod's `modprobe -n -v` would insert, one per line.
kmod_plan() {
    "$MODPROBE" -n -v "$@" 2>/dev/null | awk '$1 == "insmod" { print $2 }' |
        while read -r path; do name_of_path "$path"; done
}

# modules_dep_line PATH_IN_TREE: the line of modules.dep for that module ('' when absent).
modules_dep_line() {
    grep "^$1:" "$MODDIR/modules.dep" 2>/dev/null || true
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds; fails after SECONDS.
wait_until() {
    limit=$1
    shift
    tries=0
    until "$@"; do
        tries=$((tries + 1))
        [ "$tries" -lt $((limit * 5)) ] || return 1
        sleep 0.2
    done
}

# load_error MODULE [PARAMS]: the D-Bus error of Load(MODULE, PARAMS) as dbus-send prints it
# ("Error org.kmodd1.Error.NAME: MESSAGE"; empty when the load succeeds).
load_error() {
    # shellcheck disable=SC2069 # the error is the answer: stderr kept, stdout dropped
    dbus-send --system --print-reply --dest=org.kmodd1 /org/kmodd1 org.kmodd1.Manager.Load \
        "string:$1" "string:${2:-}" 2>&1 >/dev/null
}

expect_kmodd_alive() {
    if [ -n "$KMODD_PID" ] && ! kill -0 "$KMODD_PID" 2>/dev/null; then
        fail "kmodd is no longer running"
    fi
    "$KMODCTL" status >/tmp/status.out 2>&1 ||
        fail "kmodd does not answer 'kmodctl status' any more: $(cat /tmp/status.out)"
    ok "kmodd is alive and answers 'kmodctl status' ($(grep '^Index generation' /tmp/status.out))"
}
