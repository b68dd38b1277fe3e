#!/usr/bin/env bash
# scripts/isolate.sh CMD [ARGS]: run CMD in a private network namespace (and
# a private mount namespace with its own /run/netns and /sys), so nothing it
# creates can reach the host's namespace. Everything vanishes when CMD exits.
set -euo pipefail
if [ "${BRISK_ISOLATED:-}" = 1 ]; then exec "$@"; fi
exec unshare -n -m --propagation private -- sh -c '
	set -e
	mkdir -p /run/netns
	mount -t tmpfs -o mode=0755 brisk-netns /run/netns
	mount -t sysfs sysfs /sys
	ip link set lo up
	export BRISK_ISOLATED=1
	exec "$@"' isolate "$@"
