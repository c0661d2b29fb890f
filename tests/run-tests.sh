#!/bin/sh
# Run test programs; sum Check's per-program results; print one closing
# line "tests: N passed, N failed, N skipped".  A test that cannot run
# prints "SKIP: <name>: <reason>" and is counted as skipped, not passed.
# Exit status is non-zero when anything failed.
#
# An argument VAR=VALUE@PROGRAM runs PROGRAM with VAR=VALUE in its
# environment (a variant: the same tests with devices on iothreads, say);
# it is reported as PROGRAM[VAR=VALUE].
passed=0
failed=0
skipped=0
failed_progs=""
log_dir=${TEST_LOG_DIR:-$(mktemp -d /tmp/iovd-tests-XXXXXX)}

for arg in "$@"; do
    var=
    t=$arg
    case "$arg" in
    *=*@*) var=${arg%%@*}; t=${arg#*@} ;;
    esac
    name=$(basename "$t")${var:+[$var]}
    log="$log_dir/$(echo "$name" | tr '[]=' '__-').log"
    start=$(date +%s)
    if [ -n "$var" ]; then
        env "$var" "$t" >"$log" 2>&1
    else
        "$t" >"$log" 2>&1
    fi
    rc=$?
    secs=$(( $(date +%s) - start ))
    # Check prints: "NN%: Checks: C, Failures: F, Errors: E"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -1)
    skips=$(grep -c '^SKIP: ' "$log")
    if [ -n "$line" ]; then
        c=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        bad=$((f + e))
        good=$((c - bad - skips))
        [ $good -lt 0 ] && good=0
    else
        c=0; bad=1; good=0
    fi
    if [ $rc -ne 0 ] && [ $bad -eq 0 ]; then
        bad=1      # crashed or exited non-zero without Check saying why
    fi
    passed=$((passed + good))
    failed=$((failed + bad))
    skipped=$((skipped + skips))
    if [ $bad -ne 0 ]; then
        echo "FAIL  $name ($good passed, $bad failed, ${secs}s) — log: $log"
        grep -E ':[EF]:|^SKIP|ERROR|Assertion|runtime error|Sanitizer' "$log" | head -30
        failed_progs="$failed_progs $name"
    else
        echo "ok    $name ($good passed, $skips skipped, ${secs}s)"
    fi
    grep '^SKIP: ' "$log" | sed 's/^/      /'
done

echo "tests: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
