#!/usr/bin/env bash
# fuzz.sh FUZZER MKPROFILE - runs the libFuzzer target for FUZZ_SECONDS (default 60) from seed
# profiles (synthetic ones of every kind, gzip and raw). Corpus and crash files go to
# FUZZ_DIR (default: a temporary directory, printed). Exit 0 only if nothing was found.
set -u
fuzzer=$1 mkprofile=$2
dir=$(realpath -m "${FUZZ_DIR:-$(mktemp -d)}")
mkprofile=$(realpath "$mkprofile")
mkdir -p "$dir/corpus" "$dir/seeds" "$dir/crashes"
for k in heap default grown allocs cpu dangling; do
  "$mkprofile" "$k" "$dir/seeds/$k.pb.gz" 20 3 || exit 1
  gzip -dc "$dir/seeds/$k.pb.gz" > "$dir/seeds/$k.pb"
done
fuzzer=$(realpath "$fuzzer")
echo "fuzzing for ${FUZZ_SECONDS:-60} s in $dir"
# with FUZZ_JOBS > 1 libFuzzer runs that many workers and writes fuzz-N.log in the current
# directory: that is $dir, never the source tree
jobs=()
[ "${FUZZ_JOBS:-1}" -gt 1 ] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
cd "$dir" || exit 1
"$fuzzer" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$dir/crashes/" "${jobs[@]}" corpus seeds
