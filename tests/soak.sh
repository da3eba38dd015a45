#!/usr/bin/env bash
# tests/soak.sh [MINUTES] [BUILD_DIR] - a long run of libpalloc inside programs no one here wrote,
# the way users run it; not a CI test (issue 12 asks for an hour: `tests/soak.sh 60`).
#
# Each round, until MINUTES have passed, with libpalloc preloaded:
#   redis     redis-server with interval snapshots, loaded by redis-benchmark (8 clients in
#             parallel, pipelined, several commands), BGSAVE forks during the load, SIGUSR2
#             snapshots on top; it must answer PING after the load;
#   storm     sqlite3 building and querying a table while SIGUSR2 (snapshot) and SIGWINCH
#             (no handler) arrive every few milliseconds, at rates 1, 4096 and the default;
#   threads   python3 with 8 threads allocating and a fork in the middle;
#   gcc       make -j2 compiling a small C project with gcc.
# Rates alternate between rounds (default, 4096, 1 where the program stays fast enough), and so
# does the thread cache. Every program must exit as it does without palloc (status compared),
# within a time limit (a hang fails the round), and every profile written must be readable
# (palloc top). Ends with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
minutes=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build}
lib=$build/alloc/libpalloc.so
palloc=$build/tools/palloc/palloc
for t in redis-server redis-benchmark redis-cli sqlite3 python3 gcc make; do
  command -v "$t" >/dev/null || { echo "soak: $t is missing (apt-get install redis-server sqlite3)"; exit 2; }
