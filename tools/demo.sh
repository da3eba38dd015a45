#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR - runs the demo under libpalloc and shows its heap profile with
# go tool pprof: in-use space (the leak) first, then allocated space (the churn).
set -euo pipefail
build=${1:-build}
out=$(mktemp -d)
echo "== running the demo with PALLOC_PROFILE=$out/demo.pb.gz"
PALLOC_PROFILE="$out/demo.pb.gz" "$build/tools/palloc-demo"
echo
echo "== go tool pprof -top -sample_index=inuse_space (what is still allocated: the leak)"
go tool pprof -top -sample_index=inuse_space "$build/tools/palloc-demo" "$out/demo.pb.gz" 2>/dev/null | head -12
echo
echo "== go tool pprof -top -sample_index=alloc_space (what was allocated: the churn)"
go tool pprof -top -sample_index=alloc_space "$build/tools/palloc-demo" "$out/demo.pb.gz" 2>/dev/null | head -12
echo
echo "profile kept at $out/demo.pb.gz"
