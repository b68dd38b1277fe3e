#!/usr/bin/env bash
# bench/startup.sh [BRISK] [RUNS]: mean wall time of one brisk process per
# command (the fixed cost a container runtime pays per endpoint), RUNS
# (default 20) runs each, on a fresh state directory:
#   --version, network ls (empty store), network create, endpoint create
#   (on a network made first with --subnet 10.0.0.0/16).
# Prints lines `STARTUP what=<label> ms=<mean>`. Run it through
# scripts/isolate.sh: it makes bridges, veths and namespaces.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
B=${1:-$BRISK}
N=${2:-20}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

# mean of N runs of "$@" with %i replaced by the run number, in ms
mean_ms() {
	local label=$1 total=0 i t0 t1
	shift
	for ((i = 1; i <= N; i++)); do
		local args=("${@//%i/$i}")
		t0=$EPOCHREALTIME
		"${args[@]}" >/dev/null
		t1=$EPOCHREALTIME
		total=$((total + ${t1/./} - ${t0/./}))
	done
	printf 'STARTUP what=%s ms=%d.%02d\n' "$label" $((total / N / 1000)) $((total / N / 10 % 100))
}

mean_ms version "$B" --version
mean_ms network_ls "$B" --state-dir "$D" network ls
"$B" --state-dir "$D" network create --subnet 10.0.0.0/16 bn >/dev/null
for ((i = 1; i <= N; i++)); do ip netns add "n$i"; done
mean_ms endpoint_create "$B" --state-dir "$D" endpoint create --name "e%i" --netns "n%i" bn
mean_ms network_create "$B" --state-dir "$D" network create "net%i"
