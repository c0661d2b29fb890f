#!/bin/sh
# tests/fuzz/run.sh BUILD SECS [SEED]: run every fuzz target of BUILD for
# SECS seconds each (with libFuzzer's -seed=SEED when given: CI), from
# its committed seeds (tests/fuzz/corpus/TARGET) and
# what earlier runs kept (BUILD/corpus/TARGET, where new inputs go).
# Prints each target's executions; a crash leaves its input in
# BUILD/artifacts/ and fails the run.
set -e
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$1
SECS=${2:-600}
SEED=${3:+-seed=$3}
rc=0
mkdir -p "$BUILD/artifacts"
for bin in "$BUILD"/tests/fuzz/fuzz-*; do
    case $bin in *.o|*.d) continue ;; esac
    name=${bin##*/fuzz-}
    seeds=$ROOT/tests/fuzz/corpus/$name
    work=$BUILD/corpus/$name
    mkdir -p "$work"
    log=$BUILD/fuzz-$name.log
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$SECS" -timeout=10 -print_final_stats=1 $SEED \
         -artifact_prefix="$BUILD/artifacts/$name-" \
         "$work" "$seeds" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        rc=1
        tail -40 "$log" >&2
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $name: $status, ${execs:-?} executions in $SECS s (log: $log)"
done
exit $rc
