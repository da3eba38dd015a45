/* workloads.c - the allocation workloads of the palloc benchmark suite (tests/bench/run.sh).
 *
 *   workloads MODE [SCALE]     MODE: churn larson realloc large longlived deep
 *
 * SCALE (default 1.0) multiplies the amount of work; 1.0 is sized for 1-10 s under mimalloc on a
 * 2-core machine. Every allocation is made from a small noinline function named site_* so that a
 * heap profile can be attributed to sites from the innermost site_* frame. The program is built
 * with -fno-omit-frame-pointer (the deep workload compares PALLOC_UNWIND=fp and libunwind) and
 * without PIE so that addresses in jemalloc's heap dumps map to symbols with `nm` alone.
 * The workloads use their own fixed-seed generator (not rand()), so the allocation sequence is
 * the same in every run; the larson workload is deterministic per slot array, whatever thread
 * runs it. Live blocks are not freed at exit, so the profile written at exit has an in-use part.
 * BENCH_PROBE=path (palloc only): after the work, write a heap profile to path with
 * palloc_profile_write and print its duration and size from palloc_read_stats (on stderr).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
static double scale = 1.0;

typedef struct { uint64_t s; } rng_t;
static inline uint64_t rnd(rng_t *r) {
  uint64_t x = r->s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
static inline size_t range(rng_t *r, size_t lo, size_t hi) { return lo + rnd(r) % (hi - lo + 1); }
static size_t scaled(double n) { size_t v = (size_t)(n * scale); return v ? v : 1; }
static void touch(void *p, size_t n) {
  /* the first line and one byte per page: what a program using the block would at least do */
  if (!p) { fprintf(stderr, "workloads: out of memory\n"); exit(3); }
  char *c = p;
  memset(c, 0x5a, n < 64 ? n : 64);
  for (size_t i = 4096; i < n; i += 4096) c[i] = 1;
}
static volatile uintptr_t sink;

