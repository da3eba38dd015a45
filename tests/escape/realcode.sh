#!/usr/bin/env bash
# tests/escape/realcode.sh [fetch|build|measure|hot|all] [PROJECT...] - palloc-escape on real code.
#
# Not part of CI (it downloads sources and builds them): the measurement behind issue 18.
#   fetch    Debian's source packages through a private apt configuration under the cache (its
#            own sources list with a deb-src entry, lists and cache: the system's apt sources
#            are left alone, as alloc/mimalloc/fetch.sh does), unpacked with dpkg-source.
#   build    each project's compile_commands.json, recorded by bear around the project's own
#            build (at -O0: the flags that matter to the analysis are the -D/-I ones).
#   measure  for each project: the C files of the database, the time of `clang-14 -fsyntax-only`
#            over the same database, the time of `palloc-escape -p` (cold cache, then warm),
#            the candidates, and the escaping allocation sites. Results go to
#            CACHE/results/PROJECT.{txt,stats}; a summary table on stdout.
#   hot      zlib, lz4, redis run under libpalloc (build/alloc/libpalloc.so): minigzip and lz4
#            compress 27 MB, redis-server serves a short redis-benchmark; then
#            `palloc-escape --profile` lists the candidates and the top escaping sites
#            (CACHE/results/PROJECT.hot).
# The cache is $PALLOC_ESCAPE_REAL (default: .cache/escape-real in the repository).
# PALLOC_ESCAPE is the tool (default build/escape/palloc-escape).
# Projects: zlib lz4 git sqlite3 redis stb (stb: header-only, analysed through a .c file that
# defines the implementation macros, as its users compile it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${PALLOC_ESCAPE_REAL:-$repo/.cache/escape-real}
tool=${PALLOC_ESCAPE:-$repo/build/escape/palloc-escape}
suite=${PALLOC_ESCAPE_SUITE:-bookworm}
stage=${1:-all}
[ $# -gt 0 ] && shift
projects=("$@")
[ ${#projects[@]} -eq 0 ] && projects=(zlib lz4 git sqlite3 redis stb)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
say() { echo "realcode: $*" >&2; }

srcpkg() { case $1 in stb) echo libstb ;; *) echo "$1" ;; esac; }

fetch() {
  local p=$1 pkg apt
  pkg=$(srcpkg "$p")
  [ -f "$cache/$p/.ready" ] && return 0
  apt=$cache/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/pkg"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
              -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -qq)
  [ -n "$(ls "$apt/lists" | grep -i sources || true)" ] || apt-get "${opts[@]}" update >&2
  say "fetching $pkg"
  (cd "$cache/pkg" && apt-get "${opts[@]}" source --download-only "$pkg" >&2)
  local dsc
  dsc=$(ls -t "$cache/pkg/${pkg}_"*.dsc | head -1)
  rm -rf "$cache/$p"
  dpkg-source --no-copy -x "$dsc" "$cache/$p" > "$cache/$p.unpack.log" 2>&1
  touch "$cache/$p/.ready"
}

build() {
  local p=$1 d=$cache/$p
  [ -f "$d/compile_commands.json" ] && return 0
  say "building $p"
  case $p in
    zlib) (cd "$d" && CFLAGS=-O0 ./configure --static >/dev/null && bear -- make -j2 libz.a >/dev/null) ;;
    lz4) (cd "$d" && bear -- make -j2 -C lib liblz4.a CFLAGS=-O0 >/dev/null &&
          bear --append -- make -j2 -C programs lz4 CFLAGS=-O0 >/dev/null) ;;
    git) (cd "$d" && bear -- make -j2 -k CFLAGS=-O0 NO_CURL=1 NO_EXPAT=1 NO_TCLTK=1 NO_GETTEXT=1 \
            NO_PERL=1 NO_PYTHON=1 NO_OPENSSL=1 libgit.a xdiff/lib.a >/dev/null 2>&1 || true) ;;
    sqlite3) (cd "$d" && mkdir -p bld && cd bld && ../configure --disable-tcl >/dev/null &&
              make sqlite3.c >/dev/null &&
              bear -- gcc -O0 -c -DSQLITE_THREADSAFE=1 sqlite3.c -o sqlite3.o &&
              mv compile_commands.json ..) ;;
    redis) (cd "$d" && bear -- make -j2 -k MALLOC=libc OPTIMIZATION=-O0 BUILD_TLS=no \
              USE_SYSTEMD=no >/dev/null 2>&1 || true) ;;
    stb) # every stb library that needs an implementation macro, compiled as its users do
      (cd "$d" && mkdir -p bld && : > bld/files &&
       for h in stb_*.h; do
         m=$(grep -o '#ifdef STB_[A-Z_]*_IMPLEMENTATION' "$h" | head -1 | cut -d' ' -f2) || true
         [ -n "$m" ] || continue
         printf '#define %s\n#include "../%s"\n' "$m" "$h" > "bld/${h%.h}.c"
         echo "bld/${h%.h}.c" >> bld/files
       done
       bear -- sh -c 'while read f; do gcc -O0 -c -w "$f" -o "${f%.c}.o" || true; done < bld/files' \
         >/dev/null 2>&1 || true) ;;
    *) say "unknown project $p"; return 1 ;;
  esac
  [ -f "$d/compile_commands.json" ] || { say "$p: no compile_commands.json"; return 1; }
}

