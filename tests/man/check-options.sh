#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages must not drift from --help: every long option that `kmodd --help` and
# `kmodctl --help` print must be documented in kmodd.8 / kmodctl.8, and each page must format
# without warnings (groff -man -ww -z).
#
# Usage: check-options.sh KMODD KMODCTL MAN_DIR
set -eu
[ $# -eq 3 ] || { echo "usage: $0 KMODD KMODCTL MAN_DIR" >&2; exit 2; }
kmodd=$1 kmodctl=$2 man=$3
status=0

# check PAGE HELP_TEXT: every --option of HELP_TEXT appears in PAGE (roff writes '-' as '\-').
check() {
    page=$1
    options=$(printf '%s\n' "$2" | grep -o -- '--[a-z][a-z-]*' | sort -u)
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
    echo "$page: $(printf '%s\n' "$options" | wc -l) options of --help checked"
}

check kmodd.8 "$("$kmodd" --help)"
check kmodctl.8 "$("$kmodctl" --help)"
exit "$status"
