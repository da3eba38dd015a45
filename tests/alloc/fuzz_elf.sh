#!/usr/bin/env bash
# fuzz_elf.sh FUZZER SEED... - runs the ELF/DWARF reader's libFuzzer target (meson -Dfuzz=true,
# `meson test --suite fuzz`) for FUZZ_SECONDS (default 60) in FUZZ_DIR (default a new temporary
# directory): corpus/, seeds/ (the given files plus the system's libz), crashes/.
set -u
fuzzer=$(realpath "$1"); shift
dir=$(realpath -m "${FUZZ_DIR:-$(mktemp -d)}")
mkdir -p "$dir/corpus" "$dir/seeds" "$dir/crashes"
for f in "$@" /usr/lib/x86_64-linux-gnu/libz.so.1 /usr/lib64/libz.so.1 /lib64/libz.so.1; do
  [ -f "$f" ] && cp -L "$f" "$dir/seeds/"
done
echo "fuzzing for ${FUZZ_SECONDS:-60} s in $dir"
cd "$dir" || exit 1
exec "$fuzzer" -max_total_time="${FUZZ_SECONDS:-60}" -max_len=262144 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/crashes/" corpus seeds
