#!/usr/bin/env bash
# debugfiles.sh PALLOC LIBPALLOC SRC - symbols and lines of a stripped program from its separate
# debug file: found by GNU build id in a .build-id tree (PALLOC_DEBUG_DIRS), by .gnu_debuglink
# next to the program, and with its debug sections compressed (objcopy
# --compress-debug-sections=zlib, what gcc -gz makes). Each both in the process (libpalloc) and
# offline (`palloc symbolize` of a PALLOC_SYMBOLIZE=none profile). Without the debug file the
# program's static functions have no name at all (the check that the test can fail).
set -u
palloc=$1 lib=$2 src=$3
. "$(dirname "$0")/lib.sh" # $d, fail, finish
command -v objcopy > /dev/null || { echo "no objcopy: skipped"; exit 77; }
cc -g -O1 -fno-inline -Wl,--build-id -o "$d/full" "$src" || exit 1
id=$(readelf -n "$d/full" | sed -n 's/.*Build ID: //p')
[ -n "$id" ] || { fail "no build id"; finish; exit; }
objcopy --only-keep-debug "$d/full" "$d/prog.debug"
objcopy --compress-debug-sections=zlib "$d/prog.debug" "$d/prog.gz.debug"
readelf -S "$d/prog.gz.debug" | grep -A1 '\.debug_line' | grep -q 'C' || fail "debug_line not compressed"
objcopy --strip-all "$d/full" "$d/stripped"

names() { # PROFILE: the static functions' rows, with their lines
  "$palloc" top --all --lines --unit B "$1" | grep -Eo '(fill_cache|build_table) [^ ]*debugprog\.c:[0-9]+' | sort -u
}
profile() { # DIR-OF-PROGRAM EXTRA-ENV... : runs the stripped program from there, prints names
  local dir=$1; shift
  env "$@" LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE="$d/p.pb.gz" "$dir/prog" > /dev/null \
    || fail "run $dir"
  names "$d/p.pb.gz"
}
offline() { # DIR EXTRA-ENV...: PALLOC_SYMBOLIZE=none, then palloc symbolize
  local dir=$1; shift
  env "$@" LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE=1 PALLOC_SYMBOLIZE=none PALLOC_PROFILE="$d/r.pb.gz" \
    "$dir/prog" > /dev/null || fail "run $dir"
  env "$@" "$palloc" symbolize "$d/r.pb.gz" "$d/s.pb.gz" 2> /dev/null || fail "symbolize $dir"
  names "$d/s.pb.gz"
}
want=$(mkdir -p "$d/full.d" && cp "$d/full" "$d/full.d/prog" && profile "$d/full.d")
[ "$(wc -l <<< "$want")" = 2 ] || fail "unstripped program: names $want"

mkdir -p "$d/none" && cp "$d/stripped" "$d/none/prog"
got=$(profile "$d/none" PALLOC_DEBUG_DIRS="$d/nowhere")
[ -z "$got" ] && echo "ok: stripped, no debug file: no names" || fail "names without a debug file: $got"

for kind in plain gz; do
  dbg=$d/prog.debug
  [ $kind = gz ] && dbg=$d/prog.gz.debug
  # by build id under PALLOC_DEBUG_DIRS
  mkdir -p "$d/bid-$kind/.build-id/${id:0:2}" "$d/bid-$kind/bin"
  cp "$dbg" "$d/bid-$kind/.build-id/${id:0:2}/${id:2}.debug"
  cp "$d/stripped" "$d/bid-$kind/bin/prog"
  for how in profile offline; do
    got=$($how "$d/bid-$kind/bin" PALLOC_DEBUG_DIRS="$d/nowhere:$d/bid-$kind")
    [ "$got" = "$want" ] && echo "ok: $kind debug file by build id ($how)" \
      || fail "$kind by build id ($how): got [$got] want [$want]"
  done
  # by .gnu_debuglink, next to the program
  mkdir -p "$d/link-$kind"
  objcopy --add-gnu-debuglink="$dbg" "$d/stripped" "$d/link-$kind/prog"
  cp "$dbg" "$d/link-$kind/"
  for how in profile offline; do
    got=$($how "$d/link-$kind")
    [ "$got" = "$want" ] && echo "ok: $kind debug file by debuglink ($how)" \
      || fail "$kind by debuglink ($how): got [$got] want [$want]"
  done
done
# a debug file of another build (same name, other build id) is not used
cc -g -O1 -fno-inline -DOTHER -Wl,--build-id=sha1 -o "$d/other" -x c - <<< 'int main(void){return 0;}'
mkdir -p "$d/stale" && objcopy --only-keep-debug "$d/other" "$d/stale/prog.debug"
objcopy --add-gnu-debuglink="$d/prog.debug" "$d/stripped" "$d/stale/prog"
got=$(profile "$d/stale")
[ -z "$got" ] && echo "ok: a debug file of another build is not used" || fail "stale debug file used: $got"
finish
