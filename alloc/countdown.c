/* countdown.c - per-thread Poisson sampling over allocated bytes.
 *
 * Each thread draws its distance to the next sample from an exponential distribution with mean
 * `rate` (a Poisson process over bytes, as Go's runtime does), so an allocation of s bytes is
 * sampled with probability 1 - exp(-s/rate) whatever the allocation pattern, and the overshoot
 * of the allocation that crosses zero is discarded (the exponential has no memory).
 *
 * Rate changes: palloc_set_sample_rate bumps rate_epoch. A thread compares epochs only on its
 * slow path, so a change takes effect at each thread's next slow-path visit. To bound that delay
 * when sampling is off, an "off" thread still visits the slow path every PALLOC_OFF_RECHECK
 * bytes (one cheap call per 4 MiB allocated).
 *
 * Random numbers: xorshift64* per thread, seeded from PALLOC_SEED and a per-thread sequence
 * number (reproducible for a single-threaded program) or from time, tid and address. The
 * exponential is drawn by a ziggurat (exp_draw).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "explog.h" /* palloc_log, palloc_exp: libpalloc does not load libm (proto/explog.c) */
#include "zigexp.h"  /* palloc_zig_x: the exponential's ziggurat (exp_draw) */

#define PALLOC_OFF_RECHECK ((int64_t)4 << 20)

/* Budget 0: a thread's first allocation, even of size 0, takes the slow path, which sets it up. */
__thread palloc_thread_t palloc_thread __attribute__((tls_model("initial-exec"))) = {.budget = 0};
palloc_global_t palloc_g = {.depth = 64, .symbolize = true, .tcache = true};

