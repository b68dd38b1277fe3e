#!/usr/bin/env bash
# bench/brisk_cli.sh N STATE_DIR: the workload through brisk's CLI, one
# process per endpoint, as a container runtime would call it:
#
#     brisk --state-dir DIR network create --subnet 10.88.0.0/16 bench
#     brisk --state-dir DIR endpoint create --name epI --netns epI bench   (N times)
#
# Each endpoint create makes the namespace epI (it does not exist yet), the
# veth pair with eth0 created in place, the address, the links up and the
# default route. Run it through scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1 state=$2
"$BRISK" --state-dir "$state" network create --subnet "$SUBNET" bench >/dev/null
for ((i = 1; i <= n; i++)); do
	"$BRISK" --state-dir "$state" endpoint create --name "ep$i" --netns "ep$i" bench >/dev/null
done
