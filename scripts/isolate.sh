#!/usr/bin/env bash
# scripts/isolate.sh CMD [ARGS]: run CMD in a private network namespace (and
# a private mount namespace with its own /run/netns and /sys), so nothing it
# creates can reach the host's namespace. Unless BRISK_STATE_DIR is set,
# brisk's state directory is a private tmpfs too (BRISK_STATE_DIR points at
# it), not the host's /var/lib/brisk. Everything vanishes when CMD exits.
set -euo pipefail
if [ "${BRISK_ISOLATED:-}" = 1 ]; then exec "$@"; fi
state=
if [ -z "${BRISK_STATE_DIR:-}" ]; then
	state=$(mktemp -d /tmp/brisk-isolate.XXXXXX)
	# the mount point is the host's; what is mounted on it is not
	trap 'rmdir "$state" 2>/dev/null || true' EXIT
fi
rc=0
BRISK_ISOLATE_STATE=$state unshare -n -m --propagation private -- sh -c '
	set -e
	mkdir -p /run/netns
	mount -t tmpfs -o mode=0755 brisk-netns /run/netns
	mount -t sysfs sysfs /sys
	if [ -n "$BRISK_ISOLATE_STATE" ]; then
		mount -t tmpfs -o mode=0700 brisk-state "$BRISK_ISOLATE_STATE"
		export BRISK_STATE_DIR="$BRISK_ISOLATE_STATE"
	fi
	unset BRISK_ISOLATE_STATE
	ip link set lo up
	export BRISK_ISOLATED=1
	exec "$@"' isolate "$@" || rc=$?
exit "$rc"
