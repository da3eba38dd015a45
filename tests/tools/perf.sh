#!/usr/bin/env bash
# perf.sh PALLOC MKPROFILE [SAMPLES] - time to summarize a profile of 100k samples (the issue
# asks for under a second). Prints the figures; fails only above a generous 5 s per command,
# so that a slow CI machine or a sanitizer build does not turn measurement into flakiness.
set -u
palloc=$1 mkprofile=$2 n=${3:-100000}
. "$(dirname "$0")/lib.sh" # $d, fail, finish
"$mkprofile" heap "$d/big.pb.gz" "$n" 42 || exit 1
"$mkprofile" grown "$d/big2.pb.gz" "$n" 42 || exit 1
"$mkprofile" cxx "$d/cxx.pb.gz" "$n" 42 || exit 1
echo "profile: $n samples, $(stat -c %s "$d/big.pb.gz") bytes gzipped"
for cmd in "top" "top --cum -i alloc_space" "top --lines" "top --addresses" \
    "top --focus visit --hide inline" "peek main|visit" "folded" "flame" "flame --base $d/big.pb.gz" \
    "diff $d/big.pb.gz" "top --trim-wrappers $d/cxx.pb.gz #" "peek Cache $d/cxx.pb.gz #" \
    "list visit"; do
  start=$(date +%s%N)
  # shellcheck disable=SC2086,SC2048
  # ("#": the command names its own profile)
  case "$cmd" in *'#') set -- ${cmd% \#} ;; *) set -- $cmd "$d/big2.pb.gz" ;; esac
  "$palloc" "$@" > "$d/out" || fail "palloc $cmd"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "palloc ${cmd%% /*}: ${ms} ms ($(wc -c < "$d/out") bytes of output)"
  [ "$ms" -lt 5000 ] || fail "over 5 s"
done
finish
