#!/usr/bin/env bash
# bench/cni_bench.sh N WORKDIR: the workload with the CNI bridge plugin
# (Debian containernetworking-plugins: /usr/lib/cni/bridge, host-local
# IPAM), called once per endpoint the way a container runtime calls it:
# the runtime makes the namespace (`ip netns add epI`), then runs
#
#     CNI_COMMAND=ADD CNI_CONTAINERID=epI CNI_NETNS=/run/netns/epI \
#     CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/bridge < config
#
# with the network config on stdin: bridge cni0, isGateway true (the
# gateway address on the bridge), ipMasq false, host-local IPAM over
# 10.88.0.0/16 with its data directory in WORKDIR and a default route.
# The plugin is measured as it ships: it leaves IPv6 on both sides as the
# kernel sets it (brisk and the other peers switch it off on the ports).
# Run it through scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1 work=$2
conf="$work/bench.conf"
cat >"$conf" <<JSON
{
	"cniVersion": "1.0.0",
	"name": "bench",
	"type": "bridge",
	"bridge": "cni0",
	"isGateway": true,
	"ipMasq": false,
	"ipam": {
		"type": "host-local",
		"subnet": "$SUBNET",
		"gateway": "$GATEWAY",
		"dataDir": "$work/ipam",
		"routes": [ { "dst": "0.0.0.0/0" } ]
	}
}
JSON
export CNI_COMMAND=ADD CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
for ((i = 1; i <= n; i++)); do
	ip netns add "ep$i"
	CNI_CONTAINERID="ep$i" CNI_NETNS="/run/netns/ep$i" /usr/lib/cni/bridge <"$conf" >/dev/null
done
