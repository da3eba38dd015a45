#!/usr/bin/env bash
# libpalloc, preloaded into every process, loads what only a profile write needs (zlib) at the
# first write, libunwind (and its liblzma) only for a stack that palloc's own .eh_frame walk
# leaves to it (alloc/cfi.c) or under PALLOC_UNWIND=libunwind, and never protobuf-c (palloc
# encodes profiles itself: proto/encode.c):
#  1. libpalloc.so's NEEDED list holds none of them;
#  2. a preloaded program that samples nothing and writes no profile maps none of them;
#  3. a program that samples and writes profiles (a snapshot from the writer thread, then one at
#     exit) loads zlib then and not libunwind, and both profiles are valid (read back by
#     `palloc top`) with stacks of several frames;
#  4. the same under PALLOC_UNWIND=libunwind loads libunwind at its first sample.
# Usage: check_lazy_deps.sh LIBPALLOC_SO PALLOC_TOOL OUTDIR
set -euo pipefail
lib=$1 tool=$2 out=$3
rm -rf "$out" && mkdir -p "$out"
unset PALLOC_PROFILE PALLOC_PROFILE_SIGNAL PALLOC_PROFILE_INTERVAL
lazy='libz\.so|libprotobuf-c|libunwind|liblzma'
fail() { echo "FAIL: $*"; exit 1; }

needed=$(readelf -d "$lib" | grep NEEDED || true)
if grep -qE "$lazy" <<<"$needed"; then fail "libpalloc.so needs at load time:"$'\n'"$needed"; fi
echo "ok: libpalloc.so NEEDED: $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"

maps=$(LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE=0 cat /proc/self/maps)
grep -q libpalloc <<<"$maps" || fail "libpalloc is not mapped in the preloaded cat"
if grep -qE "$lazy" <<<"$maps"; then
  fail "a program that writes no profile maps:"$'\n'"$(echo "$maps" | grep -E "$lazy")"
fi
echo "ok: a preloaded program that samples nothing, writes no profile maps none of them"

# sh (every allocation sampled) waits for the writer thread's first snapshot (due after 1 s;
# renamed into place once written, so zlib is loaded by then), then prints its own maps, then
# writes the exit profile. It waits for the file rather than a fixed time: a loaded machine can
# delay the snapshot.
LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE_INTERVAL=1 PALLOC_PROFILE="$out/heap.pb.gz" \
  sh -c 'i=0; while [ ! -e "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
         cat /proc/$$/maps' sh "$out/heap.0001.pb.gz" > "$out/maps.txt"
grep -qE 'libz\.so' "$out/maps.txt" || fail "no zlib in the maps of a program that wrote a snapshot"
if grep -qE 'libunwind|liblzma' "$out/maps.txt"; then
  fail "libunwind was loaded by a program whose stacks the .eh_frame walk takes"
fi
if grep -q 'libprotobuf-c' "$out/maps.txt"; then fail "protobuf-c was loaded to write a profile"; fi
echo "ok: the first write loaded zlib (and no libunwind, no protobuf-c)"
maps=$(LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_UNWIND=libunwind cat /proc/self/maps)
grep -q 'libunwind' <<<"$maps" || fail "no libunwind in the maps of a program that sampled under PALLOC_UNWIND=libunwind"
echo "ok: under PALLOC_UNWIND=libunwind the first sample loaded libunwind"
for f in "$out/heap.0001.pb.gz" "$out/heap.pb.gz"; do
  [ -s "$f" ] || fail "no profile $f"
  "$tool" top -n 3 "$f" > "$out/top.txt" || fail "palloc top cannot read $f"
  echo "ok: $(basename "$f") is a valid profile"
done