/* ---- sites: one noinline function per allocation site ---------------------------------- */
NOINLINE void *site_churn_small(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_churn_large(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_churn_temp(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_larson_small(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_larson_large(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_realloc_init(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_realloc_grow(void *q, size_t n) { void *p = realloc(q, n); touch(p, n); return p; }
NOINLINE void *site_large_medium(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_large_huge(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_longlived_base(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_longlived_churn(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_deep_even(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_deep_odd(size_t n) { void *p = calloc(1, n); touch(p, n); return p; }

/* ---- churn: single thread, random sizes 8-512 B, random (geometric) lifetimes ------------ */
static void churn(void) {
  enum { SLOTS = 1 << 16 };
  static void *slot[SLOTS];
  rng_t r = {0x1234567};
  size_t ops = scaled(60e6);
  for (size_t i = 0; i < ops; i++) {
    uint64_t x = rnd(&r);
    if ((x & 7) == 0) { /* a short-lived temporary */
      void *t = site_churn_temp(range(&r, 8, 512));
      sink += (uintptr_t)t;
      free(t);
      continue;
    }
    size_t k = (x >> 8) % SLOTS;
    free(slot[k]);
    size_t n = range(&r, 8, 512);
    slot[k] = n <= 128 ? site_churn_small(n) : site_churn_large(n);
  }
}

/* ---- larson: threads replace blocks in slot arrays that move to another thread every round,
 * so most blocks are freed by a thread other than the one that allocated them --------------- */
enum { LARSON_THREADS = 2, LARSON_SLOTS = 20000 };
typedef struct { void *slot[LARSON_SLOTS]; rng_t r; } larson_arr_t;
static larson_arr_t larson_arr[LARSON_THREADS];
static pthread_barrier_t larson_bar;
static size_t larson_rounds, larson_ops;
static void *larson_thread(void *arg) {
  size_t id = (size_t)arg;
  for (size_t round = 0; round < larson_rounds; round++) {
    larson_arr_t *a = &larson_arr[(id + round) % LARSON_THREADS];
    for (size_t i = 0; i < larson_ops; i++) {
      size_t k = rnd(&a->r) % LARSON_SLOTS;
      free(a->slot[k]);
      size_t n = range(&a->r, 16, 1024);
      a->slot[k] = n <= 256 ? site_larson_small(n) : site_larson_large(n);
    }
    pthread_barrier_wait(&larson_bar);
  }
  return NULL;
}
static void larson(void) {
  pthread_t th[LARSON_THREADS];
  larson_ops = 50000;
  larson_rounds = scaled(800);
  pthread_barrier_init(&larson_bar, NULL, LARSON_THREADS);
  for (size_t i = 0; i < LARSON_THREADS; i++) larson_arr[i].r.s = 0x9e3779b97f4a7c15ULL * (i + 1);
  for (size_t i = 0; i < LARSON_THREADS; i++) pthread_create(&th[i], NULL, larson_thread, (void *)i);
  for (size_t i = 0; i < LARSON_THREADS; i++) pthread_join(th[i], NULL);
}

/* ---- realloc: many buffers grow in random steps up to a random limit, then start over ---- */
static void realloc_heavy(void) {
  enum { BUFS = 4096 };
  static char *buf[BUFS];
  static size_t len[BUFS], lim[BUFS];
  rng_t r = {0xabcdef1};
  size_t ops = scaled(6e6);
  for (size_t i = 0; i < ops; i++) {
    size_t k = rnd(&r) % BUFS;
    if (buf[k] == NULL || len[k] >= lim[k]) {
      free(buf[k]);
      len[k] = range(&r, 16, 128);
      lim[k] = (size_t)1 << range(&r, 10, 17); /* 1 KiB - 128 KiB */
      buf[k] = site_realloc_init(len[k]);
      continue;
    }
    len[k] += range(&r, 1, len[k] / 2 + 16);
    buf[k] = site_realloc_grow(buf[k], len[k]);
  }
}

/* ---- large: 64 KiB - 64 MiB (log-uniform), a few live at a time, every page touched ------ */
static void large(void) {
  enum { LIVE = 12 };
  static void *slot[LIVE];
  rng_t r = {0x5eed};
  size_t ops = scaled(1200);
  for (size_t i = 0; i < ops; i++) {
    size_t k = rnd(&r) % LIVE;
    free(slot[k]);
    int lg = (int)range(&r, 16, 25);                      /* 64 KiB .. 32 MiB */
    size_t n = ((size_t)1 << lg) + rnd(&r) % ((size_t)1 << lg); /* .. 64 MiB */
    slot[k] = n < (1u << 20) ? site_large_medium(n) : site_large_huge(n);
  }
}

/* ---- longlived: ~1 GiB live (at scale 1) from many stacks, churned ----------------------- */
#define LL_LEVEL(i)                                                                          \
  NOINLINE void *ll_path##i(size_t n, int d) {                                              \
    void *p = d ? ll_path##i(n, d - 1) : site_longlived_base(n);                            \
    sink += d;                                                                              \
    return p;                                                                               \
  }
LL_LEVEL(0) LL_LEVEL(1) LL_LEVEL(2) LL_LEVEL(3)
static void *(*const ll_paths[4])(size_t, int) = {ll_path0, ll_path1, ll_path2, ll_path3};
static void longlived(void) {
  size_t target = scaled(1024.0 * 1024 * 1024);
  size_t count = target / 1056; /* mean size 32..2080 B */
  void **obj = malloc(count * sizeof(void *));
  rng_t r = {0x10f1};
  for (size_t i = 0; i < count; i++) {
    uint64_t x = rnd(&r);
    /* 4 paths x 8 depths = 32 distinct stacks, times the sizes: many buckets */
    obj[i] = ll_paths[x & 3](range(&r, 32, 2080), (int)((x >> 2) & 7));
  }
  size_t ops = scaled(8e6);
  for (size_t i = 0; i < ops; i++) {
    size_t k = rnd(&r) % count;
    free(obj[k]);
    obj[k] = site_longlived_churn(range(&r, 32, 2080));
  }
}

/* ---- deep: allocations 50-100 frames deep ------------------------------------------------ */
NOINLINE void *deep_rec(int d, size_t n) {
  void *p;
  if (d == 0) p = (n & 1) ? site_deep_odd(n) : site_deep_even(n);
  else p = deep_rec(d - 1, n);
  sink += (uintptr_t)d; /* keeps the call from being a tail call */
  return p;
}
static void deep(void) {
  enum { SLOTS = 1 << 14 };
  static void *slot[SLOTS];
  rng_t r = {0xdee9};
  size_t ops = scaled(8e6);
  for (size_t i = 0; i < ops; i++) {
    size_t k = rnd(&r) % SLOTS;
    free(slot[k]);
    slot[k] = deep_rec((int)range(&r, 48, 98), range(&r, 16, 256));
  }
}

static void probe(void) {
  const char *path = getenv("BENCH_PROBE");
  if (!path) return;
  int (*write)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "palloc_profile_write");
  void (*stats)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "palloc_read_stats");
  if (!write || !stats) { fprintf(stderr, "probe: palloc not loaded\n"); return; }
  uint64_t st[13];
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int rc = write(path);
  clock_gettime(CLOCK_MONOTONIC, &b);
  stats(st);
  fprintf(stderr, "probe: rc=%d write_ns=%llu write_bytes=%llu buckets=%llu internal_bytes=%llu "
          "sampled_allocs=%llu live_sampled_bytes=%llu samples_dropped=%llu wall_ns=%lld\n", rc,
          (unsigned long long)st[10], (unsigned long long)st[11], (unsigned long long)st[5],
          (unsigned long long)st[6], (unsigned long long)st[1], (unsigned long long)st[4],
          (unsigned long long)st[7],
          (long long)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec)));
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: workloads churn|larson|realloc|large|longlived|deep [scale]\n");
    return 2;
  }
  if (argc > 2) scale = atof(argv[2]);
  const char *m = argv[1];
  if (!strcmp(m, "churn")) churn();
  else if (!strcmp(m, "larson")) larson();
  else if (!strcmp(m, "realloc")) realloc_heavy();
  else if (!strcmp(m, "large")) large();
  else if (!strcmp(m, "longlived")) longlived();
  else if (!strcmp(m, "deep")) deep();
  else { fprintf(stderr, "workloads: unknown mode %s\n", m); return 2; }
  probe();
  return 0;
}
