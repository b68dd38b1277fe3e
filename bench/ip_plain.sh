#!/usr/bin/env bash
# bench/ip_plain.sh N: the workload with plain `ip` commands, one process
# per command, as a hand-written shell script does it. Per endpoint:
#
#     ip netns add epI
#     ip link add vI master br0 type veth peer name eth0 netns epI
#     ip link set vI addrgenmode none
#     ip link set vI up
#     ip -n epI link set eth0 addrgenmode none
#     ip -n epI addr add ADDR/16 dev eth0
#     ip -n epI link set lo up
#     ip -n epI link set eth0 up
#     ip -n epI route add default via 10.88.0.1
#
# The addrgenmode lines keep IPv6 link-local addresses off both sides, as
# brisk does (bench/ip_batch.sh says why). Run it through scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1
ip link add br0 type bridge
ip addr add "$GATEWAY/$PLEN" dev br0
ip link set br0 up
for ((i = 1; i <= n; i++)); do
	h=$((i + 1))
	ip netns add "ep$i"
	ip link add "v$i" master br0 type veth peer name eth0 netns "ep$i"
	ip link set "v$i" addrgenmode none
	ip link set "v$i" up
	ip -n "ep$i" link set eth0 addrgenmode none
	ip -n "ep$i" addr add "10.88.$((h >> 8)).$((h & 255))/$PLEN" dev eth0
	ip -n "ep$i" link set lo up
	ip -n "ep$i" link set eth0 up
	ip -n "ep$i" route add default via "$GATEWAY"
done
