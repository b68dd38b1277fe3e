#!/usr/bin/env bash
# bench/ip_batch.sh N: the workload with `ip -batch`, as a shell script
# author would drive iproute2 for speed. One batch in the host namespace
# makes the bridge, every namespace (`netns add` in the batch) and every
# veth pair with its peer created in place (`peer name eth0 netns epI`),
# on the bridge and up. iproute2 has no per-line `-n` in a batch, so each
# namespace gets one `ip -n epI -batch -` for its address, links up and
# default route: N + 1 processes in all.
#
# Like brisk, neither side gets an IPv6 link-local address (addrgenmode
# none before up; the kernel refuses it in the create request itself):
# without that, IPv6 DAD and MLD on every new port flood the bridge and the
# kernel's work, not the tool's, dominates.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1
{
	echo "link add br0 type bridge"
	echo "addr add $GATEWAY/$PLEN dev br0"
	echo "link set br0 up"
	for ((i = 1; i <= n; i++)); do
		echo "netns add ep$i"
		echo "link add v$i master br0 type veth peer name eth0 netns ep$i"
		echo "link set v$i addrgenmode none"
		echo "link set v$i up"
	done
} | ip -batch -
for ((i = 1; i <= n; i++)); do
	h=$((i + 1))
	printf 'link set eth0 addrgenmode none\naddr add 10.88.%d.%d/%s dev eth0\nlink set lo up\nlink set eth0 up\nroute add default via %s dev eth0\n' \
		$((h >> 8)) $((h & 255)) "$PLEN" "$GATEWAY" | ip -n "ep$i" -batch -
done
