#!/usr/bin/env bash
# fuzz.sh FUZZER MKPROFILE - runs the libFuzzer target for FUZZ_SECONDS (default 60) from seed
# profiles (synthetic ones of every kind, gzip and raw). Corpus and crash files go to
# FUZZ_DIR (default: a temporary directory, printed). Exit 0 only if nothing was found.
set -u
fuzzer=$1 mkprofile=$2
dir=${FUZZ_DIR:-$(mktemp -d)}
mkdir -p "$dir/corpus" "$dir/seeds" "$dir/crashes"
for k in heap default grown allocs cpu dangling; do
  "$mkprofile" "$k" "$dir/seeds/$k.pb.gz" 20 3 || exit 1
  gzip -dc "$dir/seeds/$k.pb.gz" > "$dir/seeds/$k.pb"
done
echo "fuzzing for ${FUZZ_SECONDS:-60} s in $dir"
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$dir/crashes/" -jobs="${FUZZ_JOBS:-1}" \
  "$dir/corpus" "$dir/seeds"
