#!/usr/bin/env bash
# tests/bench/run.sh [--quick] [--build-dir DIR] [options] - palloc's benchmark suite.
# The build directory defaults to $PALLOC_BUILD_DIR or "build" (relative to the repository
# root). See tests/bench/README.md; `run.sh --help` lists every option.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
exec python3 "$here/bench.py" "$@"
