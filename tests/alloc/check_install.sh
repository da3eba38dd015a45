#!/usr/bin/env bash
# After `meson install`, `cc app.c $(pkg-config --cflags --libs palloc)` builds a program that is
# profiled (shared libpalloc), and linking libpalloc.a statically works too. Both profiles are
# read with go tool pprof and must show the leaking function with its exact in-use bytes.
# The README's link line must also hold with -Wl,--as-needed (gcc's default on Debian and
# Ubuntu) for a C program that calls no allocation function itself (only strdup), and for a C++
# program (CXX_SOURCE: tests/alloc/cxx.cc, run as `ops` at rate 1) whatever other allocator is
# linked after libpalloc: its 8,000 objects new'd in new_object_here must all be in the profile,
# attributed to new_object_here itself (palloc's operator new leaves no frame).
# usage: check_install.sh BUILD_DIR TMP_DIR CXX_SOURCE
set -euo pipefail
build=$1 tmp=$2 cxx_src=$3
rm -rf "$tmp" && mkdir -p "$tmp"
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(find "$tmp/root" -name palloc.pc | head -1)
lib=$(dirname "$(find "$tmp/root" -name libpalloc.so | head -1)")
export PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH=$(dirname "$pc")
cat > "$tmp/app.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <palloc.h>
void *kept[1000];
__attribute__((noipa)) void leak_here(int i) { kept[i] = malloc(3000); }
int main(void) {
  for (int i = 0; i < 1000; i++) leak_here(i);
  palloc_stats_t st;
  palloc_read_stats(&st);
  printf("rate %llu\n", (unsigned long long)st.sample_rate);
  return 0;
}
C
check() { # binary profile
  out=$(HOME="$tmp" go tool pprof -top -sample_index=inuse_space -unit=B "$1" "$2" 2>&1)
  grep -qE '^ *3000000B .* leak_here$' <<<"$out" || { echo "FAIL: $1: leak_here not 3000000B"; echo "$out"; exit 1; }
  echo "ok $(basename "$1"): leak_here holds 3000000B"
}
cc -g "$tmp/app.c" $(pkg-config --cflags --libs palloc) -o "$tmp/app-shared"
run_out=$(LD_LIBRARY_PATH="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/shared.pb.gz" "$tmp/app-shared")
grep -q "rate 1" <<<"$run_out"
check "$tmp/app-shared" "$tmp/shared.pb.gz"
cc -g "$tmp/app.c" $(pkg-config --cflags palloc) "$lib/libpalloc.a" \
   $(pkg-config --static --libs palloc | sed 's/-lpalloc//') -o "$tmp/app-static"
