#!/bin/sh
# run_bench.sh [BUILD_DIR] [RUNS] - GCBench: palloc's GC arena vs Boehm GC, side by side in one
# session (alternating runs), then the cost of PALLOC_TRACE=1 on a malloc/free churn loop.
# Prints every run and the medians; ratios are palloc / Boehm and traced / untraced.
set -eu
B=${1:-build-gcsim}
RUNS=${2:-5}
D=$B/tests/gcsim/bench
ninja -C "$B" tests/gcsim/bench/gcbench_palloc tests/gcsim/bench/gcbench_boehm \
  tests/gcsim/bench/churn_palloc >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== GCBench (stretch 18, long-lived 16, array 500000 doubles, depths 4..16), $RUNS alternating runs"
echo "   palloc: GOGC=${PALLOC_GOGC:-100}; Boehm: defaults (free space divisor 3), GC_MARKERS=${GC_MARKERS:-default}"
i=0
while [ $i -lt "$RUNS" ]; do
  "$D/gcbench_palloc" | tee -a "$tmp/palloc"
  "$D/gcbench_boehm" | tee -a "$tmp/boehm"
  i=$((i + 1))
done
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for f in palloc boehm; do
  t=$(awk '{print $3}' "$tmp/$f" | med); u=$(awk '{print $6}' "$tmp/$f" | med)
  c=$(awk '{print $9}' "$tmp/$f" | med); h=$(awk '{print $12}' "$tmp/$f" | med)
  pm=$(awk '{print $16}' "$tmp/$f" | med); px=$(awk '{print $19}' "$tmp/$f" | med)
  echo "$f $t $u $c $h $pm $px" >> "$tmp/med"
done
awk '{n[NR]=$1; t[NR]=$2; u[NR]=$3; c[NR]=$4; h[NR]=$5; pm[NR]=$6; px[NR]=$7}
  END {
    for (i = 1; i <= 2; i++)
      printf "median %-6s time %.3f s  cpu %.3f s  collections %d  peak heap %.1f MiB  pause median %.2f ms  max %.2f ms\n", n[i], t[i], u[i], c[i], h[i], pm[i], px[i];
    printf "ratio palloc/boehm: time %.2f  cpu %.2f  collections %.2f  peak heap %.2f  median pause %.2f  max pause %.2f\n",
      t[1]/t[2], u[1]/u[2], c[1]/c[2], h[1]/h[2], pm[1]/pm[2], px[1]/px[2]
  }' "$tmp/med"

echo "== PALLOC_TRACE cost: churn loop (20M malloc/free pairs, 16..4111 B, 4096 live), linked with libpalloc, $RUNS alternating runs"
i=0
while [ $i -lt "$RUNS" ]; do
  a=$(env -u PALLOC_TRACE "$D/churn_palloc")
  b=$(PALLOC_TRACE=1 PALLOC_TRACE_FILE=$tmp/trace.txt "$D/churn_palloc")
  echo "unset $a s   PALLOC_TRACE=1 $b s"
  echo "$a" >> "$tmp/off"; echo "$b" >> "$tmp/on"
  i=$((i + 1))
done
off=$(med < "$tmp/off"); on=$(med < "$tmp/on")
echo "median unset $off s, PALLOC_TRACE=1 $on s, ratio $(awk "BEGIN {printf \"%.2f\", $on/$off}")"
echo "last what-if summary: $(tail -1 "$tmp/trace.txt")"
