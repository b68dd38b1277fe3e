#!/usr/bin/env bash
# bench/rss.sh: peak resident set size (VmHWM, as /usr/bin/time reports it
# in "Maximum resident set size") of brisk processes, with the tools the
# other rows use for reference. Prints lines `RSS what=<label> kb=<KB>`.
#
#   brisk network ls         on the state bench/topology.lua leaves
#   brisk endpoint create    one more endpoint on that state
#   brisk run topology.lua   the whole small topology, in one process
#   ip link show, python3 + pyroute2 (import and one IPRoute socket),
#   the CNI bridge plugin (one ADD)
#
# Falls back to polling VmHWM in /proc/PID/status when /usr/bin/time is
# missing. Run it through scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

peak_kb() {   # CMD...: run it, print its peak RSS in KB (stdout of CMD dropped)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f "%M" -o "$work/rss" "$@" >/dev/null
		tail -n 1 "$work/rss"
	else
		"$@" >/dev/null &
		local pid=$! hwm=0 v
		while v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
			hwm=$v
			sleep 0.001
		done
		wait "$pid"
		echo "$hwm"
	fi
}
report() { echo "RSS what=$1 kb=$2"; }

state="$work/state"
report "brisk_run_topology" "$(peak_kb "$BRISK" run "$BENCH_DIR/topology.lua" "$state")"
report "brisk_network_ls" "$(peak_kb "$BRISK" --state-dir "$state" network ls)"
report "brisk_endpoint_create" "$(peak_kb "$BRISK" --state-dir "$state" endpoint create --netns extra front)"
report "brisk_version" "$(peak_kb "$BRISK" version)"
report "ip_link_show" "$(peak_kb ip link show)"
if /usr/bin/python3 -c 'import pyroute2' 2>/dev/null; then
	report "python3_pyroute2" "$(peak_kb /usr/bin/python3 -c 'from pyroute2 import IPRoute; IPRoute().close()')"
fi
if [ -x /usr/lib/cni/bridge ]; then
	ip netns add cni1
	cat >"$work/cni.conf" <<JSON
{ "cniVersion": "1.0.0", "name": "rss", "type": "bridge", "bridge": "cni0",
  "isGateway": true, "ipMasq": false,
  "ipam": { "type": "host-local", "subnet": "10.91.0.0/24", "dataDir": "$work/ipam" } }
JSON
	report "cni_bridge_add" "$(CNI_COMMAND=ADD CNI_CONTAINERID=cni1 CNI_NETNS=/run/netns/cni1 \
		CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni peak_kb /usr/lib/cni/bridge <"$work/cni.conf")"
fi
