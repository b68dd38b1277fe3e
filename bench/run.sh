#!/usr/bin/env bash
# bench/run.sh [--quick | --full] [--reps R] [--tools T,...] [--counts N,...] [--out FILE]:
# brisk's benchmarks, all in one run, every measurement in a private network
# namespace of its own (scripts/isolate.sh). Never part of the test suite.
#
#   --full   (default) endpoints at N = 10, 100, 500, 1000; network create (3 runs) with
#            10, 100, 500, 1000 networks already there; peak RSS
#   --quick  N = 10, 100; network create at 10, 100; peak RSS (~2 min)
#   --reps R runs per tool at each N below 1000 (default 3; the median is
#            reported; N = 1000 runs once)
#   --tools T,...  only these endpoint rows (brisk_api, brisk_api_tmpfs,
#            brisk_cli, brisk_cli_daemon, ip_batch, ip_plain, pyroute2,
#            pyroute2_nofork, pyroute2_netns, cni), and no network create or
#            RSS part: to compare a few tools with more runs
#   --counts N,...  the endpoint counts to run instead of the mode's (e.g.
#            500, the scale of the issue's reference figures)
#   --out F  where the table goes (default bench/results.txt; the raw driver
#            lines go to F.raw)
#
# The workload (bench/lib.sh) is built from scratch by each tool in a fresh
# namespace: brisk's Lua API (bench/brisk_api.lua), brisk's CLI
# (bench/brisk_cli.sh; with a brisk daemon serving it,
# bench/brisk_cli_daemon.sh), `ip -batch` (bench/ip_batch.sh), plain `ip`
# (bench/ip_plain.sh), pyroute2 (bench/pyroute2_bench.py) and the CNI bridge
# plugin (bench/cni_bench.sh). bench/verify.py checks every result; teardown
# is not timed (the namespace goes when its isolate exits, and the next run
# waits until the kernel has freed the namespaces of the last one).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=full reps=3 out=bench/results.txt only= given_counts=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) mode=quick ;;
	--full) mode=full ;;
	--reps) reps=$2; shift ;;
	--tools) only=$2; shift ;;
	--counts) given_counts=$2; shift ;;
	--out) out=$2; shift ;;
	-h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: needs root (network namespaces)" >&2
	exit 2
fi
if [ "$mode" = full ]; then
	counts=(10 100 500 1000) netcounts=(10 100 500 1000) netw=20 ipw=50 cliw=5 netreps=3
else
	counts=(10 100) netcounts=(10 100) netw=10 ipw=50 cliw=3 netreps=1
fi
if [ -n "$given_counts" ]; then
	IFS=, read -r -a counts <<<"$given_counts"
	for n in "${counts[@]}"; do
		case $n in
		'' | *[!0-9]* | 0) echo "bench/run.sh: --counts takes positive integers, got '$n'" >&2; exit 2 ;;
		esac
	done
fi

make >/dev/null
mkdir -p build/bench
# shellcheck disable=SC2046 # the flags are words
gcc -O2 -Wall -Wextra -shared -fPIC $(pkg-config --cflags lua5.4) bench/clock.c -o build/bench/benchclock.so
gcc -O2 -Wall -Wextra bench/nlbatch.c -o build/bench/nlbatch -lmnl

raw="$out.raw"
: >"$raw"
start=$EPOCHREALTIME
# Our own processes get a higher priority than the rest of the machine (it
# may be shared); the kernel's work queues are not affected.
NICE="nice -n -10"

log() { printf '%s\n' "$*" >&2; }
meta() { echo "META $1=$2" >>"$raw"; }

# The kernel frees a namespace's devices after its last user is gone, on a
# work queue: wait until the count of live namespaces is back near where it
# started (other jobs on the machine may hold a few), or has stopped falling
# for 3 s (the slab's count includes objects cached per CPU, so it may settle
# above the start), at most 120 s.
netns_live() { awk '/^net_namespace / { print $2 }' /proc/slabinfo 2>/dev/null || echo 0; }
base_ns=$(netns_live)
# Wait until the kernel has freed the namespaces of the last run: its
# cleanup work holds the locks every link and namespace operation takes, so
# a run started meanwhile measures it too (spikes of 5-30 ms in the first
# operations of a small run). Done when the count is near where it started
# and has not moved for 0.2 s, or has not moved for 3 s.
settle() {
	local t n last=-1 still=0
	sync
	for ((t = 0; t < 600; t++)); do
		n=$(netns_live)
		if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0; fi
		[ "$n" -le $((base_ns + 50)) ] && [ "$still" -ge 1 ] && return
		[ "$still" -ge 15 ] && return
		last=$n
		sleep 0.2
	done
	log "warning: namespaces still being freed after 120 s"
}

# Every measurement's files (state dirs, CNI's IPAM data) stay until the run
# ends. On an ext4 without a journal (this machine's root, /tmp included) the
# kernel skips the inodes freed in the last minute when it makes a file,
# checking each in turn: deleting one measurement's N files right before the
# next made every file the next one created cost 0.2-0.8 ms more (measured),
# whichever tool it was, so a result depended on what ran before it.
workroot=$(mktemp -d)
trap 'rm -rf "$workroot"' EXIT

