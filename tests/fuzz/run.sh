#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]
# Builds every fuzz target of tests/fuzz/ with clang and libFuzzer (ASan+UBSan) in BUILD_DIR
# and runs each for SECONDS (default $FUZZ_SECONDS, else 60) on a copy of its corpus, then
# prints the executions and coverage of each. A crash fails the run; its input is left in
# BUILD_DIR/crashes/TARGET/: once fixed, copy it into tests/fuzz/corpus/TARGET/ as a
# regression (the unit test TARGET_replays_its_corpus replays it in every build).
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SECONDS] [TARGET...]" >&2; exit 2; }
build=$1
shift
seconds=${FUZZ_SECONDS:-60}
if [ $# -ge 1 ]; then
    seconds=$1
    shift
fi
targets=$*
[ -n "$targets" ] || targets=$(cd "$src/tests/fuzz/corpus" && ls)

"$src/packaging/install-deps.sh" --with-fuzz
CC=clang CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKMODD_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" --target $targets

status=0
report=""
for target in $targets; do
    work="$build/corpus/$target"
    crashes="$build/crashes/$target"
    mkdir -p "$work" "$crashes"
    log="$build/$target.log"
    echo "== $target for $seconds s"
    if ! "$build/bin/$target" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$work" "$src/tests/fuzz/corpus/$target" >"$log" 2>&1; then
        status=1
        tail -n 40 "$log"
        echo "$target: FAILED, the input is in $crashes/"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
    corpus=$(find "$work" -type f | wc -l)
    report="$report$(printf '%-22s %12s executions  %-20s corpus %s' "$target" "${runs:-?}" \
        "${cov:-?}" "$corpus")
"
done
echo "== fuzzing, $seconds s per target"
printf '%s' "$report"
exit "$status"
