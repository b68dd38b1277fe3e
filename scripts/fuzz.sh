#!/usr/bin/env bash
# scripts/fuzz.sh: build and run brisk's libFuzzer targets (Debian clang 14
# with libclang-rt-14-dev; scripts/deps.sh installs them).
#
#   scripts/fuzz.sh build             build build/fuzz/{fuzz_netlink,fuzz_cparse,fuzz_lua}
#   scripts/fuzz.sh run [SECONDS] [TARGET...]
#                                     build, then fuzz each target SECONDS (default 60)
#   scripts/fuzz.sh replay [TARGET...] build, run each corpus once (no fuzzing)
#   scripts/fuzz.sh record            re-capture fuzz/corpus/netlink from a live kernel
#                                     (inside a private network namespace)
#   scripts/fuzz.sh merge [TARGET...] fold what the last run found into fuzz/corpus
#
# Targets (fuzz/README.md says more):
#   netlink  brisk.core's netlink reply parsing (nl.c, link.c, addr.c, route.c,
#            conntrack.c)
#   cparse   the C address, prefix, MAC and interface-name parsers (nl.c)
#   lua      the Lua CIDR/IP/MAC, port, option-schema and store JSON parsers
#
# Everything is built with ASan+UBSan (-fno-sanitize-recover=all): a crash, a
# sanitizer report or a target's own check aborts the run, leaves the input
# in build/fuzz/artifacts/, and makes the script exit 1. The corpus in the
# repository is only read; new inputs go to build/fuzz/work/<target>.
# Every fuzzer runs inside a private network namespace (scripts/isolate.sh);
# none of them talks to a kernel anyway (the netlink socket is replaced).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=build/fuzz
ALL_TARGETS="netlink cparse lua"
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(pkg-config --cflags lua5.4 libmnl libnftables)"
LIBS="$(pkg-config --libs lua5.4 libmnl libnftables) -lm -ldl"
WRAP="-Wl,--wrap=mnl_socket_open2,--wrap=mnl_socket_bind,--wrap=mnl_socket_setsockopt"
WRAP="$WRAP,--wrap=mnl_socket_get_portid,--wrap=mnl_socket_close,--wrap=mnl_socket_sendto"
WRAP="$WRAP,--wrap=mnl_socket_recvfrom,--wrap=setns"

die() { echo "fuzz.sh: $*" >&2; exit 1; }