# One measurement: TOOL N, in its own isolate; appends the RESULT line.
measure() {
	local tool=$1 n=$2 work line
	work=$(mktemp -d "$workroot/run.XXXXXX")
	settle
	# shellcheck disable=SC2016 # the tmpfs row's script is expanded by its sh
	case $tool in
	brisk_api) cmd=(lua5.4 bench/brisk_api.lua "$n" "$work/state") ;;
	brisk_api_tmpfs) cmd=(sh -c 'mkdir -p "$2" && mount -t tmpfs bench-state "$2" &&
		exec lua5.4 bench/brisk_api.lua "$1" "$2"' sh "$n" "$work/state") ;;
	brisk_cli) cmd=(bench/brisk_cli.sh "$n" "$work/state") ;;
	brisk_cli_daemon) cmd=(bench/brisk_cli_daemon.sh "$n" "$work/state") ;;
	ip_batch) cmd=(bench/ip_batch.sh "$n") ;;
	ip_plain) cmd=(bench/ip_plain.sh "$n") ;;
	pyroute2) cmd=(/usr/bin/python3 bench/pyroute2_bench.py "$n") ;;
	pyroute2_nofork) cmd=(/usr/bin/python3 bench/pyroute2_bench.py "$n" --no-fork) ;;
	pyroute2_netns) cmd=(/usr/bin/python3 bench/pyroute2_bench.py "$n" --netns-proxy) ;;
	cni) cmd=(bench/cni_bench.sh "$n" "$work") ;;
	esac
	line=$($NICE scripts/isolate.sh bench/measure.sh "$tool" "$n" "${cmd[@]}" | grep '^RESULT') || true
	[ -n "$line" ] || line="RESULT tool=$tool n=$n total_s=0 status=FAIL"
	echo "$line" >>"$raw"
	log "  $line"
}

tools=(brisk_api brisk_api_tmpfs brisk_cli brisk_cli_daemon ip_batch ip_plain)
if /usr/bin/python3 -c 'import pyroute2' 2>/dev/null; then
	tools+=(pyroute2 pyroute2_nofork pyroute2_netns)
else
	log "python3-pyroute2 missing: its rows are skipped"
fi
if [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; then
	tools+=(cni)
else
	log "containernetworking-plugins missing: the CNI row is skipped"
fi

if [ -n "$only" ]; then
	IFS=, read -r -a picked <<<"$only"
	for t in "${picked[@]}"; do
		case " ${tools[*]} " in
		*" $t "*) ;;
		*) echo "bench/run.sh: unknown or unavailable tool $t (have: ${tools[*]})" >&2; exit 2 ;;
		esac
	done
	tools=("${picked[@]}")
fi

meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta command "bench/run.sh --$mode --reps $reps${only:+ --tools $only}${given_counts:+ --counts $given_counts}"
meta machine "$(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
meta versions "brisk $(build/bin/brisk version 2>/dev/null | awk '{ print $2 }') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(ip -V | sed 's/ip utility, //; s/,.*//'), pyroute2 $(dpkg-query -W -f '${Version}' python3-pyroute2 2>/dev/null || echo '?'), CNI plugins $(dpkg-query -W -f '${Version}' containernetworking-plugins 2>/dev/null || echo '?'), $(lua5.4 -v | awk '{ print $1, $2 }'), Python $(/usr/bin/python3 -c 'import platform; print(platform.python_version())')"
meta state "brisk's state dir on $(df -T "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 }') (${TMPDIR:-/tmp}), fsync'd; the tmpfs row mounts one"
meta load "$(cut -d' ' -f1-3 /proc/loadavg) (load average at the start; other jobs may share the machine)"

for n in "${counts[@]}"; do
	r=$reps
	[ "$n" -ge 1000 ] && r=1
	log "endpoints, N=$n ($r run(s) each)"
	for ((rep = 1; rep <= r; rep++)); do
		for tool in "${tools[@]}"; do
			# NetNS forks a proxy per namespace: ~60 ms/endpoint, a minute at
			# N = 1000 for a row that only shows that cost; capped at 100
			if [ "$tool" = pyroute2_netns ] && [ "$n" -gt 100 ]; then continue; fi
			measure "$tool" "$n"
		done
	done
done

if [ -n "$only" ]; then
	meta runtime "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f s", b - a }')"
	lua5.4 bench/report.lua "$raw" >"$out"
	cat "$out"
	exit 0
fi

log "network create at ${netcounts[*]} existing networks ($netreps runs each)"
for ((r = 1; r <= netreps; r++)); do
	settle
	$NICE env BENCH_CLI_W=$cliw scripts/isolate.sh bench/netcreate.sh brisk "$netw" "${netcounts[@]}" |
		tee -a "$raw" >&2 || log "network create (brisk) failed"
	settle
	$NICE scripts/isolate.sh bench/netcreate.sh ip_batch "$ipw" "${netcounts[@]}" |
		tee -a "$raw" >&2 || log "network create (ip -batch) failed"
done

log "peak RSS"
settle
$NICE scripts/isolate.sh bench/rss.sh | tee -a "$raw" >&2 || log "RSS measurement failed"

log "netlink batching"
settle
$NICE scripts/isolate.sh build/bench/nlbatch | tee -a "$raw" >&2 || log "netlink batching failed"
# the netlink requests brisk's endpoint flow sends: counted at N=10 and at
# N=20 (the difference is 10 endpoints' worth)
if command -v strace >/dev/null; then
	for n in 10 20; do
		settle
		scripts/isolate.sh bench/nlrequests.sh "$n" | tee -a "$raw" >&2 || log "netlink request count failed"
	done
else
	log "strace missing: brisk's netlink requests per endpoint are not counted"
fi

meta runtime "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f s", b - a }')"
lua5.4 bench/report.lua "$raw" >"$out"
cat "$out"
