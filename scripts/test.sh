#!/usr/bin/env bash
# scripts/test.sh: install what is needed, build from scratch, run the whole suite.
# Every spec runs inside a private network namespace (spec/run.lua re-executes
# itself under `unshare -n -m`); nothing touches the host's namespace.
#
#   scripts/test.sh                  what CI runs (.ci/run): the suite, then the
#                                    suite again under ASan+UBSan (scripts/sanitize.sh
#                                    asan), then each fuzz target for
#                                    $BRISK_FUZZ_SECONDS (default 60; scripts/fuzz.sh)
#   scripts/test.sh spec/test_x.lua  the given specs only (spec/run.lua's arguments)
#   BRISK_QUICK=1 scripts/test.sh    the suite only
#
# The last line is the suite's `N passed, N failed[, N skipped]`; the exit
# status is 0 only when every part passed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make clean >/dev/null
make >/dev/null
if [ $# -gt 0 ] || [ "${BRISK_QUICK:-}" = 1 ]; then
	exec lua5.4 spec/run.lua "$@"
fi

summary=()
fail=0
# part NAME CMD...: run one part, note its exit status and time.
part() {
	local name=$1 start=$SECONDS rc=0
	shift
	echo "test.sh: --- $name ---" >&2
	"$@" || rc=$?
	summary+=("$name: $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s")
	[ $rc = 0 ] || fail=1
}

suite() {
	set -o pipefail
	lua5.4 spec/run.lua | tee build/suite.log
}
part "suite" suite
part "suite under ASan+UBSan" bash scripts/sanitize.sh asan
part "fuzzing (${BRISK_FUZZ_SECONDS:-60} s per target)" bash scripts/fuzz.sh run "${BRISK_FUZZ_SECONDS:-60}"
for s in "${summary[@]}"; do echo "test.sh: $s" >&2; done
tail -n 1 build/suite.log
exit $fail
