/* rng.h - the benchmarks' random numbers (workloads.c, scale.c): xorshift64*, seeded by the
 * caller, so that every run of a workload allocates the same sizes in the same order. */
#ifndef PALLOC_BENCH_RNG_H
#define PALLOC_BENCH_RNG_H
#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s; } rng_t; /* s != 0 */
static inline uint64_t rnd(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
/* uniform enough in [lo, hi] */
static inline size_t range(rng_t *r, size_t lo, size_t hi) { return lo + rnd(r) % (hi - lo + 1); }
#endif
