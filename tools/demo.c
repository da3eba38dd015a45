/* demo.c - the embedded demo: a program that leaks from one site and churns from others.
 *
 * leak_sessions() keeps 32 MiB of 512-byte session records forever (the leak); parse_request()
 * and render_page() allocate and free buffers at a high rate (churn). With
 * PALLOC_PROFILE=demo.pb.gz, `go tool pprof -top -sample_index=inuse_space demo.pb.gz` should put
 * leak_sessions at the top of in-use space, and parse_request/render_page at the top of
 * alloc_space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void **leaked;
static size_t nleaked;

__attribute__((noinline)) static void leak_sessions(size_t n) {
  for (size_t i = 0; i < n; i++) {
    char *s = malloc(512);
    memset(s, (int)i, 512);
    leaked[nleaked++] = s;
  }
}

__attribute__((noinline)) static size_t parse_request(size_t i) {
  char *buf = malloc(1024 + i % 1024);
  memset(buf, 'x', 1024);
  size_t r = (size_t)buf[i % 1024];
  free(buf);
  return r;
}

__attribute__((noinline)) static size_t render_page(size_t i) {
  size_t n = 16384 + (i % 7) * 4096;
  char *page = malloc(n);
  memset(page, 'y', n);
  size_t r = (size_t)page[n - 1];
  free(page);
  return r;
}

int main(void) {
  leaked = malloc(sizeof(void *) * 65536);
  size_t sink = 0;
  for (size_t round = 0; round < 64; round++) {
    for (size_t i = 0; i < 4096; i++) sink += parse_request(i);
    for (size_t i = 0; i < 512; i++) sink += render_page(i);
    leak_sessions(1024); /* 512 KiB a round: 32 MiB in all */
  }
  printf("demo: leaked %zu session records (%zu MiB), churned %zu buffers (checksum %zu)\n",
         nleaked, nleaked * 512 >> 20, (size_t)64 * (4096 + 512), sink);
  return 0;
}
