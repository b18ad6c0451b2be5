#!/usr/bin/env bash
# `make demo-relay`: alice, bob and carol, three processes on loopback, each its own Waku Relay node
# (bob and carol dial alice), hold a conversation: each sends three lines and a 1 MiB file. Prints
# the conversation as it happens and a summary; exits 0 only when every message reached everyone
# exactly once, in order, and every send was DELIVERED.
set -u
. "$(dirname "$0")/../lib.sh"
out_dir demo-relay
rm -rf "${OUT:?}"/*
build_participant "$OUT/participant"
start=$(date +%s)
"$OUT/participant" --name alice --dir "$OUT" --expect bob,carol --texts 3 --big 1048576 --timeout-s 120 &
A=$!
"$OUT/participant" --name bob --dir "$OUT" --peer-of alice --expect alice,carol --texts 3 --big 1048576 --timeout-s 120 &
B=$!
"$OUT/participant" --name carol --dir "$OUT" --peer-of alice --expect alice,bob --texts 3 --big 1048576 --timeout-s 120 &
C=$!
status=0
for pid in $A $B $C; do wait $pid || status=1; done
echo
echo "=== summary ($(( $(date +%s) - start )) s) ==="
echo "3 processes, 3 relay nodes on 127.0.0.1 (bob and carol dialled alice); each sent 3 lines + 1 MiB"
if [ $status = 0 ]; then
    echo "every message reached both other participants exactly once, in order; every send DELIVERED"
else
    echo "FAILED: see the lines marked FAIL above"
fi
exit $status
