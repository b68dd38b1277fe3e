#!/usr/bin/env bash
# bench/nlrequests.sh N: how many netlink requests brisk's Lua API sends to
# build the workload with N endpoints (bench/brisk_api.lua under
# `strace -c`, counting its sendto and sendmsg calls: one per request).
# Prints `NLREQ n=N calls=C`; bench/run.sh runs it at two N, and the
# difference over the endpoints between them is the endpoint flow's count.
# Run it through scripts/isolate.sh; needs strace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strace -f -qq -c -U calls,name -e trace=sendto,sendmsg -o "$work/count" \
	lua5.4 "$BENCH_DIR/brisk_api.lua" "$n" "$work/state" >/dev/null
awk -v n="$n" '$2 == "total" { print "NLREQ n=" n " calls=" $1 }' "$work/count"
