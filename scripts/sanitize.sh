#!/usr/bin/env bash
# scripts/sanitize.sh: run the whole test suite (or the given spec files)
# under a memory checker.
#
#   scripts/sanitize.sh asan [spec/test_x.lua ...]      ASan + UBSan
#   scripts/sanitize.sh valgrind [spec/test_x.lua ...]  valgrind memcheck
#
# The tree is copied to a scratch directory and built there (asan: `make
# config=asan`, the premake ASan configuration: -fsanitize=address,undefined
# -fno-sanitize-recover=all; valgrind: `make config=debug`), so the build/ of
# the working tree is left alone. The specs then run from the copy, each in a
# private network namespace as always (spec/run.lua, scripts/isolate.sh).
#
# asan: core.so is loaded by Debian's uninstrumented lua5.4, so the ASan
# runtime (gcc's libasan, which the module was linked against) is
# LD_PRELOADed into every lua5.4 (and only there: not into ip or nft);
# build/bin/brisk is itself built with the sanitizers, so the CLI specs
# check it too. Leak detection is off (Lua's collector frees at
# exit, or never). Any ASan or UBSan report aborts the process that made it,
# which fails its test; the reports also go to $SCRATCH/sanitizer.*, and any
# such file fails the run.
#
# valgrind: `valgrind -q --error-exitcode=99 lua5.4 spec/run.lua` inside the
# namespace (with suppressions for libnftables' own uninitialised padding);
# it checks the lua5.4 process that runs the specs (brisk.core and all Lua
# API tests), not the child processes it spawns (ip, nft and the brisk
# program). About 13 minutes on 2 cores, against about 4 for asan: CI
# (scripts/test.sh) runs asan.
#
# Exit status: 0 clean, 1 a test failed or a sanitizer reported, 99 valgrind
# found an error. Set SANITIZE_KEEP=1 to keep the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
asan | valgrind) ;;
*)
	echo "usage: scripts/sanitize.sh asan|valgrind [spec/test_x.lua ...]" >&2
	exit 2
	;;
esac

SCRATCH=$(mktemp -d "/tmp/brisk-$mode.XXXXXX")
cleanup() { if [ "${SANITIZE_KEEP:-}" != 1 ]; then rm -rf "$SCRATCH"; fi; }
trap cleanup EXIT
cp -a Makefile premake5.lua csrc lua spec scripts "$SCRATCH"/
for extra in examples fuzz doc bench brisk-*.rockspec README.md LICENSE; do
	[ -e "$extra" ] && cp -a "$extra" "$SCRATCH"/
done
specs=()
for f in "$@"; do specs+=("$SCRATCH/${f#./}"); done

start=$(date +%s)
rc=0
if [ "$mode" = asan ]; then
	make -C "$SCRATCH" config=asan >/dev/null
	runtime=$(gcc -print-file-name=libasan.so)
	[ -e "$runtime" ] || { echo "sanitize.sh: no libasan.so ($runtime)" >&2; exit 1; }
	# Only lua5.4 gets the runtime: a `lua5.4` first on PATH preloads it,
	# with a shim whose constructor takes LD_PRELOAD out of the environment
	# again, so that what the specs run (ip, nft, sh: not ours, and ASan
	# has things to say about iproute2) runs as it always does.
	mkdir -p "$SCRATCH/asan-bin"
	printf '#include <stdlib.h>\n__attribute__((constructor)) static void unpreload(void) { unsetenv("LD_PRELOAD"); }\n' \
		>"$SCRATCH/asan-bin/unpreload.c"
	gcc -shared -fPIC -O1 -o "$SCRATCH/asan-bin/unpreload.so" "$SCRATCH/asan-bin/unpreload.c"
	cat >"$SCRATCH/asan-bin/lua5.4" <<-EOF
		#!/bin/sh
		LD_PRELOAD="$runtime $SCRATCH/asan-bin/unpreload.so" exec $(command -v lua5.4) "\$@"
	EOF
	chmod +x "$SCRATCH/asan-bin/lua5.4"
	PATH="$SCRATCH/asan-bin:$PATH" BRISK_SANITIZER=asan \
	ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$SCRATCH/sanitizer.asan" \
	UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$SCRATCH/sanitizer.ubsan" \
		lua5.4 "$SCRATCH/spec/run.lua" "${specs[@]}" || rc=1
	if ls "$SCRATCH"/sanitizer.* >/dev/null 2>&1; then
		echo "sanitize.sh: sanitizer reports:" >&2
		cat "$SCRATCH"/sanitizer.* >&2
		rc=1
	fi
else
	command -v valgrind >/dev/null || { echo "sanitize.sh: valgrind not installed" >&2; exit 1; }
	make -C "$SCRATCH" config=debug >/dev/null
	# libnftables 1.0.6 sends batches and queries with uninitialised
	# padding bytes (its own buffers, not brisk's): suppressed by frame.
	cat >"$SCRATCH/valgrind.supp" <<-'EOF'
		{
		   libnftables-sendmsg-padding
		   Memcheck:Param
		   sendmsg(msg.msg_iov[0])
		   fun:sendmsg
		   obj:*/libnftables.so.*
		}
		{
		   libnftables-sendto-padding
		   Memcheck:Param
		   socketcall.sendto(msg)
		   fun:sendto
		   obj:*/libnftables.so.*
		}
	EOF
	BRISK_SANITIZER=valgrind bash "$SCRATCH/scripts/isolate.sh" valgrind -q --error-exitcode=99 --track-origins=yes \
		--suppressions="$SCRATCH/valgrind.supp" lua5.4 "$SCRATCH/spec/run.lua" "${specs[@]}" || rc=$?
fi
echo "sanitize.sh: $mode run took $(($(date +%s) - start)) s, exit $rc" >&2
exit "$rc"
