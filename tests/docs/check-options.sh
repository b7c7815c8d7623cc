#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages must not drift from what they describe: every long option that `kmodd --help`,
# `kmodctl --help`, and the --help of its depmod, modprobe, rmmod, modinfo and kmod
# static-nodes print is in kmodd.8 / kmodctl.8, every option of kmodd's (but --config, --help,
# --version) is a key in kmodd.conf.5, every method, signal and property of the D-Bus interface
# is in org.kmodd1.5; and each page formats without warnings (groff -man -ww -z).
#
# Usage: check-options.sh KMODD KMODCTL MAN_DIR INTERFACE_XML
set -eu
[ $# -eq 4 ] || { echo "usage: $0 KMODD KMODCTL MAN_DIR INTERFACE_XML" >&2; exit 2; }
kmodd=$1 kmodctl=$2 man=$3 xml=$4
status=0

# check PAGE WORDS: every word of WORDS (one per line) appears in PAGE (roff writes '-' as
# '\-').
check() {
    page=$1
    options=$2
    [ -n "$options" ] || { echo "FAIL: no options found in the help for $page"; status=1; }
    text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$man/$page")
    for option in $options; do
        case $text in
        *"$option"*) ;;
        *) echo "FAIL: $page does not document $option"; status=1 ;;
        esac
    done
    if command -v groff >/dev/null; then
        warnings=$(groff -man -ww -z "$man/$page" 2>&1)
        [ -z "$warnings" ] || { echo "FAIL: groff warns about $page: $warnings"; status=1; }
    fi
    echo "$page: $(printf '%s\n' "$options" | wc -l) names checked"
}

long_options() { printf '%s\n' "$1" | grep -o -- '--[a-z][a-z-]*' | sort -u; }

kmodd_help=$("$kmodd" --help)
check kmodd.8 "$(long_options "$kmodd_help")"
check kmodctl.8 "$(long_options "$("$kmodctl" --help; "$kmodctl" depmod --help;
    "$kmodctl" modprobe --help; "$kmodctl" rmmod --help; "$kmodctl" modinfo --help;
    "$kmodctl" kmod static-nodes --help)")"
check kmodd.conf.5 "$(long_options "$kmodd_help" | grep -v -x -e --config -e --help -e --version |
    sed -e 's/^--no-/--/' -e 's/^--//')"
check org.kmodd1.5 "$(sed -n 's/.*<\(method\|signal\|property\) name="\([A-Za-z]*\)".*/\2/p' "$xml")"
exit "$status"
