#!/usr/bin/env bash
# Multi-process tests of the relay transport on loopback (`make test-relay-proc`, part of `make test`):
# one C program (tests/relay_proc/participant.c) per participant, each its own process with its own
# manager and relay node, talking over TCP on 127.0.0.1.
#
#   star    a hub and three leaves; every participant sends 2 texts and a 1 MiB message
#   line    four in a line (three hops end to end), 10 % of what each publishes lost (the relay
#           transport's test fault): SDS repairs it
#   rejoin  dave leaves (its process ends) after the first texts; the others go on sending; dave
#           comes back (a new process) and catches up on what it missed through SDS
#
# Each participant checks that every message of every other participant arrived exactly once, in
# order, byte-identical, and that every send of its own was DELIVERED. Output ends with
# "N passed, N failed"; the exit status is non-zero on any failure.
# Environment: CC (default cc), LIBDIR (default target/release), RELAY_PROC_ONLY="star line" (some).
set -u
. "$(dirname "$0")/../lib.sh"
out_dir tests-relay-proc
BIN="$OUT/participant"
require_lib
build_participant "$BIN"

# scenario NAME: runs the participants started by the function scenario_NAME (which calls `p`),
# waits for all of them; passes when every one exits 0.
PIDS=()
NAMES=()
p() { # p NAME ARGS... : one participant in the background, its output in $DIR/NAME.log
    local n="$1"
    shift
    "$BIN" --name "$n" --dir "$DIR" "$@" >>"$DIR/$n.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$n")
}

scenario_star() {
    local all=(hub a b c)
    for n in "${all[@]}"; do
        local others
        others=$(printf '%s\n' "${all[@]}" | grep -vx "$n" | paste -sd,)
        if [ "$n" = hub ]; then p hub --expect "$others" --texts 2 --big 1048576
        else p "$n" --peer-of hub --expect "$others" --texts 2 --big 1048576; fi
    done
}

scenario_line() {
    p a --expect b,c,d --texts 2 --big 1048576 --loss 0.1 --seed 1
    p b --peer-of a --expect a,c,d --texts 2 --big 1048576 --loss 0.1 --seed 2
    p c --peer-of b --expect a,b,d --texts 2 --big 1048576 --loss 0.1 --seed 3
    p d --peer-of c --expect a,b,c --texts 2 --big 1048576 --loss 0.1 --seed 4
}

scenario_rejoin() {
    p alice --expect bob,dave --texts 3 --big 262144 --hold-until "$DIR/dave.left"
    p bob --peer-of alice --expect alice,dave --texts 3 --big 262144 --hold-until "$DIR/dave.left"
    # dave's first life: receives the others' first texts and leaves (it sends in its second life).
    "$BIN" --name dave --dir "$DIR" --peer-of alice --expect alice,bob --texts 3 --big 262144 \
        --leave-after-first >>"$DIR/dave.log" 2>&1
    local first=$?
    if [ $first -ne 0 ]; then echo "dave's first life failed ($first)" >>"$DIR/dave.log"; return 1; fi
    # While dave is away, alice and bob send the rest; dave comes back later and catches up.
    sleep 2
    rm -f "$DIR/dave.addr"
    p dave --peer-of alice --expect alice,bob --texts 3 --big 262144 --skip-first
}

for s in ${RELAY_PROC_ONLY:-star line rejoin}; do
    DIR="$OUT/$s"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    PIDS=()
    NAMES=()
    t=$(date +%s)
    ok=1
    "scenario_$s" || ok=0
    wait_participants "$s" || ok=0
    if [ $ok = 1 ]; then
        pass_participants "relay processes: $s ($(( $(date +%s) - t ))s)" "$DIR"
    else
        fail "relay processes: $s"
        for f in "$DIR"/*.log; do echo "---- $f"; grep -E "FAIL|PASS|done|leaving|listening|stats" "$f" | tail -n 15; done
    fi
done
finish
