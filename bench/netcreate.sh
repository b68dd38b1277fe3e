#!/usr/bin/env bash
# bench/netcreate.sh TOOL W K1 K2 ...: the cost of one network create as the
# number of existing networks grows. For each K (ascending) the networks are
# filled up to K untimed, then W creates are timed; prints per window
#
#     NETCREATE tool=TOOL existing=K ms=<ms per create>
#
# TOOL is one of
#   brisk        brisk's Lua API (bench/netcreate.lua, one process, firewall
#                on); with BENCH_CLI_W=M > 0, each window is followed by M
#                `brisk network create` processes on the same state
#                directory, reported as tool=brisk_cli (they start W
#                networks after K)
#   brisk_nofw   brisk's Lua API with the driver's firewall off
#   ip_batch     one `ip -batch` per window: link add brI type bridge, addr
#                add GATEWAY/24 dev brI, link set brI up (the start-up time
#                of an empty `ip -batch` is taken off the window)
# Run it through scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
tool=$1 w=$2
shift 2

elapsed_ms() { awk -v a="$1" -v b="$2" -v w="$3" 'BEGIN { printf "%.2f", (b - a) * 1000 / w }'; }
subnet() { echo "10.$((100 + $1 / 256)).$(($1 % 256)).0/24"; }
report() { echo "NETCREATE tool=$tool existing=$1 ms=$2"; }
# A window must not run past the next K: W <= the smallest gap between Ks.

case $tool in
brisk | brisk_nofw)
	state=$(mktemp -d)
	trap 'rm -rf "$state"' EXIT
	fw=1
	[ "$tool" = brisk_nofw ] && fw=0
	coproc NC { BENCH_FIREWALL=$fw exec lua5.4 "$BENCH_DIR/netcreate.lua" "$state"; }
	ask() {
		echo "$1" >&"${NC[1]}"
		read -r reply count <&"${NC[0]}"
		[ "$reply" = "done" ] || { echo "netcreate.lua: $reply" >&2; exit 1; }
	}
	count=0
	for k in "$@"; do
		ask "fill $k"
		t0=$EPOCHREALTIME
		ask "make $w"
		t1=$EPOCHREALTIME
		report "$k" "$(elapsed_ms "$t0" "$t1" "$w")"
		cli_w=${BENCH_CLI_W:-0}
		if [ "$tool" = brisk ] && [ "$cli_w" -gt 0 ]; then
			t0=$EPOCHREALTIME
			for ((j = 1; j <= cli_w; j++)); do
				i=$((count + j))
				"$BRISK" --state-dir "$state" network create --subnet "$(subnet $i)" "n$i" >/dev/null
			done
			t1=$EPOCHREALTIME
			ask "skip $cli_w"
			tool=brisk_cli report "$k" "$(elapsed_ms "$t0" "$t1" "$cli_w")"
		fi
	done
	echo quit >&"${NC[1]}"
	wait "$NC_PID"
	;;
ip_batch)
	count=0
	batch() {   # networks $1+1 .. $2
		local i
		for ((i = $1 + 1; i <= $2; i++)); do
			local s
			s=$(subnet $i)
			echo "link add br$i type bridge"
			echo "addr add ${s%.0/24}.1/24 dev br$i"
			echo "link set br$i up"
		done
	}
	# the start-up of an ip process, taken off each window: the best of 5
	startup=1e9
	for ((j = 0; j < 5; j++)); do
		t0=$EPOCHREALTIME
		ip -batch - </dev/null
		t1=$EPOCHREALTIME
		startup=$(awk -v a="$t0" -v b="$t1" -v s="$startup" 'BEGIN { d = b - a; print (d < s ? d : s) }')
	done
	for k in "$@"; do
		if [ "$count" -lt "$k" ]; then
			batch "$count" "$k" | ip -batch -
			count=$k
		fi
		input=$(batch "$count" $((count + w)))
		t0=$EPOCHREALTIME
		ip -batch - <<<"$input"
		t1=$EPOCHREALTIME
		count=$((count + w))
		report "$k" "$(awk -v a="$t0" -v b="$t1" -v s="$startup" -v w="$w" \
			'BEGIN { printf "%.2f", (b - a - s) * 1000 / w }')"
	done
	;;
*)
	echo "netcreate.sh: unknown tool $tool" >&2
	exit 2
	;;
esac
