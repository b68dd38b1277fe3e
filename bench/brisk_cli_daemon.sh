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
# its stderr comes back through the coprocess's pipe: the first line says
# it listens (read without polling)
coproc DAEMON { exec "$BRISK" daemon --quiet --socket "$sock" 2>&1; }
daemon=$DAEMON_PID
# a descriptor of our own: bash unsets DAEMON once the coprocess has gone,
# which the read after the kill below could then find
exec {dout}<&"${DAEMON[0]}"
trap 'kill "$daemon" 2>/dev/null || true' EXIT
read -r -t 30 ready <&"$dout" || true
case $ready in
"brisk daemon: listening on "*) ;;
*) echo "brisk daemon did not start: $ready" >&2; exit 1 ;;
esac
export BRISK_HOST=$sock
"$BRISK" --state-dir "$state" network create --subnet "$SUBNET" bench >/dev/null
for ((i = 1; i <= n; i++)); do
	"$BRISK" --state-dir "$state" endpoint create --name "ep$i" --netns "ep$i" bench >/dev/null
done
kill "$daemon"
# what it printed until it closed its stderr, read by the shell itself: a
# $(cat) would time a fork of the driver's shell as the daemon's stop
IFS= read -r -d '' rest <&"$dout" || true
exec {dout}<&-
rest=${rest%$'\n'}
wait "$daemon" || true
trap - EXIT
# --quiet: nothing but the line it stops with, unless something went wrong
if [ -n "$rest" ] && [ "$rest" != "brisk daemon: stopped (signal 15)" ]; then
	echo "$rest" >&2
fi
