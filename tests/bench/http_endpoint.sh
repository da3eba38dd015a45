#!/usr/bin/env bash
# http_endpoint.sh BUILD_DIR [SECONDS] - PALLOC_HTTP's cost to a program (http_endpoint.c):
# a heap profile of 16384 buckets served while one thread allocates, the thread's malloc
# latencies with no endpoint, an idle endpoint, and a scrape of /debug/pprof/heap every second
# (time to first byte and total per scrape, by curl).
set -eu
build=$(realpath "$1"); secs=${2:-10}
src=$(dirname "$0")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -g -fno-omit-frame-pointer -o "$tmp/prog" "$src/http_endpoint.c" -I"$src/../../alloc/include" \
  -L"$build/alloc" -Wl,-rpath,"$build/alloc" -lpalloc
echo "== no endpoint"; "$tmp/prog" "$secs"
echo "== endpoint idle"; PALLOC_HTTP=127.0.0.1:0 "$tmp/prog" "$secs" 2>/dev/null
echo "== endpoint, /debug/pprof/heap scraped every second"
PALLOC_HTTP=127.0.0.1:0 "$tmp/prog" "$secs" 2>"$tmp/err" &
pid=$!
for _ in $(seq 50); do grep -q serving "$tmp/err" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$tmp/err")
sleep 1
# the server thread: the process's thread other than main (the program allocates on main)
srv=$(ls /proc/$pid/task | grep -vx "$pid" | head -1)
ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/task/$srv/stat" 2>/dev/null || echo 0; }
t0=$(ticks); n=0
while kill -0 $pid 2>/dev/null; do
  curl -s -o "$tmp/heap.pb.gz" -w 'scrape: first byte %{time_starttransfer} s, total %{time_total} s, %{size_download} bytes\n' \
    "http://127.0.0.1:$port/debug/pprof/heap" || true
  n=$((n + 1)); t1=$(ticks)
  sleep 1
done
wait $pid
echo "server thread CPU: $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) / n )) ms per scrape ($n scrapes)"
