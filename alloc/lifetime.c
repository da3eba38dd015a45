/* lifetime.c - how long sampled blocks live: the allocation clock, each bucket's lifetimes, and
 * the lifetime profile (as tcmalloc's lifetime profile, from the same samples as the heap).
 *
 * The clock is CLOCK_MONOTONIC through the vDSO: about 20 ns (60-100 instructions, no system
 * call) on the sampled paths only, against the thousands of instructions of the stack walk each
 * sample already pays. Not rdtsc: it is cheaper (~10 ns) but needs a calibration to nanoseconds,
 * and is not monotonic across CPUs on hosts without an invariant TSC. Not
 * CLOCK_MONOTONIC_COARSE: its tick (4 ms at HZ=250) is longer than the 1 ms that separates a
 * temporary from the rest. A block's birth time is kept in its registry slot (registry.c); its
 * free adds the lifetime to the bucket: count, sum, sum of squares, min, max, and whether it was
 * a temporary (freed within PALLOC_TEMP_THRESHOLD). All are atomics: a signal handler's free of a
 * sampled block may come here while its thread is here too, so nothing here may wait.
 *
 * Blocks still live when a profile is written are censored: their age so far is summed per
 * bucket by a walk of the registry, and reported apart (live_*), never mixed with the lifetimes
 * of freed blocks.
 *
 * The lifetime profile's sample types (one sample per bucket, each value unsampled with the
 * bucket's scale 1 / (1 - exp(-avg/rate)), avg its average sampled size, as Go's
 * scaleHeapSample):
 *   freed_objects/count, freed_space/bytes   blocks freed since the start
 *   lifetime/nanoseconds                     the sum of their lifetimes (object-nanoseconds:
 *                                            lifetime / freed_objects is the mean lifetime)
 *   temp_objects/count, temp_space/bytes     those freed within the threshold: the temporaries
 *                                            (the default sample type)
 *   live_objects/count, live_space/bytes     blocks still live (censored)
 *   live_age/nanoseconds                     the sum of their ages so far
 * and numeric labels per sample, from the raw (unscaled) lifetimes of its freed samples, in
 * nanoseconds: lifetime_mean, lifetime_stddev, lifetime_min, lifetime_max. A comment states the
 * threshold.
 */
#include <string.h>
#include <stdio.h>
#include <time.h>
#include "profinternal.h"
#include "palloc_proto.h"
#include "poisson.h"

uint64_t palloc_lifetime_now(void) {
  if (!palloc_g.lifetimes) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 1; /* never 0 */
}

static void record_lifetime(palloc_bucket_t *b, size_t size, uint64_t d) {
  atomic_fetch_add_explicit(&b->life_n, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->life_sum, d, memory_order_relaxed);
  uint64_t old = atomic_load_explicit(&b->life_sumsq, memory_order_relaxed), nw;
  do {
    double x;
    memcpy(&x, &old, sizeof x);
    x += (double)d * (double)d;
    memcpy(&nw, &x, sizeof nw);
  } while (!atomic_compare_exchange_weak_explicit(&b->life_sumsq, &old, nw, memory_order_relaxed,
                                                  memory_order_relaxed));
  uint64_t inv = UINT64_MAX - d, m = atomic_load_explicit(&b->life_min_inv, memory_order_relaxed);
  while (inv > m && !atomic_compare_exchange_weak_explicit(&b->life_min_inv, &m, inv,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed)) {}
  m = atomic_load_explicit(&b->life_max, memory_order_relaxed);
  while (d > m && !atomic_compare_exchange_weak_explicit(&b->life_max, &m, d, memory_order_relaxed,
                                                         memory_order_relaxed)) {}
  if (d < palloc_g.temp_ns) {
    atomic_fetch_add_explicit(&b->temp_n, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->temp_bytes, size, memory_order_relaxed);
  }
}

void palloc_sample_freed(palloc_bucket_t *b, size_t size, uint64_t born) {
  palloc_bucket_record_free(b, size);
  palloc_peak_on_free(b, size);
  if (born != 0) {
    uint64_t now = palloc_lifetime_now();
    if (now != 0) record_lifetime(b, size, now > born ? now - born : 0);
  }
}

