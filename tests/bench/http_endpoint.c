/* http_endpoint.c - what serving a heap profile costs a program (PALLOC_HTTP, alloc/http.c).
 *
 * Run under libpalloc with PALLOC_HTTP set (http_endpoint.sh does): first it makes BUCKETS
 * distinct sampled stacks (a 14-level binary recursion: 2^14 paths, one live block each, taken
 * with palloc_sample_alloc, so every one is sampled whatever the rate), then one thread
 * allocates and frees (16 to 4096 bytes, the default rate) for SECONDS and records the latency
 * of every malloc; it prints the count, the 99.99th percentile and the worst. A scraper (the
 * script) fetches /debug/pprof/heap meanwhile, or not.
 * usage: http_endpoint SECONDS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "palloc.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *keep[1 << 14];
static int nkeep;

__attribute__((noinline)) static void leaf(void) {
  keep[nkeep++] = palloc_sample_alloc(64);
  __asm__ volatile("" ::: "memory");
}
static void pick(int depth, unsigned path);
__attribute__((noinline)) static void left(int depth, unsigned path) { pick(depth - 1, path >> 1); __asm__ volatile(""); }
__attribute__((noinline)) static void right(int depth, unsigned path) { pick(depth - 1, path >> 1); __asm__ volatile(""); }
__attribute__((noinline)) static void pick(int depth, unsigned path) {
  if (depth == 0) leaf();
  else if (path & 1) right(depth, path);
  else left(depth, path);
  __asm__ volatile("");
}

static int cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 10;
  palloc_set_sample_rate(1);
  for (unsigned p = 0; p < (1u << 14); p++) pick(14, p);
  palloc_set_sample_rate(512 * 1024);
  palloc_stats_t st;
  palloc_read_stats(&st);
  printf("buckets %llu\n", (unsigned long long)st.buckets);
  fflush(stdout);
  size_t cap = (size_t)seconds * 20000000, n = 0;
  uint32_t *lat = malloc(cap * sizeof *lat);
  void *ring[256] = {0};
  unsigned r = 1;
  uint64_t end = now_ns() + (uint64_t)seconds * 1000000000ull;
  while (n < cap) {
    r = r * 1103515245u + 12345u;
    size_t size = 16 + (r >> 16) % 4081;
    uint64_t t0 = now_ns();
    void *p = malloc(size);
    uint64_t t1 = now_ns();
    lat[n++] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
    free(ring[r & 255]);
    ring[r & 255] = p;
    if ((n & 4095) == 0 && t1 > end) break;
  }
  qsort(lat, n, sizeof *lat, cmp);
  printf("mallocs %zu p50 %u ns p99.99 %u ns max %u ns\n", n, lat[n / 2], lat[n - n / 10000 - 1],
         lat[n - 1]);
  return 0;
}