if grep -q libpalloc <<<"$(ldd "$tmp/app-static" 2>&1)"; then echo "FAIL: app-static loads libpalloc.so"; exit 1; fi
run_out=$(PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/static.pb.gz" "$tmp/app-static")
grep -q "rate 1" <<<"$run_out"
check "$tmp/app-static" "$tmp/static.pb.gz"

# Both public headers are installed side by side, and the GC arena's API links from -lpalloc.
cat > "$tmp/gc.c" <<'C'
#include <palloc.h>
#include <palloc_gc.h>
int main(void) {
  palloc_gc_options_t o;
  palloc_gc_options_init(&o);
  palloc_gc_t *gc = palloc_gc_create(&o);
  void *p = gc ? palloc_gc_malloc(gc, 64) : NULL;
  if (gc) palloc_gc_destroy(gc);
  return p == NULL;
}
C
cc "$tmp/gc.c" $(pkg-config --cflags --libs palloc) -o "$tmp/gc"
LD_LIBRARY_PATH="$lib" "$tmp/gc" || { echo "FAIL: palloc_gc.h program"; exit 1; }
echo "ok gc: palloc_gc.h installed next to palloc.h"

# --as-needed, and the program's only allocations are strdup's: libpalloc must stay linked.
cat > "$tmp/dup.c" <<'C'
#include <stdio.h>
#include <string.h>
char *kept[1000];
__attribute__((noipa)) void dup_here(int i) { kept[i] = strdup("thirty-three bytes and its end..."); }
int main(void) {
  for (int i = 0; i < 1000; i++) dup_here(i);
  return puts(kept[999]) < 0;
}
C
cc -g -Wl,--as-needed "$tmp/dup.c" $(pkg-config --cflags --libs palloc) -o "$tmp/dup"
LD_LIBRARY_PATH="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/dup.pb.gz" "$tmp/dup" >/dev/null
[ -f "$tmp/dup.pb.gz" ] || { echo "FAIL: dup (--as-needed): no profile: libpalloc was dropped"; readelf -d "$tmp/dup" | grep NEEDED; exit 1; }
out=$(HOME="$tmp" go tool pprof -top -cum -sample_index=inuse_space -unit=B "$tmp/dup" "$tmp/dup.pb.gz" 2>&1)
grep -qE '^ *[0-9.]+B? +[0-9.]+% +[0-9.]+% +34000B .* dup_here$' <<<"$out" || { echo "FAIL: dup: dup_here not 34000B"; echo "$out"; exit 1; }
echo "ok dup (--as-needed, strdup only): dup_here holds 34000B"

# C++, --as-needed, with and without another allocator linked after libpalloc.
cxx_check() { # name, then the link flags after the source
  local name=$1; shift
  g++ -std=c++17 -O1 -g -Wl,--as-needed "$cxx_src" "$@" -o "$tmp/$name" -pthread
  rm -f "$tmp/$name.pb.gz"
  local rc=0
  LD_LIBRARY_PATH="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/$name.pb.gz" "$tmp/$name" ops \
    > "$tmp/$name.out" || rc=$?
  [ $rc -eq 0 ] || { echo "FAIL: $name: exit $rc"; cat "$tmp/$name.out"; exit 1; }
  [ -f "$tmp/$name.pb.gz" ] || { echo "FAIL: $name: no profile"; exit 1; }
  local out
  out=$(HOME="$tmp" go tool pprof -top -sample_index=alloc_objects "$tmp/$name" "$tmp/$name.pb.gz" 2>&1)
  grep -qE '^ *8000 .* new_object_here$' <<<"$out" || { echo "FAIL: $name: new_object_here not 8000 objects"; echo "$out" | head -12; exit 1; }
  echo "ok $name: new_object_here made 8000 objects"
}
cxx_check cxx-shared $(pkg-config --cflags --libs palloc)
cxx_check cxx-then-mimalloc $(pkg-config --cflags --libs palloc) -lmimalloc
cxx_check cxx-static $(pkg-config --cflags palloc) "$lib/libpalloc.a" \
  $(pkg-config --static --libs palloc | sed 's/-lpalloc//')

# Fully static programs (-static, libpalloc.a through `pkg-config --static --libs palloc`):
# libc.a's malloc.o must never be linked (a call to mallinfo2 or malloc_trim pulled it and the
# link failed on duplicate malloc), stacks must be real (built without frame pointers, the
# allocating function must be seen called from main: the frame-pointer walk stops at the first
# frame), and the profile must be written (no dlopen of zlib is possible). The program forks
# while a thread samples (children sample too), and a thread's allocations are counted.
cat > "$tmp/static.c" <<'C'
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
void *kept[1000], *kept_thread[500];
static atomic_int stop;
__attribute__((noipa)) void leak_here(int i) { kept[i] = malloc(3000); }
__attribute__((noipa)) void thread_here(int i) { kept_thread[i] = malloc(100); }
static void *churn(void *arg) {
  for (int i = 0; i < 500; i++) thread_here(i);
  while (!atomic_load(&stop)) free(malloc(64));
  return arg;
}
int main(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, churn, NULL) != 0) return 2;
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    if (pid == 0) { free(malloc(200)); _exit(0); }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 3;
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  for (int i = 0; i < 1000; i++) leak_here(i);
  struct mallinfo2 mi = mallinfo2();
  malloc_trim(0);
  printf("static ok, %s\n", mi.arena > 0 ? "arena" : "no arena");
  return 0;
}
C
static_check() { # binary profile function objects: FUNCTION made OBJECTS objects, called from main
  local out
  out=$(HOME="$tmp" go tool pprof -top -cum -sample_index=alloc_objects -focus="^$3\$" "$1" "$2" 2>&1)
  grep -qE "^ *$4 .* $3\$" <<<"$out" || { echo "FAIL: $1: $3 not $4 objects"; echo "$out" | head -20; exit 1; }
  grep -qE "^ *[0-9]+ +[0-9.]+% +[0-9.]+% +$4 +[0-9.]+% +(main|start_thread)\$" <<<"$out" || {
    echo "FAIL: $1: $3 not under main or start_thread (one-frame stacks?)"; echo "$out" | head -20; exit 1; }
  echo "ok $(basename "$1"): $3 made $4 objects, with its callers"
}
static_flags=(-O2 -fomit-frame-pointer -g $(pkg-config --cflags palloc))
cc -static "${static_flags[@]}" "$tmp/static.c" $(pkg-config --static --libs palloc) -pthread \
   -Wl,-Map,"$tmp/static.map" -o "$tmp/static" 2> "$tmp/static.ld" || { cat "$tmp/static.ld"; echo "FAIL: cc -static"; exit 1; }
