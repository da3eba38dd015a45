#!/usr/bin/env bash
# After `meson install`, `cc app.c $(pkg-config --cflags --libs palloc)` builds a program that is
# profiled (shared libpalloc), and linking libpalloc.a statically works too. Both profiles are
# read with go tool pprof and must show the leaking function with its exact in-use bytes.
set -euo pipefail
build=$1 tmp=$2
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
