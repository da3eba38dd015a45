#!/usr/bin/env bash
# symbolize.sh PALLOC DEMO PPROF - `palloc symbolize` on a profile written with
# PALLOC_SYMBOLIZE=none gives the same table as libpalloc's in-process symbolization of the same
# (deterministic, exact) run: every row of `top --all --unit B`, for all four sample types, and
# upstream pprof reads the files and lines it wrote (-lines shows demo.c:N).
set -u
palloc=$1 demo=$2 pprof=$3
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$palloc" run --rate 1 -o "$d/sym.pb.gz" -- "$demo" > /dev/null 2>&1 || fail "demo run"
PALLOC_SYMBOLIZE=none "$palloc" run --rate 1 -o "$d/raw.pb.gz" -- "$demo" > /dev/null 2>&1 || fail "demo run"
"$palloc" top "$d/raw.pb.gz" | grep -q leak_sessions && fail "PALLOC_SYMBOLIZE=none profile has names"
"$palloc" symbolize "$d/raw.pb.gz" "$d/out.pb.gz" 2> "$d/err" || fail "symbolize: $(cat "$d/err")"
grep -Eq 'symbolized [1-9][0-9]* addresses, 0 without symbols' "$d/err" || fail "summary: $(cat "$d/err")"
for si in alloc_objects alloc_space inuse_objects inuse_space; do
  "$palloc" top --all --unit B -i "$si" "$d/sym.pb.gz" | sed -n '/flat%/,$p' > "$d/want"
  "$palloc" top --all --unit B -i "$si" "$d/out.pb.gz" | sed -n '/flat%/,$p' > "$d/got"
  if [ "$(wc -l < "$d/want")" -lt 4 ] || ! diff "$d/want" "$d/got"; then
    fail "$si: offline symbolization differs from in-process"
  else
    echo "ok: $si: $(($(wc -l < "$d/got") - 1)) rows equal"
  fi
done
"$pprof" -top -lines -symbolize=none "$d/out.pb.gz" 2> /dev/null | grep -Eq 'leak_sessions[^ ]* .*demo\.c:[0-9]+' \
  && echo "ok: pprof -lines shows demo.c lines" || fail "pprof -lines: no demo.c:N for leak_sessions"
# symbolizing twice changes nothing, and a symbolized profile stays as it is
"$palloc" symbolize "$d/out.pb.gz" "$d/out2.pb.gz" 2> /dev/null || fail "second symbolize"
cmp -s <("$palloc" folded "$d/out.pb.gz") <("$palloc" folded "$d/out2.pb.gz") && echo "ok: idempotent" \
  || fail "second symbolize changed the stacks"
echo "$fails failures"
[ "$fails" = 0 ]