# compile DIR FLAGS...: brisk.core's objects into $OUT/DIR (when stale).
compile() {
	local dir=$OUT/$1 f o
	shift
	mkdir -p "$dir"
	for f in csrc/*.c; do
		o="$dir/$(basename "${f%.c}").o"
		if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ csrc/brisk.h -nt "$o" ]; then
			# shellcheck disable=SC2086
			$CC $CFLAGS "$@" -c "$f" -o "$o"
		fi
	done
}

build() {
	command -v "$CC" >/dev/null || die "$CC not found (scripts/deps.sh installs clang)"
	mkdir -p "$OUT/artifacts" "$OUT/work"
	# shellcheck disable=SC2086
	compile obj $SAN -fsanitize=fuzzer-no-link
	# shellcheck disable=SC2086
	$CC $CFLAGS $SAN -fsanitize=fuzzer fuzz/fuzz_netlink.c "$OUT"/obj/*.o $WRAP $LIBS -o "$OUT/fuzz_netlink"
	# shellcheck disable=SC2086
	$CC $CFLAGS $SAN -fsanitize=fuzzer fuzz/fuzz_cparse.c "$OUT"/obj/*.o $LIBS -o "$OUT/fuzz_cparse"
	# The Lua target runs no brisk C code (ASan would only slow the Lua
	# allocator down, twice over): plain objects, coverage from its line hook.
	compile obj-plain
	# shellcheck disable=SC2086
	$CC $CFLAGS -fsanitize=fuzzer -DBRISK_ROOT="\"$ROOT\"" fuzz/fuzz_lua.c "$OUT"/obj-plain/*.o $LIBS \
		-o "$OUT/fuzz_lua"
}

# The options each target runs with.
opts() {
	case "$1" in
	netlink) echo "-max_len=65536 -detect_leaks=0" ;;
	cparse) echo "-max_len=256 -dict=fuzz/cparse.dict" ;;
	lua) echo "-max_len=2048 -dict=fuzz/lua.dict -detect_leaks=0" ;;
	*) die "unknown target $1 (one of: $ALL_TARGETS)" ;;
	esac
}

# run SECONDS TARGET: fuzz one target; 0 when clean.
run_one() {
	local secs=$1 t=$2 log="$OUT/$2.log"
	mkdir -p "$OUT/work/$t"
	echo "fuzz.sh: $t for ${secs}s (corpus fuzz/corpus/$t, log $log)" >&2
	# shellcheck disable=SC2046
	if bash scripts/isolate.sh "$OUT/fuzz_$t" $(opts "$t") -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-" \
		"$OUT/work/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
		grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$log" | tail -2 >&2 || true
		return 0
	fi
	echo "fuzz.sh: $t FAILED; the last lines of $log:" >&2
	tail -40 "$log" >&2
	return 1
}

replay_one() {
	local t=$1
	echo "fuzz.sh: replaying fuzz/corpus/$t" >&2
	# shellcheck disable=SC2046
	bash scripts/isolate.sh "$OUT/fuzz_$t" $(opts "$t") -runs=0 -timeout=10 \
		-artifact_prefix="$OUT/artifacts/$t-" "fuzz/corpus/$t" >"$OUT/$t.replay.log" 2>&1 || {
		tail -40 "$OUT/$t.replay.log" >&2
		return 1
	}
}

record() {
	mkdir -p "$OUT"
	# shellcheck disable=SC2086
	$CC $CFLAGS -O1 fuzz/record_netlink.c csrc/*.c -Wl,--wrap=mnl_socket_recvfrom $LIBS \
		-o "$OUT/record_netlink"
	mkdir -p fuzz/corpus/netlink
	bash scripts/isolate.sh sh -c '
		set -e
		ip link add br0 type bridge
		ip link set br0 up
		ip addr add 10.90.0.1/24 dev br0
		ip addr add fd90::1/64 dev br0 nodad
		ip link add vp0 type veth peer name vp1
		ip link set vp0 master br0 up
		ip link set vp1 up
		ip route add 10.91.0.0/24 via 10.90.0.2
		ip -6 route add fd91::/64 via fd90::2 metric 7
		ip link set vp1 alias "the other end"
		# conntrack entries (UDP, ICMP, ICMPv6) for conntrack_list; the UDP
		# one is conntrack_del'"'"'s
		nft add table inet rec
		nft add chain inet rec out "{ type filter hook output priority 0; }"
		nft add rule inet rec out ct state new accept
		python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"10.90.0.1\", 40000)); s.sendto(b\"x\", (\"10.90.0.2\", 53))"
		ping -c 1 -W 1 10.90.0.2 >/dev/null || true
		ping -6 -c 1 -W 1 fd90::2 >/dev/null || true
		"$1" "$2"' record "$OUT/record_netlink" fuzz/corpus/netlink
	ls -l fuzz/corpus/netlink >&2
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
case "$cmd" in
build)
	build
	;;
run)
	secs=60
	if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
	targets=${*:-$ALL_TARGETS}
	build
	rc=0
	for t in $targets; do run_one "$secs" "$t" || rc=1; done
	exit $rc
	;;
replay)
	build
	rc=0
	for t in ${*:-$ALL_TARGETS}; do replay_one "$t" || rc=1; done
	exit $rc
	;;
record)
	record
	;;
merge)
	build
	for t in ${*:-$ALL_TARGETS}; do
		# shellcheck disable=SC2046
		bash scripts/isolate.sh "$OUT/fuzz_$t" $(opts "$t") -merge=1 "fuzz/corpus/$t" "$OUT/work/$t"
	done
	;;
*)
	die "unknown command $cmd (build, run, replay, record, merge)"
	;;
esac
