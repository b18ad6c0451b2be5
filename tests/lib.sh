# The preamble shared by the shell test scripts (tests/c/run.sh, tests/relay_proc/run.sh,
# tests/relay_proc/demo.sh, tests/netns/run.sh); they source it first:
#
#   . "$(dirname "$0")/../lib.sh"
#
# It sets
#   ROOT            the repository root, also the working directory from here on;
#   CC, LIBDIR      the C compiler (default cc) and the directory of libreliable_channel.so
#                   (default target/release; made absolute);
#   STRICT, LINK    the flags every C program of the tests builds with, and links the library with;
#   START           when the script started (for its closing line);
#   PASSED, FAILED  the counts that `pass`, `fail` and `finish` keep and print;
# and offers
#   out_dir NAME        build/NAME, created; its path in OUT;
#   require_lib         stops the script (one failure) when the library is not built;
#   build_participant BIN
#                       builds tests/relay_proc/participant.c into BIN (one failure and stop on error);
#   pass NAME, fail NAME [LOG]
#                       one test passed / failed (a failure shows the last lines of LOG);
#   wait_participants LABEL
#                       waits for every process in PIDS (NAMES names them, in the same order);
#                       returns non-zero when one failed, each failure named after LABEL;
#   pass_participants NAME DIR
#                       one test passed, with the "PASS:" line of every participant's DIR/*.log;
#   finish              prints the time taken and "N passed, N failed", exits non-zero on failure;
#   on_exit CMD         runs CMD when the script exits (the cleanup of namespaces, temp files...);
#                       background jobs the script started are killed at exit in any case.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
CC="${CC:-cc}"
LIBDIR="${LIBDIR:-$ROOT/target/release}"
case "$LIBDIR" in /*) ;; *) LIBDIR="$ROOT/$LIBDIR" ;; esac
STRICT=(-std=c11 -Wall -Wextra -Werror -I"$ROOT/include")
LINK=(-L"$LIBDIR" -lreliable_channel -Wl,-rpath,"$LIBDIR" -lpthread -ldl -lm)
START=$(date +%s)
PASSED=0
FAILED=0
OUT="$ROOT/build"

_RC_ON_EXIT=()
on_exit() { _RC_ON_EXIT+=("$*"); }
_rc_exit() {
    local cmd
    for cmd in "${_RC_ON_EXIT[@]}"; do eval "$cmd"; done
    local pids
    pids=$(jobs -p)
    [ -z "$pids" ] || kill $pids 2>/dev/null
    return 0
}
trap _rc_exit EXIT

out_dir() {
    OUT="$ROOT/build/$1"
    mkdir -p "$OUT"
}

pass() {
    PASSED=$((PASSED + 1))
    echo "ok - $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "not ok - $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        echo "---- last lines of $2 ----"
        tail -n 40 "$2"
        echo "----"
    fi
}

wait_participants() {
    local i status=0
    for i in "${!PIDS[@]}"; do
        wait "${PIDS[$i]}" || { status=1; echo "  $1: ${NAMES[$i]} failed"; }
    done
    return $status
}

pass_participants() {
    pass "$1"
    grep -h "PASS:" "$2"/*.log | sed 's/^/    /'
}

finish() {
    echo "# $(($(date +%s) - START))s; logs in $OUT"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit
}

require_lib() {
    if [ ! -f "$LIBDIR/libreliable_channel.so" ]; then
        echo "$(basename "$0"): $LIBDIR/libreliable_channel.so not found (run \`make lib\` first)" >&2
        fail "the library is built"
        finish
    fi
}

build_participant() {
    "$CC" "${STRICT[@]}" -O2 -o "$1" tests/relay_proc/participant.c "${LINK[@]}" || {
        fail "build tests/relay_proc/participant.c"
        finish
    }
}
