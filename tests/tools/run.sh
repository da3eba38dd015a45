#!/usr/bin/env bash
# run.sh PALLOC DEMO LIBPALLOC - `palloc run`: the profile is written where -o says (with %p
# expanded), the message names it, options reach libpalloc (--rate 1 gives an exact profile,
# --interval writes snapshots), the program's exit status passes through (a signal as 128+N,
# 127 when it cannot be started), and PALLOC_LIB overrides the library search.
set -u
palloc=$1 demo=$2 lib=$3
. "$(dirname "$0")/lib.sh" # $d, fail, finish

"$palloc" run -o "$d/demo.%p.pb.gz" --rate 1 -- "$demo" > /dev/null 2> "$d/err"
code=$?
[ "$code" = 0 ] || fail "demo exit $code"
msg=$(grep 'profile written to' "$d/err")
path=${msg#palloc: profile written to }
case "$path" in "$d"/demo.[0-9]*.pb.gz) ;; *) fail "message does not name the expanded path: $msg" ;; esac
[ -f "$path" ] || fail "no profile at $path"
top=$("$palloc" top "$path") || fail "top of the run's profile failed"
grep -q 'Sampling: every allocation (exact)' <<< "$top" || fail "--rate 1 did not give an exact profile: $top"
grep -q 'leak_sessions' <<< "$top" || fail "leak_sessions not in the run's profile"
# exact: the leak is 65536 x 512 bytes = 32MB, in use at exit
grep -Eq '^ +32MB .*leak_sessions' <<< "$("$palloc" top --unit MB "$path")" \
  || fail "leak_sessions is not 32MB in use: $("$palloc" top --unit MB "$path")"
echo "ok: profile, message, --rate"

"$palloc" run -o "$d/x.pb.gz" -- sh -c 'exit 7' 2> /dev/null; code=$?
[ "$code" = 7 ] && echo "ok: exit status 7 passed through" || fail "exit status $code, want 7"
"$palloc" run -o "$d/x.pb.gz" -- sh -c 'kill -TERM $$' 2> /dev/null; code=$?
[ "$code" = 143 ] && echo "ok: SIGTERM -> 143" || fail "signal exit $code, want 143"
"$palloc" run -o "$d/x.pb.gz" -- /nonexistent/program 2> "$d/err"; code=$?
[ "$code" = 127 ] && grep -q 'cannot run /nonexistent/program' "$d/err" && echo "ok: 127" \
  || fail "missing program: exit $code, $(cat "$d/err")"
PALLOC_LIB=/nonexistent/libpalloc.so "$palloc" run -- true 2> "$d/err"; code=$?
[ "$code" = 1 ] && grep -q PALLOC_LIB "$d/err" && echo "ok: bad PALLOC_LIB" \
  || fail "bad PALLOC_LIB: exit $code $(cat "$d/err")"
PALLOC_LIB=$lib "$palloc" run -o "$d/lib.pb.gz" -- "$demo" > /dev/null 2>&1
[ -f "$d/lib.pb.gz" ] && echo "ok: PALLOC_LIB" || fail "PALLOC_LIB=$lib: no profile"
# a child that runs a shell pipeline: the preload is inherited, the profile names the parent
"$palloc" run -o "$d/env.pb.gz" --rate 64k --trace -- sh -c 'echo "$LD_PRELOAD $PALLOC_PROFILE $PALLOC_SAMPLE_RATE $PALLOC_TRACE"' \
  > "$d/out" 2> /dev/null
grep -q "libpalloc.so.* $d/env.pb.gz 64k 1\$" "$d/out" && echo "ok: environment" \
  || fail "environment seen by the program: $(cat "$d/out")"
"$palloc" run --interval 1 -o "$d/snap.pb.gz" -- sleep 2.5 2> "$d/err"
ls "$d"/snap.0001.pb.gz > /dev/null 2>&1 && echo "ok: --interval snapshots" \
  || fail "--interval: no snapshot: $(ls "$d") $(cat "$d/err")"
grep -q 'snapshots every 1s' "$d/err" || fail "--interval: not mentioned: $(cat "$d/err")"
grep -q "^  $d/snap.0001.pb.gz\$" "$d/err" || fail "--interval: snapshot not listed: $(cat "$d/err")"
# fractional seconds: 0.3 s over a 1.2 s run is three or four snapshots
"$palloc" run --interval 0.3 -o "$d/frac.pb.gz" -- sleep 1.2 2> "$d/err"
n=$(ls "$d"/frac.[0-9]*.pb.gz 2> /dev/null | wc -l)
[ "$n" -ge 3 ] && [ "$n" -le 5 ] && echo "ok: --interval 0.3: $n snapshots" \
  || fail "--interval 0.3: $n snapshots in 1.2 s: $(cat "$d/err")"
# a shell that starts three programs: each writes its own profile (%p), and all are listed; a
# profile left by an earlier run is not
mkdir "$d/many" && touch -d '2020-01-01' "$d/many/p.1.pb.gz"
"$palloc" run -o "$d/many/p.%p.pb.gz" -- sh -c "$demo > /dev/null; $demo > /dev/null; $demo > /dev/null; true" \
  2> "$d/err"
n=$(ls "$d"/many/p.*.pb.gz | grep -vc 'p\.1\.pb')
listed=$(grep -c "^  $d/many/p\.[0-9]*\.pb\.gz\$" "$d/err")
[ "$n" -ge 3 ] && [ "$listed" = "$n" ] && grep -q "$n profiles written by the processes it started" "$d/err" \
  && ! grep -q 'p\.1\.pb' "$d/err" && echo "ok: $n profiles of child processes listed" \
  || fail "child profiles: $n written, $listed listed: $(cat "$d/err")"
finish
