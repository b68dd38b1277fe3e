#!/usr/bin/env bash
# scripts/deps.sh: install brisk's Debian 12 build and test dependencies (idempotent).
# clang and libclang-rt-14-dev build the fuzzers (scripts/fuzz.sh); valgrind is for
# scripts/sanitize.sh valgrind; graphviz, groff-base and luarocks for the graph,
# man page and rockspec tests.
set -euo pipefail
PKGS="build-essential pkg-config premake4 lua5.4 liblua5.4-dev libmnl-dev lua-unit lua-cjson
libnftables-dev nftables iproute2 libedit-dev util-linux iputils-ping python3 tmux
graphviz groff-base luarocks clang libclang-rt-14-dev valgrind"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "brisk: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