if grep -q 'libc\.a(malloc\.o)' "$tmp/static.map"; then echo "FAIL: static links libc.a's malloc.o"; exit 1; fi
if grep -q INTERP <<<"$(readelf -l "$tmp/static")"; then echo "FAIL: static is not a static program"; exit 1; fi
rm -f "$tmp/static.pb.gz"
PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/static-run.pb.gz" timeout 60 "$tmp/static" > "$tmp/static.out" 2> "$tmp/static.err" \
  || { echo "FAIL: static: exit $?"; cat "$tmp/static.out" "$tmp/static.err"; exit 1; }
grep -q "static ok, arena" "$tmp/static.out" || { echo "FAIL: static: $(cat "$tmp/static.out")"; exit 1; }
if [ -s "$tmp/static.err" ]; then echo "FAIL: static wrote on stderr:"; cat "$tmp/static.err"; exit 1; fi
[ -f "$tmp/static-run.pb.gz" ] || { echo "FAIL: static: no profile"; exit 1; }
static_check "$tmp/static" "$tmp/static-run.pb.gz" leak_here 1000
static_check "$tmp/static" "$tmp/static-run.pb.gz" thread_here 500

# g++ -static, if libstdc++'s static archive is installed (tests/alloc/cxx.cc without `ops`,
# whose throwing new_handler cannot be met by a nothrow new in a static program: cxxops.c):
# main's 2,000 std::make_unique objects under main, the threads' vectors under start_thread.
if [ -f "$(g++ -print-file-name=libstdc++.a)" ]; then
  g++ -static -std=c++17 -O2 -fomit-frame-pointer -g "$cxx_src" $(pkg-config --cflags palloc) \
      $(pkg-config --static --libs palloc) -pthread -o "$tmp/cxx-full-static" 2> "$tmp/cxx-static.ld" \
    || { cat "$tmp/cxx-static.ld"; echo "FAIL: g++ -static"; exit 1; }
  PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/cxx-full-static.pb.gz" timeout 120 "$tmp/cxx-full-static" \
    > "$tmp/cxx-full-static.out" || { echo "FAIL: cxx-full-static: exit $?"; exit 1; }
  grep -q "caught 1000" "$tmp/cxx-full-static.out" || { echo "FAIL: cxx-full-static: exceptions"; exit 1; }
  static_check "$tmp/cxx-full-static" "$tmp/cxx-full-static.pb.gz" std::make_unique 2000
  out=$(HOME="$tmp" go tool pprof -top -cum -sample_index=alloc_objects -focus='_M_realloc_insert$' \
        "$tmp/cxx-full-static" "$tmp/cxx-full-static.pb.gz" 2>&1)
  grep -qE ' start_thread$' <<<"$out" || { echo "FAIL: cxx-full-static: threads' vectors not under start_thread"; echo "$out" | head -20; exit 1; }
  echo "ok cxx-full-static: the threads' vectors are under start_thread"
  # The program's first exception is its first lookup in libgcc's unwinder, unless palloc's
  # constructor made one: libgcc then sorts the FDEs with malloc under its lock, and a sample
  # of that malloc (the rate is set to 1 after the exception's own allocation) unwinding
  # through the same lock hung.
  cat > "$tmp/exc.cc" <<'CC'
#include <cstdio>
#include <palloc.h>
struct E { E() { palloc_set_sample_rate(1); } };
__attribute__((noinline)) void thrower() { throw E(); }
int main() {
  int caught = 0;
  try { thrower(); } catch (const E &) { caught++; }
  std::printf("caught %d\n", caught);
  return caught == 1 ? 0 : 1;
}
CC
  g++ -static -O1 "$tmp/exc.cc" $(pkg-config --cflags palloc) $(pkg-config --static --libs palloc) \
      -o "$tmp/exc-static" 2> "$tmp/exc.ld" || { cat "$tmp/exc.ld"; echo "FAIL: g++ -static exc"; exit 1; }
  PALLOC_SAMPLE_RATE=0 timeout 20 "$tmp/exc-static" > /dev/null \
    || { echo "FAIL: exc-static: exit $? (124: hung in libgcc's unwinder)"; exit 1; }
  echo "ok exc-static: a first exception whose FDE sort is sampled does not hang"
else
  echo "skip g++ -static: no libstdc++.a"
fi
