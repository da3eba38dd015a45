/* usdt_prog.c - allocations the otel_memory probes must report (check_usdt.py), linked with
 * libpalloc: one malloc(1000) whose address it prints, freed; 500 more of 100 bytes, freed; a
 * realloc of a sampled block. Prints palloc's count of sampled allocations and frees, then
 * ends with _exit (no exit-time allocation after the count). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "palloc.h"

int main(void) {
  void *volatile p = malloc(1000);
  printf("block %lu\n", (unsigned long)(uintptr_t)p);
  free(p);
  for (int i = 0; i < 500; i++) {
    void *volatile q = malloc(100);
    free(q);
  }
  void *volatile r = malloc(2000);
  printf("moved %lu\n", (unsigned long)(uintptr_t)r);
  r = realloc(r, 1 << 20);
  free(r);
  palloc_stats_t st;
  palloc_read_stats(&st);
  printf("sampled %llu freed %llu\n", (unsigned long long)st.sampled_allocs,
         (unsigned long long)st.sampled_frees);
  fflush(stdout);
  _exit(0);
}
