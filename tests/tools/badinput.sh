#!/usr/bin/env bash
# badinput.sh PALLOC MKPROFILE - bad profiles give one line on stderr naming the file and the
# problem, exit 1, and never a crash (a signal would show as exit >= 128), for every command
# that reads profiles: missing, a directory, empty, truncated gzip, corrupt gzip, random bytes,
# a corrupted protobuf, a CPU profile (not a heap profile), dangling ids, a missing sample type.
set -u
palloc=$1 mkprofile=$2
. "$(dirname "$0")/lib.sh" # $d, fail, finish
"$mkprofile" heap "$d/good.pb.gz" 300 || exit 1
"$mkprofile" cpu "$d/cpu.pb.gz" 50 || exit 1
"$mkprofile" allocs "$d/allocs.pb.gz" 50 || exit 1
"$mkprofile" dangling "$d/dangling.pb.gz" 50 || exit 1
: > "$d/empty.pb.gz"
size=$(stat -c %s "$d/good.pb.gz")
head -c $((size / 2)) "$d/good.pb.gz" > "$d/truncated.pb.gz"
{ head -c 40 "$d/good.pb.gz"; head -c 200 /dev/zero | tr '\0' 'x'; } > "$d/corruptgz.pb.gz"
printf 'this is not a profile at all, just text\n' > "$d/text.pb.gz"
gzip -dc "$d/good.pb.gz" > "$d/good.pb"
# flip bytes in the middle of the raw protobuf: wire-format damage
python3 - "$d/good.pb" "$d/corrupt.pb" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
for i in range(len(b) // 3, len(b) // 3 + 12):
    b[i] = 0xff
open(sys.argv[2], 'wb').write(bytes(b))
PY
head -c $(( $(stat -c %s "$d/good.pb") - 7 )) "$d/good.pb" > "$d/truncated.pb"
mkdir "$d/dir.pb.gz"

check() { # check WANT_IN_MESSAGE FILE CMD...  (LASTLINE=1: warnings may come before)
  local want=$1 file=$2
  shift 2
  local err code
  "$@" > /dev/null 2> "$d/err"; code=$?
  [ "${LASTLINE:-}" = 1 ] && { tail -n 1 "$d/err" > "$d/err1"; mv "$d/err1" "$d/err"; }
  err=$(cat "$d/err")
  if [ "$code" -ge 128 ] || [ "$code" = 0 ]; then
    fail "$*: exit $code"; return
  fi
  if [ "$(wc -l < "$d/err")" != 1 ]; then
    fail "$*: stderr is not one line: $err"; return
  fi
  case "$err" in
    *"$file"*"$want"*) echo "ok: $err" ;;
    *) fail "$*: message should name $file and say '$want': $err" ;;
  esac
}
declare -A why=(
  [missing.pb.gz]="No such file" [dir.pb.gz]="not a regular file" [empty.pb.gz]="empty file"
  [truncated.pb.gz]="gzip" [corruptgz.pb.gz]="gzip" [text.pb.gz]="not a pprof profile"
  [corrupt.pb]="not a pprof profile" [truncated.pb]="not a pprof profile"
  [cpu.pb.gz]="not a heap profile" [dangling.pb.gz]="missing location"
)
for f in "${!why[@]}"; do
  p="$d/$f"
  for c in top flame folded; do check "${why[$f]}" "$p" "$palloc" "$c" "$p"; done
  check "${why[$f]}" "$p" "$palloc" diff "$d/good.pb.gz" "$p"
  check "${why[$f]}" "$p" "$palloc" diff "$p" "$d/good.pb.gz"
  case $f in cpu.pb.gz) ;; *) check "${why[$f]}" "$p" "$palloc" symbolize "$p" "$d/out.pb.gz" ;; esac
done
# a profile without the asked-for sample type
check 'no sample type "inuse_space"' "$d/allocs.pb.gz" "$palloc" top -i inuse_space "$d/allocs.pb.gz"
check 'no sample type "inuse_space"' "$d/allocs.pb.gz" "$palloc" diff "$d/allocs.pb.gz" "$d/allocs.pb.gz"
# an unwritable output
LASTLINE=1 check "cannot create" "$d/nodir/out.pb.gz" "$palloc" symbolize "$d/good.pb.gz" "$d/nodir/out.pb.gz"
# and the good ones still work, raw protobuf included
for p in "$d/good.pb.gz" "$d/good.pb"; do
  if ! "$palloc" top "$p" > /dev/null; then fail "top $p"; fi
done
finish
