# shellcheck shell=bash disable=SC2034
# bench/lib.sh: shared by the shell drivers (sourced, not run).
#
# The workload every tool builds: one bridge network 10.88.0.0/16 with the
# gateway 10.88.0.1 on the bridge; endpoint i (1..N) is a veth pair with one
# end on the bridge (up) and the other end named eth0 inside the namespace
# ep<i>, with an address of the subnet (10.88.0.2 onwards), up, lo up, and a
# default route via the gateway. Every driver refuses to run outside a
# private namespace.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BRISK="$ROOT/build/bin/brisk"
SUBNET=10.88.0.0/16
GATEWAY=10.88.0.1
PLEN=16

require_isolated() {
	if [ "${BRISK_ISOLATED:-}" != 1 ]; then
		echo "$(basename "$0"): run me through scripts/isolate.sh (a private network namespace)" >&2
		exit 2
	fi
}