/* ---- the lifetime profile ------------------------------------------------------------------ */
enum { L_FREED_OBJECTS, L_FREED_SPACE, L_LIFETIME, L_TEMP_OBJECTS, L_TEMP_SPACE, L_LIVE_OBJECTS,
       L_LIVE_SPACE, L_LIVE_AGE, L_NVALUES };
static const char *const lifetime_types[L_NVALUES][2] = {
  [L_FREED_OBJECTS] = {"freed_objects", "count"}, [L_FREED_SPACE] = {"freed_space", "bytes"},
  [L_LIFETIME] = {"lifetime", "nanoseconds"},     [L_TEMP_OBJECTS] = {"temp_objects", "count"},
  [L_TEMP_SPACE] = {"temp_space", "bytes"},       [L_LIVE_OBJECTS] = {"live_objects", "count"},
  [L_LIVE_SPACE] = {"live_space", "bytes"},       [L_LIVE_AGE] = {"live_age", "nanoseconds"}};

/* The censored blocks' ages, per bucket: an open-addressing map from bucket to row. */
typedef struct {
  const palloc_bucket_t **keys;
  uint32_t *row;
  size_t cap;
  double *age;   /* per row: the sum of the live timed blocks' ages */
  double *scale; /* per row: what one sample stands for */
  uint64_t now;
} ages_t;

