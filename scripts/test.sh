#!/usr/bin/env bash
# scripts/test.sh: install what is needed, build from scratch, run the whole suite.
# Every spec runs inside a private network namespace (spec/run.lua re-executes
# itself under `unshare -n -m`); nothing touches the host's namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make clean >/dev/null
make >/dev/null
exec lua5.4 spec/run.lua "$@"