# seconds of wall time of a command, its output discarded
timeit() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N);
           echo "$t1 - $t0" | bc; }

syntax_only() { # clang-14 -fsyntax-only over the C entries of a database, one after the other
  python3 - "$1" <<'EOF'
import json, subprocess, sys, os, shlex
db = json.load(open(os.path.join(sys.argv[1], 'compile_commands.json')))
for e in db:
    if not e['file'].endswith('.c'): continue
    args = e.get('arguments') or shlex.split(e['command'])
    out = []
    skip = False
    for a in args[1:]:
        if skip: skip = False; continue
        if a == '-o': skip = True; continue
        if a == '-c': continue
        out.append(a)
    subprocess.run(['clang-14', '-fsyntax-only', '-w'] + out, cwd=e['directory'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
EOF
}

measure() {
  local p=$1 d=$cache/$p r=$cache/results
  mkdir -p "$r"
  local files
  files=$(python3 -c "import json,sys; print(sum(1 for e in json.load(open(sys.argv[1])) if e['file'].endswith('.c')))" "$d/compile_commands.json")
  local ts tc tw
  ts=$(timeit syntax_only "$d")
  rm -rf "$d/.palloc-escape-cache"
  tc=$(timeit "$tool" -p "$d" --cache "$d/.palloc-escape-cache")
  tw=$(timeit "$tool" -p "$d" --cache "$d/.palloc-escape-cache")
  "$tool" -p "$d" --cache "$d/.palloc-escape-cache" -m=2 > "$r/$p.txt" 2> "$r/$p.err" || true
  local cand esc fail
  cand=$(grep -c ': .* does not escape$' "$r/$p.txt" || true)
  esc=$(grep -c ' escapes to heap: ' "$r/$p.txt" || true)
  fail=$(grep -o '[0-9]* of [0-9]* file(s) failed' "$r/$p.err" || echo "0 failed")
  printf '%-8s files=%-4s syntax-only=%6.1fs escape(cold)=%6.1fs (%.1fx) escape(warm)=%5.1fs candidates=%-4s escaping=%-5s %s\n' \
    "$p" "$files" "$ts" "$tc" "$(echo "$tc / $ts" | bc -l)" "$tw" "$cand" "$esc" "$fail" | tee "$r/$p.stats"
}

hot() {
  local p=$1 d=$cache/$p r=$cache/results lib=$repo/build/alloc/libpalloc.so w=$cache/hot
  mkdir -p "$w" "$r"
  [ -f "$w/input.txt" ] || head -c 20000000 /dev/urandom | base64 > "$w/input.txt"
  rm -f "$w/$p.pb.gz"
  case $p in
    zlib)
      gcc -O0 -g -w -I"$d" "$d/test/minigzip.c" "$d"/{adler32,crc32,deflate,inflate,inffast,inftrees,trees,zutil,gzlib,gzread,gzwrite,gzclose,compress,uncompr}.c \
        -o "$w/minigzip"
      cp "$w/input.txt" "$w/z.txt"
      LD_PRELOAD=$lib PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE=$w/$p.pb.gz "$w/minigzip" -f "$w/z.txt" ;;
    lz4)
      gcc -O0 -g -I"$d/lib" "$d"/programs/{lz4cli,lz4io,bench,datagen}.c "$d"/lib/{lz4,lz4hc,lz4frame,xxhash}.c \
        -o "$w/lz4" -lpthread
      LD_PRELOAD=$lib PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE=$w/$p.pb.gz "$w/lz4" -f -q "$w/input.txt" "$w/input.lz4" ;;
    redis)
      local port=16399
      LD_PRELOAD=$lib PALLOC_SAMPLE_RATE=4096 PALLOC_PROFILE=$w/$p.pb.gz \
        "$d/src/redis-server" --port $port --save "" --appendonly no > "$w/redis.log" 2>&1 &
      sleep 2
      "$d/src/redis-benchmark" -p $port -n 20000 -q -c 4 -t set,get,lpush,lpop,sadd,hset,zadd,lrange_100 > /dev/null 2>&1 || true
      "$d/src/redis-cli" -p $port shutdown nosave > /dev/null 2>&1 || true
      wait ;;
    *) say "hot: no workload for $p"; return 0 ;;
  esac
  "$tool" -p "$d" --cache "$d/.palloc-escape-cache" --profile "$w/$p.pb.gz" --top 5 > "$r/$p.hot" 2> "$r/$p.hot.err" || true
  tail -1 "$r/$p.hot.err"
  sed "s|$d/||" "$r/$p.hot" | grep -v 'not in the profile'
}

for p in "${projects[@]}"; do
  case $stage in
    hot) hot "$p" ;;
    fetch) fetch "$p" ;;
    build) fetch "$p" && build "$p" ;;
    measure) measure "$p" ;;
    all) fetch "$p" && build "$p" && measure "$p" ;;
    *) echo "usage: $0 [fetch|build|measure|hot|all] [PROJECT...]" >&2; exit 2 ;;
  esac
done
