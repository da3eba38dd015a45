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
  echo "$out" | grep -qE '^ *3000000B .* leak_here$' || { echo "FAIL: $1: leak_here not 3000000B"; echo "$out"; exit 1; }
  echo "ok $(basename "$1"): leak_here holds 3000000B"
}
cc -g "$tmp/app.c" $(pkg-config --cflags --libs palloc) -o "$tmp/app-shared"
LD_LIBRARY_PATH="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/shared.pb.gz" "$tmp/app-shared" | grep -q "rate 1"
check "$tmp/app-shared" "$tmp/shared.pb.gz"
cc -g "$tmp/app.c" $(pkg-config --cflags palloc) "$lib/libpalloc.a" \
   $(pkg-config --static --libs palloc | sed 's/-lpalloc//') -o "$tmp/app-static"
if ldd "$tmp/app-static" | grep -q libpalloc; then echo "FAIL: app-static loads libpalloc.so"; exit 1; fi
PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$tmp/static.pb.gz" "$tmp/app-static" | grep -q "rate 1"
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
echo "$out" | grep -qE '^ *[0-9.]+B? +[0-9.]+% +[0-9.]+% +34000B .* dup_here$' || { echo "FAIL: dup: dup_here not 34000B"; echo "$out"; exit 1; }
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
  echo "$out" | grep -qE '^ *8000 .* new_object_here$' || { echo "FAIL: $name: new_object_here not 8000 objects"; echo "$out" | head -12; exit 1; }
  echo "ok $name: new_object_here made 8000 objects"
}
cxx_check cxx-shared $(pkg-config --cflags --libs palloc)
cxx_check cxx-then-mimalloc $(pkg-config --cflags --libs palloc) -lmimalloc
cxx_check cxx-static $(pkg-config --cflags palloc) "$lib/libpalloc.a" \
  $(pkg-config --static --libs palloc | sed 's/-lpalloc//')
