#!/usr/bin/env bash
# The C API tests: run by `make test-c` (env CC and LIBDIR), or directly from the repository root.
#
#   1. the harness programs (tests/c/test_capi.c, test_host.c, test_concurrency.c, test_log.c,
#      test_storage.c) built with ASan + UBSan
#      (LeakSanitizer on) and run; test_log once more with RC_LOG=warn (the stderr logger);
#   2. the same built without sanitizers and run under valgrind (definite leaks and invalid
#      accesses fail the run);
#   3. examples-c/*.c built with the Makefile's flags (-std=c11 -Wall -Wextra -Werror), run, run
#      again under ASan + UBSan, and host_bridge under valgrind.
#
# Every step counts as one test, and every harness test case counts as one test. The output ends
# with "N passed, N failed"; the exit status is non-zero on any failure.
#
# Environment: CC (default cc), LIBDIR (default target/release), RC_TEST_KNOWN_BUGS=1 (also run
# the tests of known, not yet fixed library bugs), RC_C_SKIP_VALGRIND=1 (skip the valgrind steps).
# No sanitizer or valgrind suppressions are used.
set -u
. "$(dirname "$0")/../lib.sh"
out_dir tests-c
require_lib

SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
VALGRIND=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
          --show-leak-kinds=definite)

# step NAME LOG CMD... : runs CMD with its output in LOG; one test.
step() {
    local name="$1" log="$2"
    shift 2
    if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name (exit $?)" "$log"; fi
}

# harness NAME LOG CMD... : runs the harness; adds its own counts, plus one failure when the
# process fails although every case passed (a sanitizer or valgrind report, a crash at exit).
harness() {
    local name="$1" log="$2" status p f
    shift 2
    "$@" >"$log" 2>&1
    status=$?
    grep -E '^(ok|not ok|skip) - ' "$log" | sed "s/^/  [$name] /"
    local last
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$last" ]; then
        fail "$name: no summary line (crash or timeout, exit $status)" "$log"
        return
    fi
    p=${last%% passed*}
    f=${last#*, }
    f=${f%% failed}
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if [ "$f" -gt 0 ]; then
        echo "---- failures in $log ----"
        grep -E 'FAIL|TIMEOUT' "$log" | head -n 40
        echo "----"
    elif [ "$status" -ne 0 ]; then
        fail "$name: exit $status although every case passed (sanitizer/valgrind report?)" "$log"
    fi
}

echo "# C API tests (CC=$CC, LIBDIR=$LIBDIR)"

HARNESSES=(test_capi test_host test_concurrency test_log test_storage)

# 1. Harnesses under ASan + UBSan.
for prog in "${HARNESSES[@]}"; do
    step "build $prog (ASan+UBSan)" "$OUT/build-$prog-asan.log" \
        "$CC" "${STRICT[@]}" -g -O1 "${SAN[@]}" -o "$OUT/${prog}_asan" "tests/c/$prog.c" "${LINK[@]}"
    if [ -x "$OUT/${prog}_asan" ]; then
        harness "$prog asan" "$OUT/${prog}_asan.log" timeout 600 "$OUT/${prog}_asan"
    fi
done
# RC_LOG is read once per process: test_log's RC_LOG case runs in a process of its own.
if [ -x "$OUT/test_log_asan" ]; then
    harness "test_log asan RC_LOG=warn" "$OUT/test_log_asan_rc_log.log" env RC_LOG=warn timeout 600 "$OUT/test_log_asan"
fi

# 2. Harness under valgrind.
HAVE_VALGRIND=0
if [ "${RC_C_SKIP_VALGRIND:-0}" != 1 ]; then
    if command -v valgrind >/dev/null 2>&1; then
        HAVE_VALGRIND=1
    else
        fail "valgrind is not installed (apt-get install -y valgrind)"
    fi
fi
for prog in "${HARNESSES[@]}"; do
    step "build $prog (plain)" "$OUT/build-$prog-plain.log" \
        "$CC" "${STRICT[@]}" -g -O1 -o "$OUT/$prog" "tests/c/$prog.c" "${LINK[@]}"
    if [ "$HAVE_VALGRIND" = 1 ] && [ -x "$OUT/$prog" ]; then
        harness "$prog valgrind" "$OUT/${prog}_valgrind.log" \
            env RC_TEST_TIMEOUT_SCALE=10 timeout 1200 "${VALGRIND[@]}" "$OUT/$prog"
    fi
done

# 3. The examples.
for src in examples-c/*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    step "example $name: build (-std=c11 -Wall -Wextra -Werror)" "$OUT/build-$name.log" \
        "$CC" "${STRICT[@]}" -O2 -o "$OUT/$name" "$src" "${LINK[@]}"
    [ -x "$OUT/$name" ] || continue
    step "example $name: run" "$OUT/$name.log" timeout 120 "$OUT/$name"
    step "example $name: build (ASan+UBSan)" "$OUT/build-$name-asan.log" \
        "$CC" "${STRICT[@]}" -g -O1 "${SAN[@]}" -o "$OUT/${name}_asan" "$src" "${LINK[@]}"
    [ -x "$OUT/${name}_asan" ] && step "example $name: run under ASan+UBSan" "$OUT/${name}_asan.log" \
        timeout 120 "$OUT/${name}_asan"
done
if [ "$HAVE_VALGRIND" = 1 ] && [ -x "$OUT/host_bridge" ]; then
    step "example host_bridge: run under valgrind" "$OUT/host_bridge_valgrind.log" \
        timeout 600 "${VALGRIND[@]}" "$OUT/host_bridge"
fi

# 4. The example of docs/c-api.md (the first C block after the marker comment) compiles and runs.
if [ -f docs/c-api.md ]; then
    awk '/tests\/c\/run.sh compiles/ {armed = 1; next}
         armed && /^```c$/ {inside = 1; next}
         inside && /^```$/ {exit}
         inside {print}' docs/c-api.md > "$OUT/docs_example.c"
    if [ -s "$OUT/docs_example.c" ]; then
        step "docs/c-api.md example: build" "$OUT/build-docs_example.log" \
            "$CC" "${STRICT[@]}" -O2 -o "$OUT/docs_example" "$OUT/docs_example.c" "${LINK[@]}"
        [ -x "$OUT/docs_example" ] && step "docs/c-api.md example: run" "$OUT/docs_example.log" \
            timeout 60 "$OUT/docs_example"
    else
        fail "docs/c-api.md: example block not found"
    fi
fi

finish
