#!/usr/bin/env bash
# run_static.sh PALLOC STATIC_PROG SOURCE PKG_CONFIG_DIR - `palloc run` on a statically linked
# program says that LD_PRELOAD cannot reach it (not that the program left through _exit) and how
# to link it with libpalloc.a, and still runs it with its output and exit status; the same
# SOURCE linked -static with libpalloc.a (the uninstalled palloc.pc in PKG_CONFIG_DIR) is run
# without a word and writes its profile.
set -u
palloc=$1 prog=$2 src=$3 pcdir=$4
. "$(dirname "$0")/lib.sh" # $d, fail, finish

out=$("$palloc" run -o "$d/static.%p.pb.gz" -- "$prog" 2> "$d/err"); code=$?
[ "$code" = 0 ] && [ "$out" = "static: 124716" ] && echo "ok: the static program ran" \
  || fail "static program: exit $code, output '$out'"
grep -q "statically linked: LD_PRELOAD cannot reach it" "$d/err" && echo "ok: says why" \
  || fail "no word of static linking: $(cat "$d/err")"
grep -q "pkg-config --static --libs palloc" "$d/err" && echo "ok: says how to link libpalloc.a" \
  || fail "no word of libpalloc.a: $(cat "$d/err")"
grep -q "_exit" "$d/err" && fail "blames _exit: $(cat "$d/err")"
[ "$(grep -c '^palloc: ' "$d/err")" = 2 ] || fail "want the reason and 'no profile': $(cat "$d/err")"
palloc_prog=$d/static_palloc_prog
PKG_CONFIG_PATH=$pcdir cc -static -O1 "$src" $(PKG_CONFIG_PATH=$pcdir pkg-config --static --libs palloc) \
  -o "$palloc_prog" 2> "$d/ld" || fail "cc -static with libpalloc.a: $(cat "$d/ld")"
out=$("$palloc" run -r 1 -o "$d/linked.%p.pb.gz" -- "$palloc_prog" 2> "$d/err"); code=$?
[ "$code" = 0 ] && [ "$out" = "static: 124716" ] || fail "linked static program: exit $code, '$out'"
grep -q "statically" "$d/err" && fail "linked static program called unreachable: $(cat "$d/err")"
grep -q "profile written" "$d/err" || fail "linked static program: $(cat "$d/err")"
ls "$d"/linked.*.pb.gz > /dev/null 2>&1 && "$palloc" top "$d"/linked.*.pb.gz | grep -q ' main$' \
  && echo "ok: the static program linked with libpalloc.a wrote its profile" \
  || fail "linked static program: no profile with main"
# a dynamic program in the same place is not called static
"$palloc" run -o "$d/dyn.pb.gz" -- true 2> "$d/err"
grep -q "statically" "$d/err" && fail "true called static: $(cat "$d/err")"
finish
