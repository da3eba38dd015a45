#!/usr/bin/env bash
# symbolize.sh PALLOC DEMO PPROF - `palloc symbolize` on a profile written with
# PALLOC_SYMBOLIZE=none gives the same rows for the demo's functions as libpalloc's in-process
# symbolization of the same (deterministic, exact) run, in `top --all --unit B` for all four
# sample types; no address is left without a name; upstream pprof reads the files and lines it
# wrote (-lines shows demo.c:N).
set -u
palloc=$1 demo=$2 pprof=$3
. "$(dirname "$0")/lib.sh" # $d, fail, finish
"$palloc" run --rate 1 -o "$d/sym.pb.gz" -- "$demo" > /dev/null 2>&1 || fail "demo run"
PALLOC_SYMBOLIZE=none "$palloc" run --rate 1 -o "$d/raw.pb.gz" -- "$demo" > /dev/null 2>&1 || fail "demo run"
"$palloc" top "$d/raw.pb.gz" | grep -q leak_sessions && fail "PALLOC_SYMBOLIZE=none profile has names"
"$palloc" symbolize "$d/raw.pb.gz" "$d/out.pb.gz" 2> "$d/err" || fail "symbolize: $(cat "$d/err")"
grep -Eq 'symbolized [1-9][0-9]* addresses, 0 without symbols' "$d/err" || fail "summary: $(cat "$d/err")"
# The demo's own functions must match exactly. libc's frames may be named differently: libpalloc
# reads only the loaded files' own symbols (dynsym aliases such as _IO_printf, and static
# functions merged into their neighbour), while symbolize also reads separate debug info.
own='  (main|leak_sessions[^ ]*|parse_request[^ ]*|render_page[^ ]*)$'
for si in alloc_objects alloc_space inuse_objects inuse_space; do
  "$palloc" top --all --unit B -i "$si" "$d/sym.pb.gz" | grep -E "$own" > "$d/want"
  "$palloc" top --all --unit B -i "$si" "$d/out.pb.gz" | grep -E "$own" > "$d/got"
  "$palloc" top --all --unit B -i "$si" "$d/out.pb.gz" > "$d/all"
  if [ "$(wc -l < "$d/want")" -lt 2 ] || ! diff "$d/want" "$d/got"; then
    fail "$si: offline symbolization differs from in-process"
  elif grep -Eq '  \[[^]]*\]$|<unknown>|  [^ ]+\+0x[0-9a-f]+$' "$d/all"; then
    fail "$si: unsymbolized rows left: $(cat "$d/all")"
  else
    echo "ok: $si: $(wc -l < "$d/got") rows of the demo's functions equal, no address left bare"
  fi
done
"$pprof" -top -lines -symbolize=none "$d/out.pb.gz" 2> /dev/null | grep -Eq 'leak_sessions[^ ]* .*demo\.c:[0-9]+' \
  && echo "ok: pprof -lines shows demo.c lines" || fail "pprof -lines: no demo.c:N for leak_sessions"
# symbolizing twice changes nothing, and a symbolized profile stays as it is
"$palloc" symbolize "$d/out.pb.gz" "$d/out2.pb.gz" 2> /dev/null || fail "second symbolize"
cmp -s <("$palloc" folded "$d/out.pb.gz") <("$palloc" folded "$d/out2.pb.gz") && echo "ok: idempotent" \
  || fail "second symbolize changed the stacks"
finish
