#!/usr/bin/env bash
# bench/brisk_cli_daemon.sh N STATE_DIR: the workload through brisk's CLI,
# one process per endpoint, with a brisk daemon serving them (as docker's
# CLI talks to dockerd): the daemon is started first, its start-up timed
# with the rest, and stopped at the end (also timed):
#
#     brisk daemon --quiet --socket DIR/brisk.sock &
#     BRISK_HOST=DIR/brisk.sock brisk --state-dir DIR network create --subnet 10.88.0.0/16 bench
#     BRISK_HOST=DIR/brisk.sock brisk --state-dir DIR endpoint create --name epI --netns epI bench
#
# Each `brisk` process hands its arguments, descriptors and namespace to the
# daemon and exits with the command's exit code. Run it through
# scripts/isolate.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
n=$1 state=$2
mkdir -p "$state"
sock="$state/brisk.sock"
"$BRISK" daemon --quiet --socket "$sock" 2>"$state/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
# ready when the socket answers (the daemon binds it once brisk is loaded)
for ((i = 0; i < 2000; i++)); do
	[ -S "$sock" ] && break
	sleep 0.001
done
export BRISK_HOST=$sock
"$BRISK" --state-dir "$state" network create --subnet "$SUBNET" bench >/dev/null
for ((i = 1; i <= n; i++)); do
	"$BRISK" --state-dir "$state" endpoint create --name "ep$i" --netns "ep$i" bench >/dev/null
done
kill "$daemon"
wait "$daemon" || true
trap - EXIT
if [ -s "$state/daemon.log" ] && grep -qv '^brisk daemon: listening on' "$state/daemon.log"; then
	cat "$state/daemon.log" >&2
fi
