#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs cockpit_page_test.py with Debian's python3 (not one a user put first on PATH), or skips
# (exit 77) when the browser or Cockpit is not installed.
#
# Usage: tests/browser/run.sh BUILD_DIR SOURCE_DIR OUTPUT_DIR
set -eu
[ $# -eq 3 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR OUTPUT_DIR" >&2; exit 2; }
for needed in /usr/lib/cockpit/cockpit-ws /usr/bin/cockpit-bridge /usr/bin/chromium \
    /usr/bin/chromedriver; do
    if [ ! -x "$needed" ]; then
        echo "skipped: $needed is not installed (packaging/install-deps.sh --with-browser)"
        exit 77
    fi
done
if ! /usr/bin/python3 -c 'import selenium' 2>/dev/null; then
    echo "skipped: python3-selenium is not installed"
    exit 77
fi
exec /usr/bin/python3 "$(dirname "$0")/cockpit_page_test.py" "$@"
