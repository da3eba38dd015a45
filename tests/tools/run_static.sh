#!/usr/bin/env bash
# run_static.sh PALLOC STATIC_PROG - `palloc run` on a statically linked program says that
# LD_PRELOAD cannot reach it (not that the program left through _exit), and still runs it
# with its output and exit status.
set -u
palloc=$1 prog=$2
. "$(dirname "$0")/lib.sh" # $d, fail, finish

out=$("$palloc" run -o "$d/static.%p.pb.gz" -- "$prog" 2> "$d/err"); code=$?
[ "$code" = 0 ] && [ "$out" = "static: 124716" ] && echo "ok: the static program ran" \
  || fail "static program: exit $code, output '$out'"
grep -q "statically linked: LD_PRELOAD cannot reach it" "$d/err" && echo "ok: says why" \
  || fail "no word of static linking: $(cat "$d/err")"
grep -q "_exit" "$d/err" && fail "blames _exit: $(cat "$d/err")"
[ "$(grep -c '^palloc: ' "$d/err")" = 2 ] || fail "want the reason and 'no profile': $(cat "$d/err")"
# a dynamic program in the same place is not called static
"$palloc" run -o "$d/dyn.pb.gz" -- true 2> "$d/err"
grep -q "statically" "$d/err" && fail "true called static: $(cat "$d/err")"
finish
