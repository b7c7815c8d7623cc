#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The style checked by a machine: clang-format on every C++ file (the test fixtures' C keeps
# the kernel's style), shellcheck on every shell script (the VM's busybox scripts included),
# clang-tidy on src/ with the build's compile commands.
# Usage: tests/lint.sh [BUILD_DIR] (default build/; without its compile_commands.json,
# clang-tidy is skipped).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
status=0

echo "== clang-format"
git ls-files -z '*.cpp' '*.hpp' |
    xargs -0 clang-format --dry-run -Werror || status=1

echo "== shellcheck"
{
    git ls-files tests/vm/scenarios tests/vm/lib.sh packaging/completion packaging/debian/kmodd.postrm
    git ls-files | while read -r file; do
        case $file in *.sh | tests/vm/init | .ci/run) echo "$file" ;; esac
    done
} | sort -u | xargs shellcheck -x || status=1

if [ -f "$build/compile_commands.json" ]; then
    echo "== clang-tidy (src/)"
    out=$(mktemp)
    git ls-files 'src/*.cpp' |
        xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet >"$out" 2>&1 || status=1
    if grep -E '(warning|error):' "$out"; then
        status=1
    fi
    rm -f "$out"
else
    echo "== clang-tidy skipped: no $build/compile_commands.json"
fi

[ "$status" -eq 0 ] && echo "lint: clean"
exit "$status"
