#!/usr/bin/env bash
# bench/measure.sh TOOL N CMD [ARGS]: time CMD (which builds the workload
# of bench/lib.sh with N endpoints) from its start to its exit, process
# start-up included, then verify the result (bench/verify.py) and print
#
#     RESULT tool=TOOL n=N total_s=SECONDS status=ok|FAIL <verify's counts>
#
# Run it through scripts/isolate.sh: everything CMD makes goes away with the
# private namespace when this exits, and teardown is not timed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
require_isolated
tool=$1 n=$2
shift 2
log=$(mktemp)
t0=$EPOCHREALTIME
"$@" >"$log" 2>&1
rc=$?
t1=$EPOCHREALTIME
total=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
check=$(/usr/bin/python3 "$BENCH_DIR/verify.py" "$n" 2>&1)
vrc=$?
status=ok
if [ $rc -ne 0 ] || [ $vrc -ne 0 ]; then
	status=FAIL
	echo "$tool N=$n: exit $rc; verify: $check" >&2
	tail -n 5 "$log" >&2
fi
rm -f "$log"
echo "RESULT tool=$tool n=$n total_s=$total status=$status $check"
