#!/usr/bin/env bash
# cxxnames.sh PALLOC CXXPROG LIBPALLOC MKPROFILE - a C++ program's names (a class template in a
# namespace, an anonymous namespace, a lambda, operator new) come out demangled in every command:
# top, diff, peek, folded, flame; --no-demangle shows the symbols; Rust symbols (legacy and v0)
# are demangled too.
set -u
palloc=$1 prog=$2 lib=$3 mkprofile=$4
. "$(dirname "$0")/lib.sh" # $d, fail, finish

LD_PRELOAD=$lib PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE=$d/a.pb.gz "$prog" 10 || fail "run 1"
LD_PRELOAD=$lib PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE=$d/b.pb.gz "$prog" 30 || fail "run 2"
names=('app::Cache<int>::insert(int)' 'app::Cache<double>::insert(double)'
       'app::(anonymous namespace)::build_index(int)'
       'app::run(int, std::vector<void*, std::allocator<void*> >&)::{lambda(int)#1}::operator()(int) const')
check() { # what output
  for n in "${names[@]}"; do
    grep -qF -- "$n" <<< "$2" || fail "$1: no $n"
  done
}
check top "$("$palloc" top --all "$d/a.pb.gz")"
check diff "$("$palloc" diff "$d/a.pb.gz" "$d/b.pb.gz")"
check folded "$("$palloc" folded "$d/a.pb.gz")"
check peek "$("$palloc" peek 'app::' "$d/a.pb.gz")"
svg=$("$palloc" flame "$d/a.pb.gz" | sed 's/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g')
check flame "$svg"
# the diff grew by 3x in the Cache<int> inserts: 1000 -> 3000 ints
grep -Eq '^ +\+7.81kB .*app::Cache<int>::insert\(int\)$' <<< "$("$palloc" diff "$d/a.pb.gz" "$d/b.pb.gz")" \
  || fail "diff: Cache<int>::insert did not grow by 2000 ints"
raw=$("$palloc" top --all --no-demangle "$d/a.pb.gz")
grep -q '_ZN3app5CacheIiE6insertEi' <<< "$raw" || fail "--no-demangle: no _ZN3app5CacheIiE6insertEi"
grep -qF 'app::Cache' <<< "$raw" && fail "--no-demangle still demangles"
# a filter that matches nothing says so (as pprof does), and the table is empty
"$palloc" top --focus 'no_such_function' "$d/a.pb.gz" > "$d/out" 2> "$d/err"
grep -q 'the --focus expression matched nothing' "$d/err" && grep -q 'accounting for 0, 0%' "$d/out" \
  || fail "--focus matching nothing: $(cat "$d/err" "$d/out")"
"$palloc" top --trim-wrappers "$d/a.pb.gz" > /dev/null 2> "$d/err"
[ -s "$d/err" ] && fail "--trim-wrappers without wrappers warned: $(cat "$d/err")"
"$mkprofile" rust "$d/r.pb.gz" 400 3
rust=$("$palloc" top --all "$d/r.pb.gz")
grep -qF 'std::io::stdio::_print' <<< "$rust" || fail "Rust legacy symbol not demangled"
grep -qF 'mycrate::example' <<< "$rust" || fail "Rust v0 symbol not demangled"
grep -qF 'strdup@' <<< "$rust" && fail "versioned name kept its version"
finish
