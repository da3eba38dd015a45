#!/usr/bin/env bash
# Runs every test suite and prints one closing line "N passed, N failed".
#  1. the plain build: every suite;
#  2. an ASan+UBSan build: the suites that do not interpose malloc (unit, proto, ...);
#  3. a TSan build: the thread stress suite through palloc_malloc/palloc_free;
#  4. an assertion build (-O0, -Dassertions=expensive: palloc_assert and mimalloc's MI_DEBUG=1):
#     every test of the plain build but bench-quick, which only measures, plus assert-fires.
# A sanitizer runtime owns malloc itself, so libpalloc's malloc override cannot run under it;
# those suites test the same code through the palloc_* entry points instead.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOCACHE=${GOCACHE:-$root/build/.gocache}
status=0

run_suite() { # builddir label [meson test args...]
  local dir=$1 label=$2; shift 2
  echo "=== $label: meson test $*"
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
}
prepare() { # dir meson-options...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then meson setup "$dir" "$@" >/dev/null || return 1; fi
  ninja -C "$dir" >/dev/null
}

prepare build || { echo "0 passed, 1 failed"; exit 1; }
run_suite build plain
if prepare build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
  run_suite build-asan asan+ubsan --suite sanitize
else
  echo "asan build failed"; status=1
fi
if prepare build-tsan -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug; then
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" run_suite build-tsan tsan --suite tsan
else
  echo "tsan build failed"; status=1
fi

if prepare build-debug -Dbuildtype=debug -Dassertions=expensive; then
  # bench only measures. signal: a handler that allocates while its thread is inside mimalloc
  # (mimalloc is not reentrant, internal.h) is skipped by address, which the unoptimized build,
  # whose mimalloc calls out to libc for what the optimized one inlines, defeats (it crashed in
  # 1 run of 2 there); the optimized build runs it. MIMALLOC_SHOW_ERRORS=0: MI_DEBUG mimalloc
  # prints its out-of-memory errors, which the programs test compares against a run without.
  # --timeout-multiplier: the expensive checks (the registry's probe runs after every insert and
  # delete) make the sampler's unit test ~80x slower than in the optimized build.
  MIMALLOC_SHOW_ERRORS=0 run_suite build-debug debug+assertions --no-suite bench --no-suite signal \
    --timeout-multiplier 4
else
  echo "debug build failed"; status=1
fi

python3 - "$status" build build-asan build-tsan build-debug <<'PY'
import json, os, sys
status = int(sys.argv[1])
passed = failed = skipped = 0
for d in sys.argv[2:]:
    log = os.path.join(d, 'meson-logs', 'testlog.json')
    if not os.path.exists(log):
        continue
    for line in open(log):
        r = json.loads(line)
        res = r.get('result')
        if res in ('OK', 'EXPECTEDFAIL'): passed += 1
        elif res == 'SKIP': skipped += 1
        else: failed += 1
if status and failed == 0:
    failed = 1  # a build or runner failure with no failing test still fails the run
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
