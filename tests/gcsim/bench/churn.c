/* churn.c - a malloc/free churn loop, to measure what PALLOC_TRACE=1 costs.
 * A window of 4096 live blocks of 16..4111 bytes, replaced one at a time at random: 20 million
 * malloc/free pairs. Prints the elapsed time. Run it linked with libpalloc, with and without
 * PALLOC_TRACE=1 (run_bench.sh alternates the two). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  long ops = argc > 1 ? atol(argv[1]) : 20000000;
  static void *win[4096];
  uint64_t x = 88172645463325252ull;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < ops; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t k = x & 4095;
    free(win[k]);
    win[k] = malloc(16 + ((x >> 12) & 4095));
    *(volatile char *)win[k] = 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.3f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
  for (int k = 0; k < 4096; k++) free(win[k]);
  return 0;
}
