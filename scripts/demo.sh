#!/usr/bin/env bash
# scripts/demo.sh: install what is needed, build, and run the quickstart
# example inside a private network namespace (never the host's).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make >/dev/null
exec bash scripts/isolate.sh build/bin/brisk run examples/quickstart.lua