static size_t age_slot(const ages_t *a, const palloc_bucket_t *b) {
  size_t i = (size_t)(((uintptr_t)b >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (a->cap - 1);
  while (a->keys[i] != NULL && a->keys[i] != b) i = (i + 1) & (a->cap - 1);
  return i;
}

static void add_age(void *arg, palloc_bucket_t *b, size_t size, uint64_t born) {
  (void)size;
  ages_t *a = arg;
  if (born == 0) return;
  size_t i = age_slot(a, b);
  if (a->keys[i] == b) a->age[a->row[i]] += (double)(a->now > born ? a->now - born : 0);
}

/* A scaled value as a profile's int64, saturated: nanosecond sums times a small block's scale
 * pass INT64_MAX within hours (16-byte blocks at 512 KiB stand for 32768 each: 1000 sampled
 * frees that lived an hour are 1.2e20 object-ns), and a double beyond it converts to anything. */
static int64_t saturate(double v) {
  if (!(v < 9223372036854775807.0)) return v > 0 ? INT64_MAX : 0; /* too large, or NaN */
  return v > 0 ? (int64_t)v : 0;
}

static long lifetime_collect(palloc_scratch_t *s, int64_t rate, palloc_profile_row_t **rows,
                             char comment[][256], int *ncomment) {
  /* one head for both walks: buckets made meanwhile are pushed before it, and a second
   * palloc_bucket_list() would start at them and stop, nb rows later, short of the oldest */
  palloc_bucket_t *head = palloc_bucket_list();
  size_t nb = 0;
  for (palloc_bucket_t *b = head; b; b = b->allnext) nb++;
  palloc_profile_row_t *r = palloc_scratch_alloc(s, (nb ? nb : 1) * sizeof *r);
  ages_t a = {0};
  a.cap = 64;
  while (a.cap < nb * 2) a.cap *= 2;
  a.keys = palloc_scratch_alloc(s, a.cap * sizeof *a.keys);
  a.row = palloc_scratch_alloc(s, a.cap * sizeof *a.row);
  a.age = palloc_scratch_alloc(s, (nb ? nb : 1) * sizeof *a.age);
  a.scale = palloc_scratch_alloc(s, (nb ? nb : 1) * sizeof *a.scale);
  if (!r || !a.keys || !a.row || !a.age || !a.scale) return -1;
  memset(a.keys, 0, a.cap * sizeof *a.keys);
  size_t n = 0;
  for (palloc_bucket_t *b = head; b && n < nb; b = b->allnext) {
    palloc_bucket_counts_t c;
    palloc_bucket_read(b, &c);
    if (c.allocs == 0) continue;
    size_t i = age_slot(&a, b);
    a.keys[i] = b;
    a.row[i] = (uint32_t)n;
    a.age[n] = 0;
    memset(&r[n], 0, sizeof r[n]);
    r[n].b = b;
    /* the raw counts for now; scaled below, once the ages are in */
    r[n].v[L_FREED_OBJECTS] = (int64_t)c.frees;
    r[n].v[L_FREED_SPACE] = (int64_t)c.free_bytes;
    r[n].v[L_LIVE_OBJECTS] = (int64_t)(c.allocs - c.frees);
    r[n].v[L_LIVE_SPACE] = (int64_t)(c.alloc_bytes - c.free_bytes);
    r[n].v[L_TEMP_OBJECTS] = (int64_t)atomic_load(&b->temp_n);
    r[n].v[L_TEMP_SPACE] = (int64_t)atomic_load(&b->temp_bytes);
    uint64_t ln = atomic_load(&b->life_n), sum = atomic_load(&b->life_sum);
    r[n].v[L_LIFETIME] = sum > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)sum;
    if (ln > 0) {
      uint64_t bits = atomic_load(&b->life_sumsq);
      double sq, mean = (double)sum / (double)ln;
      memcpy(&sq, &bits, sizeof sq);
      double var = sq / (double)ln - mean * mean;
      r[n].label[0].key = "lifetime_mean";
      r[n].label[0].num = (int64_t)mean;
      r[n].label[1].key = "lifetime_stddev";
      r[n].label[1].num = (int64_t)palloc_sqrt(var > 0 ? var : 0);
      r[n].label[2].key = "lifetime_min";
      r[n].label[2].num = (int64_t)(UINT64_MAX - atomic_load(&b->life_min_inv));
      r[n].label[3].key = "lifetime_max";
      r[n].label[3].num = (int64_t)atomic_load(&b->life_max);
      for (int k = 0; k < 4; k++) r[n].label[k].unit = "nanoseconds";
      r[n].nlabels = 4;
    }
    /* the scale of the bucket's samples, from their average size (scaleHeapSample's) */
    double avg = (double)c.alloc_bytes / (double)c.allocs;
    double p = palloc_sample_prob(avg, rate);
    a.scale[n] = p > 0 ? 1 / p : 0;
    n++;
  }
  a.now = palloc_lifetime_now();
  if (a.now != 0) palloc_registry_each(add_age, &a);
  for (size_t i = 0; i < n; i++) {
    double scale = a.scale[i];
    for (int k = 0; k < L_NVALUES; k++)
      if (k != L_LIVE_AGE) r[i].v[k] = saturate((double)r[i].v[k] * scale);
    r[i].v[L_LIVE_AGE] = saturate(a.age[i] * scale);
  }
  char thr[32];
  uint64_t t = palloc_g.temp_ns;
  if (t % 1000000000 == 0) snprintf(thr, sizeof thr, "%llus", (unsigned long long)(t / 1000000000));
  else if (t % 1000000 == 0) snprintf(thr, sizeof thr, "%llums", (unsigned long long)(t / 1000000));
  else if (t % 1000 == 0) snprintf(thr, sizeof thr, "%lluus", (unsigned long long)(t / 1000));
  else snprintf(thr, sizeof thr, "%lluns", (unsigned long long)t);
  snprintf(comment[0], 256, "lifetime profile: temporaries are blocks freed within %s "
           "(temp_threshold_ns=%llu)", thr, (unsigned long long)t);
  snprintf(comment[1], 256, "lifetimes %s: CLOCK_MONOTONIC from allocation to free; live_* are "
           "censored (still live, age so far)", palloc_g.lifetimes ? "on" : "off");
  *ncomment = 2;
  *rows = r;
  return (long)n;
}

const palloc_profile_kind_t palloc_lifetime_kind = {
  L_NVALUES, lifetime_types, "temp_space", lifetime_collect};