static _Atomic uint64_t thread_seq;

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t rng_next(palloc_thread_t *t) {
  uint64_t x = t->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* U uniform in (0, 1] with 53 bits: never 0, so -log(U) is finite. */
static double uniform_open(palloc_thread_t *t) {
  return (double)((rng_next(t) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* A standard exponential (mean 1), by Marsaglia and Tsang's ziggurat ("The ziggurat method for
 * generating random variables", 2000): the area under exp(-x) is covered by PALLOC_ZIG_LAYERS
 * layers of equal area (zigexp.h), layer i a rectangle of width x[i] between the heights
 * exp(-x[i]) and exp(-x[i+1]), the base layer 0 the rectangle below exp(-r) plus the tail beyond
 * r. A uniform point of a uniformly chosen layer, kept where it lies under the curve, has the
 * exponential's density exactly; its x is the draw. Nearly every point (97.8%) lies in the part of
 * its layer wholly under the curve (x < x[i+1]): a random number, a multiplication and a compare,
 * where -log(U) (the same distribution) cost palloc_log's ~70 instructions a draw. The rest: in
 * the base layer, a point beyond r is the tail, r plus an exponential (the exponential has no
 * memory), drawn as r - log(U); in layer i > 0, a point above the curve is rejected and the
 * draw starts over. The layer is bits 3..10 of the random number and the uniform its top 53
 * bits, so the two are independent. */
static inline bool zig_point(palloc_thread_t *t, unsigned *i, double *x) {
  uint64_t r = rng_next(t);
  *i = (unsigned)(r >> 3) & (PALLOC_ZIG_LAYERS - 1);
  *x = (double)(r >> 11) * (1.0 / 9007199254740992.0) * palloc_zig_x[*i];
  return *x < palloc_zig_x[*i + 1]; /* wholly under the curve */
}

/* The point (i, x) is not in the part of layer i wholly under the curve. Out of line, so that
 * the common draw saves no registers for the calls here. */
static __attribute__((noinline, cold)) double exp_draw_rest(palloc_thread_t *t, unsigned i,
                                                            double x) {
  for (;;) {
    if (i == 0) return PALLOC_ZIG_R - palloc_log(uniform_open(t));
    double lo = palloc_exp(-palloc_zig_x[i]), hi = palloc_exp(-palloc_zig_x[i + 1]);
    double y = lo + (uniform_open(t) - 0x1p-53) * (hi - lo); /* uniform in [lo, hi) */
    if (y < palloc_exp(-x)) return x;
    if (zig_point(t, &i, &x)) return x; /* rejected: a new point */
  }
}

static inline double exp_draw(palloc_thread_t *t) {
  unsigned i;
  double x;
  if (palloc_likely(zig_point(t, &i, &x))) return x;
  return exp_draw_rest(t, i, x);
}

/* Exponential with mean `rate`; rate 1 means "every allocation" (-1: a negative countdown, so
 * that every allocation, even of size 0, takes the sampled path). */
static inline int64_t draw_interval(palloc_thread_t *t, int64_t rate) {
  if (rate <= 0) return PALLOC_OFF_RECHECK;
  if (rate == 1) return -1;
  double next = exp_draw(t) * (double)rate;
  if (next > (double)(INT64_MAX / 2)) next = (double)(INT64_MAX / 2);
  palloc_assert(next >= 0 && next <= (double)(INT64_MAX / 2));
  return (int64_t)next;
}

int64_t palloc_draw_interval(palloc_thread_t *t, int64_t rate) { return draw_interval(t, rate); }

void palloc_thread_start(palloc_thread_t *t) {
  palloc_assert(t->state == PALLOC_T_NEW && t->guard > 0);
  uint64_t seq = atomic_fetch_add(&thread_seq, 1);
  uint64_t seed;
  if (palloc_g.seeded) {
    seed = splitmix64(palloc_g.seed ^ splitmix64(seq));
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = splitmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                      (uint64_t)(uintptr_t)t ^ splitmix64(seq));
  }
  t->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  t->is_main = (pid_t)syscall(SYS_gettid) == getpid();
  t->state = PALLOC_T_LIVE;
  atomic_fetch_add_explicit(&palloc_g.threads, 1, memory_order_relaxed);
  int64_t rate = atomic_load_explicit(&palloc_g.rate, memory_order_relaxed);
  t->rate_epoch = atomic_load_explicit(&palloc_g.rate_epoch, memory_order_relaxed);
  int64_t first = palloc_draw_interval(t, rate);
  palloc_set_countdown(t, first);
  t->stream_left = first;
}

bool palloc_countdown_expired(palloc_thread_t *t, size_t n, int64_t *next) {
  int64_t rate = atomic_load_explicit(&palloc_g.rate, memory_order_relaxed);
  uint32_t epoch = atomic_load_explicit(&palloc_g.rate_epoch, memory_order_relaxed);
  if (epoch != t->rate_epoch) {
    /* The rate changed since this countdown was drawn: draw afresh and judge this allocation
     * against the new interval. */
    t->rate_epoch = epoch;
    int64_t c = palloc_draw_interval(t, rate) - palloc_bytes(n);
    if (rate == 0 || c >= 0) {
      *next = rate == 0 ? PALLOC_OFF_RECHECK : c;
      palloc_assert(*next >= 0);
      return false;
    }
  }
  *next = draw_interval(t, rate); /* inline: every sample draws here */
  /* rate 1 gives -1 (every allocation sampled); any other rate a countdown >= 0 */
  palloc_assert(*next >= 0 || (*next == -1 && rate == 1));
  return rate != 0;
}

void palloc_set_sample_rate(size_t bytes) {
  palloc_init();
  int64_t rate = bytes > (size_t)(INT64_MAX / 4) ? INT64_MAX / 4 : (int64_t)bytes;
  atomic_store(&palloc_g.rate, rate);
  atomic_fetch_add(&palloc_g.rate_epoch, 1);
  /* The calling thread sees the new rate from its next allocation, even one of size 0. */
  palloc_thread_t *t = &palloc_thread;
  if (t->state == PALLOC_T_LIVE && t->guard == 0)
    palloc_set_countdown(t, -1);
}

size_t palloc_get_sample_rate(void) {
  palloc_init();
  return (size_t)atomic_load(&palloc_g.rate);
}