done
[ -f "$lib" ] && [ -x "$palloc" ] || { echo "soak: build $build first"; exit 2; }
d=$(mktemp -d /tmp/palloc-soak.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$d"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL (round $round, $rate, tcache $tc): $*"; }
check_profiles() { # dir label
  local n=0 f
  for f in "$1"/*.pb.gz; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    "$palloc" top -n 3 "$f" > "$d/top.txt" 2>&1 || { bad "$2: unreadable profile $(basename "$f"): $(head -c 200 "$d/top.txt")"; return; }
  done
  if [ "$n" -gt 0 ]; then ok; else bad "$2: no profile written"; fi
}

redis_round() {
  local port=$((20000 + RANDOM % 20000)) out=$d/redis
  rm -rf "$out"; mkdir -p "$out"
  env LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE="$rate" PALLOC_TCACHE="$tc" \
    PALLOC_PROFILE="$out/heap.%p.pb.gz" PALLOC_PROFILE_INTERVAL=5 PALLOC_PROFILE_SIGNAL=USR2 \
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
    --daemonize no > "$out/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  ( for _ in $(seq 20); do sleep 1; kill -USR2 "$pid" 2>/dev/null; redis-cli -p "$port" bgsave >/dev/null 2>&1; done ) &
  local side=$!
  timeout 120 redis-benchmark -p "$port" -q -c 8 -P 16 -n 200000 -r 100000 -d 256 \
    -t set,get,incr,lpush,rpop,sadd,hset,zadd,mset > "$out/bench.txt" 2>&1 \
    || bad "redis-benchmark failed or hung: $(tail -c 300 "$out/bench.txt")"
  wait "$side" 2>/dev/null
  if [ "$(redis-cli -p "$port" ping 2>&1)" = PONG ]; then ok; else bad "redis-server stopped answering"; fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
  if timeout 30 tail --pid="$pid" -f /dev/null; then ok; else bad "redis-server did not exit"; kill -9 "$pid"; fi
  check_profiles "$out" redis
}

storm_round() {
  local out=$d/storm
  rm -rf "$out"; mkdir -p "$out"
  local sql="create table t(a integer primary key, b text, c blob);
with recursive n(i) as (select 1 union all select i+1 from n where i < 200000)
insert into t select i, hex((i * 2654435761) % 1000003) || hex(i), zeroblob(i % 300) from n;
create index tb on t(b); select count(*), sum(length(c)) from t where b > 'A';
select a, b from t order by b desc limit 3 offset 1000;"
  local want; want=$(sqlite3 :memory: "$sql" 2>&1 | md5sum)
  env LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE="$rate" PALLOC_TCACHE="$tc" \
    PALLOC_PROFILE="$out/heap.%p.pb.gz" PALLOC_PROFILE_SIGNAL=USR2 \
    sqlite3 :memory: "$sql" > "$out/out.txt" 2>&1 &
  local pid=$!
  # The storm starts once the program is running (before libpalloc's start-up has installed the
  # USR2 handler, USR2's default action would end it, with or without palloc).
  ( sleep 0.3; while kill -0 "$pid" 2>/dev/null; do kill -USR2 "$pid" 2>/dev/null; kill -WINCH "$pid" 2>/dev/null; sleep 0.005; done ) &
  local side=$!
  if timeout 300 tail --pid="$pid" -f /dev/null; then ok; else bad "sqlite3 hung under a signal storm"; kill -9 "$pid"; fi
  wait "$pid"; local st=$?
  kill "$side" 2>/dev/null; wait "$side" 2>/dev/null
  if [ "$st" = 0 ] && [ "$(md5sum < "$out/out.txt")" = "$want" ]; then ok; else bad "sqlite3 exit $st or different output: $(head -c 300 "$out/out.txt")"; fi
  check_profiles "$out" sqlite3
}

threads_round() {
  local out=$d/threads
  rm -rf "$out"; mkdir -p "$out"
  local prog='
import os, threading, random
def work(k):
    keep = []
    for i in range(60000):
        keep.append(bytes(random.randrange(1, 3000)))
        if len(keep) > 500: keep.pop(random.randrange(len(keep)))
    return len(keep)
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ts]
pid = os.fork()
if pid == 0:
    work(0); os._exit(7)
[t.join() for t in ts]
_, st = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(st))'
  if timeout 300 env LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE="$rate" PALLOC_TCACHE="$tc" \
      PALLOC_PROFILE="$out/heap.%p.pb.gz" PYTHONMALLOC=malloc python3 -c "$prog" > "$out/out.txt" 2>&1 \
      && grep -q "child 7" "$out/out.txt"; then ok; else bad "python3 threads+fork: $(tail -c 300 "$out/out.txt")"; fi
  check_profiles "$out" python3
}

gcc_round() {
  local out=$d/gcc
  rm -rf "$out"; mkdir -p "$out/src"
  for i in $(seq 24); do
    printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint f%d(int n){char*b=malloc(n+1);memset(b,%d,n);int s=0;for(int i=0;i<n;i++)s+=b[i];free(b);return s;}\n' "$i" "$i" > "$out/src/f$i.c"
  done
  printf 'int main(void){return 0;}\n' > "$out/src/main.c"
  printf 'SRCS := $(wildcard *.c)\nprog: $(SRCS:.c=.o)\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O2 -g -c $< -o $@\n' > "$out/src/Makefile"
  if timeout 300 env LD_PRELOAD="$lib" PALLOC_SAMPLE_RATE="$rate" PALLOC_TCACHE="$tc" \
      PALLOC_PROFILE="$out/heap.%p.pb.gz" make -s -j2 -C "$out/src" > "$out/make.txt" 2>&1 \
      && [ -x "$out/src/prog" ]; then ok; else bad "make -j2 with gcc: $(tail -c 300 "$out/make.txt")"; fi
  check_profiles "$out" gcc
}

end=$(( $(date +%s) + minutes * 60 ))
round=0
rates=(524288 4096 1)
while [ "$(date +%s)" -lt "$end" ] || [ "$round" = 0 ]; do
  rate=${rates[$((round % 3))]}
  tc=$(( (round / 3) % 2 ))
  [ "$rate" = 1 ] && r_redis=4096 || r_redis=$rate
  rate=$r_redis redis_round
  storm_round
  rate=$r_redis threads_round
  gcc_round
  round=$((round + 1))
  echo "soak: round $round done ($(date +%T)): $passed passed, $failed failed"
done
echo "soak: $round rounds in $minutes minutes"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
