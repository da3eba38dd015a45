#!/usr/bin/env bash
# cli.sh PALLOC - the command line contract: --help for every subcommand (exit 0, usage on
# stdout), usage errors exit 2 with one line on stderr, unknown commands and options rejected.
set -u
palloc=$1
fails=0
expect() { # expect CODE DESCRIPTION CMD...
  local want=$1 what=$2
  shift 2
  local out err code
  out=$("$@" 2>/tmp/cli.$$.err); code=$?
  err=$(cat /tmp/cli.$$.err)
  if [ "$code" != "$want" ]; then
    echo "FAIL: $what: exit $code, want $want: $* (stderr: $err)"; fails=$((fails + 1)); return
  fi
  if [ "$want" = 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then
    echo "FAIL: $what: usage error is not one line: $err"; fails=$((fails + 1)); return
  fi
  echo "ok: $what"
  LAST_OUT=$out
}
for c in run top diff peek list flame folded symbolize; do
  expect 0 "$c --help" "$palloc" "$c" --help
  case "$LAST_OUT" in "usage: palloc $c"*) ;; *) echo "FAIL: $c --help output: $LAST_OUT"; fails=$((fails + 1)) ;; esac
  expect 0 "help $c" "$palloc" help "$c"
  expect 0 "$c -h" "$palloc" "$c" -h
done
expect 0 "palloc --help" "$palloc" --help
case "$LAST_OUT" in *symbolize*) ;; *) echo "FAIL: --help does not list the commands"; fails=$((fails + 1)) ;; esac
expect 2 "no command" "$palloc"
expect 2 "unknown command" "$palloc" frobnicate
for c in top flame folded; do
  expect 2 "$c without a profile" "$palloc" "$c"
  expect 2 "$c with two profiles" "$palloc" "$c" a b
  expect 2 "$c unknown option" "$palloc" "$c" --bogus x
  expect 2 "$c bad sample index" "$palloc" "$c" --sample-index cpu x
done
for c in top diff peek list flame folded; do
  expect 2 "$c bad --focus regex" "$palloc" "$c" --focus 'a(' x y
  expect 2 "$c bad --hide regex" "$palloc" "$c" --hide '[' x y
done
expect 2 "peek without a profile" "$palloc" peek main
expect 2 "peek bad regex" "$palloc" peek '(' x
expect 2 "list without a profile" "$palloc" list main
expect 2 "list bad regex" "$palloc" list '*(' x
expect 0 "top --help lists the view options" "$palloc" top --help
case "$LAST_OUT" in *--trim-wrappers*--no-demangle*) ;; *) echo "FAIL: top --help lacks view options"; fails=$((fails + 1)) ;; esac
expect 2 "top -n 0" "$palloc" top -n 0 x
expect 2 "top -n abc" "$palloc" top -n abc x
expect 2 "top --unit parsecs" "$palloc" top --unit parsecs x
expect 2 "diff one profile" "$palloc" diff a
expect 2 "diff bad --fail-over" "$palloc" diff --fail-over lots a b
expect 2 "symbolize one file" "$palloc" symbolize a
expect 2 "symbolize unknown option" "$palloc" symbolize --bogus a b
expect 2 "run without a command" "$palloc" run
expect 2 "run without a command after --" "$palloc" run -o x --
expect 2 "run bad rate" "$palloc" run --rate fast -- true
expect 2 "run bad interval" "$palloc" run --interval -3 -- true
expect 2 "run unknown option" "$palloc" run --bogus -- true
rm -f /tmp/cli.$$.err
echo "$fails failures"
[ "$fails" = 0 ]
