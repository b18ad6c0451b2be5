#!/usr/bin/env bash
# The relay transport between real hosts (`make test-relay-netns`, part of `make test`): three network
# namespaces, each with its own TCP/IP stack, joined by veth pairs to a bridge (in a fourth namespace,
# so the host's network is untouched); one C participant (tests/relay_proc/participant.c) per
# namespace, listening on its namespace's address.
#
# Faults, with nftables (this kernel has no netem):
#   - every namespace drops 10 % of its incoming packets (`numgen random mod 100 < 10 drop`): TCP
#     retransmits; the relay transport's own `loss` fault drops 10 % of the messages each publishes,
#     which only SDS repairs;
#   - once everyone has the first texts, host c is partitioned for PARTITION_S seconds (drop all, in
#     and out) while everyone, c included, goes on sending.
# After the partition heals every message must reach every participant exactly once, in order, and
# every send must be DELIVERED.
#
# Needs root, `ip` (iproute2) and `nft` (nftables); without them it prints SKIPPED and why, and passes
# (CI runs as root with both installed by .ci/run, so it runs there). Output ends with
# "N passed, N failed". Environment: CC, LIBDIR, PARTITION_S (default 20).
set -u
. "$(dirname "$0")/../lib.sh"
out_dir tests-netns
PARTITION_S="${PARTITION_S:-20}"
DIR="$OUT/run"
BIN="$OUT/participant"

skip() {
    echo "SKIPPED: relay across network namespaces: $1"
    finish
}
# broken WHY: one failure, and stop.
broken() {
    fail "netns: $1"
    finish
}
[ "$(id -u)" = 0 ] || skip "not root (network namespaces and nftables need CAP_NET_ADMIN)"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
command -v nft >/dev/null 2>&1 || skip "nft (nftables) is not installed"

# Names unique to this run (interface names have at most 15 characters).
T="rc$$"
NS_BR="$T-br"
HOSTS=(a b c)
declare -A IP=([a]=10.231.0.1 [b]=10.231.0.2 [c]=10.231.0.3)

cleanup() {
    for h in "${HOSTS[@]}"; do ip netns del "$T-$h" 2>/dev/null; done
    ip netns del "$NS_BR" 2>/dev/null
    return 0
}
on_exit cleanup

ip netns add "$NS_BR" 2>/dev/null || skip "cannot create a network namespace (no netns support here)"
ip -n "$NS_BR" link add br0 type bridge && ip -n "$NS_BR" link set br0 up && ip -n "$NS_BR" link set lo up || broken "cannot create the bridge"
for h in "${HOSTS[@]}"; do
    ns="$T-$h"
    ip netns add "$ns"
    ip link add "$T$h" type veth peer name "${T}b$h"
    ip link set "$T$h" netns "$ns"
    ip link set "${T}b$h" netns "$NS_BR"
    ip -n "$NS_BR" link set "${T}b$h" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "${IP[$h]}/24" dev "$T$h"
    ip -n "$ns" link set "$T$h" up
    # 10 % of incoming packets dropped, at random.
    ip netns exec "$ns" nft -f - <<NFT || broken "nft rules refused"
table inet rcfault {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "lo" accept
        numgen random mod 100 < 10 drop
    }
}
NFT
done
if ! ip netns exec "$T-a" ping -c 1 -W 5 "${IP[b]}" >/dev/null 2>&1 && ! ip netns exec "$T-a" ping -c 1 -W 5 "${IP[b]}" >/dev/null 2>&1; then
    echo "# note: ping a -> b failed (maybe no ping binary); carrying on"
fi

rm -rf "$DIR"
mkdir -p "$DIR"
require_lib
build_participant "$BIN"

PIDS=()
NAMES=()
run() { # run HOST ARGS...
    local h="$1"
    shift
    ip netns exec "$T-$h" "$BIN" --name "$h" --dir "$DIR" --listen "/ip4/${IP[$h]}/tcp/60000" \
        --texts 4 --big 1048576 --loss 0.1 --timeout-s 170 --hold-until "$DIR/partitioned" "$@" >"$DIR/$h.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$h")
}
run a --expect b,c --seed 11
run b --peer-of a --expect a,c --seed 12
run c --peer-of a --peer-of b --expect a,b --seed 13

# Once every participant has every first text (its log says so), partition c.
deadline=$(( $(date +%s) + 90 ))
firsts() { grep -c "received from .*:text:0" "$DIR/$1.log" 2>/dev/null || true; }
while [ "$(firsts a)" -lt 2 ] || [ "$(firsts b)" -lt 2 ] || [ "$(firsts c)" -lt 2 ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "# the first texts did not get through in 90 s"; break; fi
    sleep 0.2
done
echo "# partitioning c for ${PARTITION_S}s ($(( $(date +%s) - START ))s in)"
ip netns exec "$T-c" nft -f - <<NFT
table inet rcpartition {
    chain input { type filter hook input priority -10; policy accept; iifname "lo" accept; drop; }
    chain output { type filter hook output priority -10; policy accept; oifname "lo" accept; drop; }
}
NFT
touch "$DIR/partitioned"
sleep "$PARTITION_S"
ip netns exec "$T-c" nft delete table inet rcpartition
echo "# partition healed ($(( $(date +%s) - START ))s in)"

if wait_participants netns; then
    pass_participants "relay across 3 network namespaces: 10 % packet drop, 10 % message loss, ${PARTITION_S}s partition of c ($(( $(date +%s) - START ))s)" "$DIR"
else
    fail "relay across 3 network namespaces"
    for h in "${HOSTS[@]}"; do echo "---- $h"; grep -vE "received from|delivered:|^\[.*sent " "$DIR/$h.log" | tail -n 20; done
fi
finish
