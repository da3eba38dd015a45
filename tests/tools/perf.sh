#!/usr/bin/env bash
# perf.sh PALLOC MKPROFILE [SAMPLES] - time to summarize a profile of 100k samples (the issue
# asks for under a second). Prints the figures; fails only above a generous 5 s per command,
# so that a slow CI machine or a sanitizer build does not turn measurement into flakiness.
set -u
palloc=$1 mkprofile=$2 n=${3:-100000}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$mkprofile" heap "$d/big.pb.gz" "$n" 42 || exit 1
"$mkprofile" grown "$d/big2.pb.gz" "$n" 42 || exit 1
echo "profile: $n samples, $(stat -c %s "$d/big.pb.gz") bytes gzipped"
fails=0
for cmd in "top" "top --cum -i alloc_space" "folded" "flame" "diff $d/big.pb.gz"; do
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  "$palloc" $cmd "$d/big2.pb.gz" > "$d/out" || { echo "FAIL: palloc $cmd"; fails=$((fails + 1)); }
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "palloc ${cmd%% /*}: ${ms} ms ($(wc -c < "$d/out") bytes of output)"
  [ "$ms" -lt 5000 ] || { echo "FAIL: over 5 s"; fails=$((fails + 1)); }
done
[ "$fails" = 0 ]
