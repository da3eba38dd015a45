/* workloads.c - the allocation workloads of the palloc benchmark suite (tests/bench/run.sh).
 *
 *   workloads MODE [SCALE]     MODE: churn larson realloc large longlived deep cfrac espresso
 *                                    barnes server mstress
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
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))
static double scale = 1.0;

#include "rng.h"
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
NOINLINE void *site_cfrac_num(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_cfrac_rel(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_espresso_cube(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_espresso_cover(size_t n) { void *p = malloc(n); touch(p, n); return p; }
/* the cover's pointers must survive the move: checked, not touched */
NOINLINE void *site_espresso_grow(void *q, size_t n) { void *p = realloc(q, n); touch(p, p ? 0 : n); return p; }
NOINLINE void *site_barnes_node(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_server_req(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_server_resp(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_mstress_keep(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_mstress_burst(size_t n) { void *p = malloc(n); touch(p, n); return p; }
NOINLINE void *site_mstress_pass(size_t n) { void *p = malloc(n); touch(p, n); return p; }

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

/* ---- cfrac: factoring-style churn. The continued fraction of sqrt(N) for a 192-bit N in
 * immutable bignums (every result a new block of 8-32 B, freed as soon as the next is made), each
 * denominator trial-divided by a factor base (one quotient allocated and freed per prime), and the
 * (partially) smooth ones kept as relations: many tiny short-lived blocks, a few long-lived ----- */
typedef struct { uint32_t n; uint32_t d[]; } bn_t; /* n limbs, little-endian, no leading 0 limb */
static bn_t *bn_new(uint32_t n) {
  bn_t *a = site_cfrac_num(sizeof(bn_t) + (n ? n : 1) * sizeof(uint32_t));
  a->n = n;
  return a;
}
static bn_t *bn_norm(bn_t *a) { while (a->n && a->d[a->n - 1] == 0) a->n--; return a; }
static bn_t *bn_from(uint64_t v) {
  bn_t *a = bn_new(2);
  a->d[0] = (uint32_t)v; a->d[1] = (uint32_t)(v >> 32);
  return bn_norm(a);
}
static int bn_cmp(const bn_t *a, const bn_t *b) {
  if (a->n != b->n) return a->n < b->n ? -1 : 1;
  for (uint32_t i = a->n; i-- > 0;)
    if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
  return 0;
}
static bn_t *bn_add(const bn_t *a, const bn_t *b) {
  if (a->n < b->n) { const bn_t *t = a; a = b; b = t; }
  bn_t *r = bn_new(a->n + 1);
  uint64_t c = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
    r->d[i] = (uint32_t)c; c >>= 32;
  }
  r->d[a->n] = (uint32_t)c;
  return bn_norm(r);
}
static bn_t *bn_sub(const bn_t *a, const bn_t *b) { /* a >= b */
  bn_t *r = bn_new(a->n);
  int64_t c = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    c += (int64_t)a->d[i] - (i < b->n ? b->d[i] : 0);
    r->d[i] = (uint32_t)c; c >>= 32;
  }
  return bn_norm(r);
}
static bn_t *bn_mul(const bn_t *a, const bn_t *b) {
  bn_t *r = bn_new(a->n + b->n);
  memset(r->d, 0, (a->n + b->n) * sizeof(uint32_t));
  for (uint32_t i = 0; i < a->n; i++) {
    uint64_t c = 0;
    for (uint32_t j = 0; j < b->n; j++) {
      c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
      r->d[i + j] = (uint32_t)c; c >>= 32;
    }
    r->d[i + b->n] = (uint32_t)c;
  }
  return bn_norm(r);
}
static bn_t *bn_div1(const bn_t *a, uint32_t v, uint32_t *rem) {
  bn_t *q = bn_new(a->n);
  uint64_t r = 0;
  for (uint32_t i = a->n; i-- > 0;) {
    r = (r << 32) | a->d[i];
    q->d[i] = (uint32_t)(r / v); r %= v;
  }
  *rem = (uint32_t)r;
  return bn_norm(q);
}
/* Knuth's algorithm D (as in Hacker's Delight's divmnu): q = u / v, *rem = u % v; v != 0 */
static bn_t *bn_divmod(const bn_t *u, const bn_t *v, bn_t **rem) {
  if (v->n == 1) { uint32_t r; bn_t *q = bn_div1(u, v->d[0], &r); *rem = bn_from(r); return q; }
  if (bn_cmp(u, v) < 0) { bn_t *r = bn_new(u->n); memcpy(r->d, u->d, u->n * 4); *rem = r; return bn_new(0); }
  uint32_t n = v->n, m = u->n - v->n, s = (uint32_t)__builtin_clz(v->d[n - 1]);
  bn_t *vn = bn_new(n), *un = bn_new(u->n + 1), *q = bn_new(m + 1);
  for (uint32_t i = n - 1; i > 0; i--)
    vn->d[i] = (v->d[i] << s) | (uint32_t)((uint64_t)v->d[i - 1] >> (32 - s));
  vn->d[0] = v->d[0] << s;
  un->d[u->n] = (uint32_t)((uint64_t)u->d[u->n - 1] >> (32 - s));
  for (uint32_t i = u->n - 1; i > 0; i--)
    un->d[i] = (u->d[i] << s) | (uint32_t)((uint64_t)u->d[i - 1] >> (32 - s));
  un->d[0] = u->d[0] << s;
  for (uint32_t j = m + 1; j-- > 0;) {
    uint64_t num = ((uint64_t)un->d[j + n] << 32) | un->d[j + n - 1];
    uint64_t qhat = num / vn->d[n - 1], rhat = num % vn->d[n - 1];
    while (qhat >> 32 || qhat * vn->d[n - 2] > ((rhat << 32) | un->d[j + n - 2])) {
      qhat--; rhat += vn->d[n - 1];
      if (rhat >> 32) break;
    }
    int64_t k = 0, t;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t p = qhat * vn->d[i];
      t = (int64_t)un->d[i + j] - k - (int64_t)(p & 0xffffffffu);
      un->d[i + j] = (uint32_t)t;
      k = (int64_t)(p >> 32) - (t >> 32);
    }
    t = (int64_t)un->d[j + n] - k;
    un->d[j + n] = (uint32_t)t;
    q->d[j] = (uint32_t)qhat;
    if (t < 0) { /* qhat was one too large: add v back */
      q->d[j]--;
      uint64_t c = 0;
      for (uint32_t i = 0; i < n; i++) {
        c += (uint64_t)un->d[i + j] + vn->d[i];
        un->d[i + j] = (uint32_t)c; c >>= 32;
      }
      un->d[j + n] += (uint32_t)c;
    }
  }
  bn_t *r = bn_new(n);
  for (uint32_t i = 0; i < n; i++)
    r->d[i] = (un->d[i] >> s) | (uint32_t)((uint64_t)un->d[i + 1] << (32 - s));
  free(vn); free(un);
  *rem = bn_norm(r);
  return bn_norm(q);
}
static bn_t *bn_isqrt(const bn_t *a) { /* Newton from above: x = (x + a/x) / 2 until it stops falling */
  bn_t *x = bn_new(a->n / 2 + 1), *r;
  memset(x->d, 0, x->n * 4);
  x->d[x->n - 1] = 1u << 16; /* >= sqrt(a) */
  for (;;) {
    bn_t *q = bn_divmod(a, x, &r), *s = bn_add(x, q);
    uint32_t one;
    bn_t *y = bn_div1(s, 2, &one);
    free(q); free(r); free(s);
    if (bn_cmp(y, x) >= 0) { free(y); return x; }
    free(x);
    x = y;
  }
}
typedef struct rel { struct rel *next; bn_t *a; uint32_t cofactor; uint8_t exps[]; } rel_t;
static void cfrac(void) {
  enum { PRIMES = 80 };
  uint32_t prime[PRIMES];
  for (uint32_t c = 3, k = 0; k < PRIMES; c += 2) {
    uint32_t d = 3;
    while (d * d <= c && c % d) d += 2;
    if (d * d > c) prime[k++] = c;
  }
  bn_t *f1 = bn_from(0xd1b54a32d192ed03ULL), *f2 = bn_from(0xa0761d6478bd642fULL);
  bn_t *f3 = bn_from(0xe7037ed1a0b428dbULL), *f12 = bn_mul(f1, f2);
  bn_t *n = bn_mul(f12, f3); /* 192 bits, odd, not a square */
  free(f1); free(f2); free(f3); free(f12);
  bn_t *g = bn_isqrt(n);
  /* m0 = 0, d0 = 1, a0 = g; A_{-1} = 1, A_{-2} = 0 */
  bn_t *m = bn_from(0), *d = bn_from(1), *a = bn_new(g->n), *A1 = bn_from(1), *A0 = bn_from(0);
  memcpy(a->d, g->d, g->n * 4);
  rel_t *rels = NULL;
  size_t steps = scaled(1500000), kept = 0;
  for (size_t k = 0; k < steps; k++) {
    /* A_k = a_k A_{k-1} + A_{k-2} mod N */
    bn_t *t1 = bn_mul(a, A1), *t2 = bn_add(t1, A0), *Ar;
    bn_t *tq = bn_divmod(t2, n, &Ar);
    free(t1); free(t2); free(tq); free(A0);
    A0 = A1; A1 = Ar;
    /* m' = d a - m; d' = (N - m'^2) / d; a' = (g + m') / d' */
    bn_t *da = bn_mul(d, a), *m2 = bn_sub(da, m), *sq = bn_mul(m2, m2), *nm = bn_sub(n, sq), *r;
    bn_t *d2 = bn_divmod(nm, d, &r);
    free(da); free(sq); free(nm); free(r); free(m); free(d); free(a);
    m = m2; d = d2;
    if (d->n == 0) break; /* N a square: cannot happen for this N */
    bn_t *gm = bn_add(g, m);
    a = bn_divmod(gm, d, &r);
    free(gm); free(r);
    /* trial division of the denominator by the factor base */
    uint8_t exps[PRIMES];
    bn_t *c = bn_new(d->n);
    memcpy(c->d, d->d, d->n * 4);
    for (uint32_t i = 0; i < PRIMES; i++) {
      exps[i] = 0;
      for (;;) {
        uint32_t rem;
        bn_t *q = bn_div1(c, prime[i], &rem);
        if (rem) { free(q); break; }
        free(c); c = q; exps[i]++;
      }
    }
    if (c->n <= 2 && kept < 100000) { /* smooth up to a 64-bit cofactor: keep the relation */
      rel_t *rl = site_cfrac_rel(sizeof(rel_t) + PRIMES);
      rl->a = bn_new(A1->n);
      memcpy(rl->a->d, A1->d, A1->n * 4);
      rl->cofactor = c->n ? c->d[0] : 1;
      memcpy(rl->exps, exps, PRIMES);
      rl->next = rels; rels = rl; kept++;
    }
    free(c);
  }
  sink += kept;
  if (getenv("BENCH_VERBOSE")) fprintf(stderr, "cfrac: %zu relations\n", kept);
}

/* ---- espresso: a set-minimizer's churn. Cubes are bit vectors of 2-bit literals (one block each,
 * 16-40 B), covers are arrays of cube pointers grown with realloc. Each pass merges random pairs of
 * cubes into their consensus, drops cubes contained in another, and replaces the cover ---------- */
typedef struct { uint32_t nw; uint64_t w[]; } cube_t; /* per variable 01 = 0, 10 = 1, 11 = - */
typedef struct { size_t n, cap; cube_t **c; } cover_t;
static cube_t *cube_new(uint32_t nw) {
  cube_t *c = site_espresso_cube(sizeof(cube_t) + nw * sizeof(uint64_t));
  c->nw = nw;
  return c;
}
static void cover_add(cover_t *f, cube_t *c) {
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 16;
    f->c = f->c ? site_espresso_grow(f->c, f->cap * sizeof(cube_t *))
                : site_espresso_cover(f->cap * sizeof(cube_t *));
  }
  f->c[f->n++] = c;
}
static int cube_contains(const cube_t *a, const cube_t *b) { /* b implies a */
  for (uint32_t i = 0; i < a->nw; i++) if (b->w[i] & ~a->w[i]) return 0;
  return 1;
}
/* the consensus of a and b when they conflict in exactly one variable, else NULL */
static cube_t *cube_consensus(const cube_t *a, const cube_t *b) {
  int conflicts = 0;
  for (uint32_t i = 0; i < a->nw; i++) {
    uint64_t x = a->w[i] & b->w[i];
    uint64_t empty = ~(x | x >> 1) & 0x5555555555555555ULL; /* variables with no literal left */
    conflicts += __builtin_popcountll(empty);
    if (conflicts > 1) return NULL;
  }
  if (conflicts != 1) return NULL;
  cube_t *c = cube_new(a->nw);
  for (uint32_t i = 0; i < a->nw; i++) {
    uint64_t x = a->w[i] & b->w[i];
    uint64_t empty = ~(x | x >> 1) & 0x5555555555555555ULL;
    c->w[i] = x | empty | empty << 1; /* the conflicting variable becomes a don't-care */
  }
  return c;
}
static void espresso(void) {
  rng_t r = {0xe5e5};
  size_t problems = scaled(6000);
  for (size_t pb = 0; pb < problems; pb++) {
    uint32_t nw = (uint32_t)range(&r, 1, 3); /* 32-96 variables */
    cover_t f = {0, 0, NULL};
    size_t m = range(&r, 100, 400);
    for (size_t i = 0; i < m; i++) {
      cube_t *c = cube_new(nw);
      for (uint32_t k = 0; k < nw; k++) {
        uint64_t w = 0;
        for (int v = 0; v < 32; v++) { /* mostly don't-cares, a few literals */
          uint64_t x = rnd(&r) % 8;
          w |= (x == 0 ? 1ULL : x == 1 ? 2ULL : 3ULL) << (2 * v);
        }
        c->w[k] = w;
      }
      cover_add(&f, c);
    }
    for (int pass = 0; pass < 8; pass++) {
      cover_t g = {0, 0, NULL};
      /* expand: consensus of random pairs */
      for (size_t t = 0; t < f.n * 4; t++) {
        cube_t *c = cube_consensus(f.c[rnd(&r) % f.n], f.c[rnd(&r) % f.n]);
        if (c) cover_add(&g, c);
      }
      /* irredundant: keep a cube unless a sampled cube of the new cover contains it */
      for (size_t i = 0; i < f.n; i++) {
        int red = 0;
        for (int t = 0; t < 8 && g.n && !red; t++) red = cube_contains(g.c[rnd(&r) % g.n], f.c[i]);
        if (red) free(f.c[i]);
        else cover_add(&g, f.c[i]);
      }
      free(f.c);
      f = g;
      while (f.n > 600) free(f.c[--f.n]); /* bound the cover */
    }
    for (size_t i = 0; i < f.n; i++) free(f.c[i]);
    free(f.c);
  }
}

/* ---- barnes: a Barnes-Hut n-body simulation; the octree is rebuilt every step (one 100 B
 * node per cell, all freed at the end of the step) and the forces dominate ------------------- */
typedef struct bnode {
  double mass, cm[3], ctr[3], half;
  int body; /* leaf: the body's index, else -1 */
  struct bnode *kid[8];
} bnode_t;
typedef struct { double p[3], v[3], a[3], m; } body_t;
static bnode_t *bnode_new(const double ctr[3], double half) {
  bnode_t *n = site_barnes_node(sizeof(bnode_t));
  memset(n, 0, sizeof *n);
  memcpy(n->ctr, ctr, sizeof n->ctr);
  n->half = half;
  n->body = -1;
  return n;
}
static int octant(const bnode_t *n, const double p[3]) {
  return (p[0] > n->ctr[0]) | (p[1] > n->ctr[1]) << 1 | (p[2] > n->ctr[2]) << 2;
}
static bnode_t *bnode_kid(bnode_t *n, int o) {
  if (!n->kid[o]) {
    double c[3], h = n->half / 2;
    for (int k = 0; k < 3; k++) c[k] = n->ctr[k] + ((o >> k) & 1 ? h : -h);
    n->kid[o] = bnode_new(c, h);
  }
  return n->kid[o];
}
static void bnode_insert(bnode_t *n, body_t *b, int i, int depth) {
  if (n->mass == 0 && n->body < 0 && !n->kid[0] && !n->kid[1] && !n->kid[2] && !n->kid[3] &&
      !n->kid[4] && !n->kid[5] && !n->kid[6] && !n->kid[7]) {
    n->body = i; n->mass = b[i].m; memcpy(n->cm, b[i].p, sizeof n->cm);
    return;
  }
  if (n->body >= 0 && depth < 40) { /* split the leaf */
    int j = n->body;
    n->body = -1;
    bnode_insert(bnode_kid(n, octant(n, b[j].p)), b, j, depth + 1);
  } else if (n->body >= 0) {
    return; /* coincident bodies: merged into this leaf */
  }
  double m = n->mass + b[i].m;
  for (int k = 0; k < 3; k++) n->cm[k] = (n->cm[k] * n->mass + b[i].p[k] * b[i].m) / m;
  n->mass = m;
  bnode_insert(bnode_kid(n, octant(n, b[i].p)), b, i, depth + 1);
}
static void bnode_force(const bnode_t *n, body_t *b, int i) {
  if (!n || n->mass == 0 || n->body == i) return;
  double d[3], r2 = 1e-4;
  for (int k = 0; k < 3; k++) { d[k] = n->cm[k] - b[i].p[k]; r2 += d[k] * d[k]; }
  if (n->body >= 0 || 4 * n->half * n->half < 0.25 * r2) { /* far enough (theta 0.5) */
    double f = n->mass / (r2 * sqrt(r2));
    for (int k = 0; k < 3; k++) b[i].a[k] += f * d[k];
    return;
  }
  for (int o = 0; o < 8; o++) bnode_force(n->kid[o], b, i);
}
static void bnode_free(bnode_t *n) {
  if (!n) return;
  for (int o = 0; o < 8; o++) bnode_free(n->kid[o]);
  free(n);
}
static void barnes(void) {
  enum { BODIES = 2048 };
  static body_t b[BODIES];
  rng_t r = {0xba53};
  for (int i = 0; i < BODIES; i++) {
    for (int k = 0; k < 3; k++) b[i].p[k] = (double)(rnd(&r) % 2000001) / 1e6 - 1.0;
    b[i].m = 1.0 / BODIES;
  }
  size_t steps = scaled(300);
  for (size_t s = 0; s < steps; s++) {
    double c[3] = {0, 0, 0}, half = 1;
    for (int i = 0; i < BODIES; i++)
      for (int k = 0; k < 3; k++) while (fabs(b[i].p[k]) > half) half *= 2;
    bnode_t *root = bnode_new(c, half);
    for (int i = 0; i < BODIES; i++) bnode_insert(root, b, i, 0);
    for (int i = 0; i < BODIES; i++) {
      memset(b[i].a, 0, sizeof b[i].a);
      bnode_force(root, b, i);
    }
    for (int i = 0; i < BODIES; i++)
      for (int k = 0; k < 3; k++) { b[i].v[k] += 1e-3 * b[i].a[k]; b[i].p[k] += 1e-3 * b[i].v[k]; }
    bnode_free(root);
  }
}

/* ---- server: larson's server simulation with many threads. Each of 12 chains (more threads
 * than cores) replaces random blocks of its slot array (16-1000 B, "requests") and sends 1 in 4
 * operations a "response" block (32-512 B) to another chain's mailbox, which that chain's thread
 * frees (in batches, every 64 operations); a mailbox holds at most 2000 blocks, so the live
 * memory does not depend on the scheduling.
 * A thread works one generation, then starts its successor on the same chain and exits, so the
 * successor frees the blocks of a dead thread, as in larson ----------------------------------- */
enum { SERVER_THREADS = 12, SERVER_SLOTS = 2000, SERVER_OPS = 20000, SERVER_BACKLOG = 2000 };
typedef struct resp { struct resp *next; } resp_t;
typedef struct {
  void *slot[SERVER_SLOTS];
  rng_t r;
  size_t gens;
  resp_t *_Atomic mailbox;
  size_t pending; /* blocks in the mailbox, approximately (atomic) */
} server_chain_t;
static server_chain_t server_chain[SERVER_THREADS];
static pthread_mutex_t server_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t server_cv = PTHREAD_COND_INITIALIZER;
static int server_done;
static void server_drain(server_chain_t *c) {
  resp_t *p = __atomic_exchange_n(&c->mailbox, NULL, __ATOMIC_ACQUIRE);
  size_t n = 0;
  while (p) { resp_t *nx = p->next; free(p); p = nx; n++; }
  __atomic_sub_fetch(&c->pending, n, __ATOMIC_RELAXED);
}
static void *server_thread(void *arg) {
  size_t id = (size_t)arg;
  server_chain_t *c = &server_chain[id];
  for (size_t i = 0; i < SERVER_OPS; i++) {
    uint64_t x = rnd(&c->r);
    size_t k = x % SERVER_SLOTS;
    free(c->slot[k]);
    c->slot[k] = site_server_req(range(&c->r, 16, 1000));
    if ((x >> 32 & 3) == 0) {
      resp_t *p = site_server_resp(range(&c->r, 32, 512));
      server_chain_t *to = &server_chain[(id + 1 + (x >> 40) % (SERVER_THREADS - 1)) % SERVER_THREADS];
      if (__atomic_load_n(&to->pending, __ATOMIC_RELAXED) >= SERVER_BACKLOG) {
        free(p); /* the receiver is behind (not scheduled): drop the response */
      } else {
        __atomic_add_fetch(&to->pending, 1, __ATOMIC_RELAXED);
        p->next = __atomic_load_n(&to->mailbox, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&to->mailbox, &p->next, p, 1, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED)) {}
      }
    }
    if ((i & 63) == 0) server_drain(c);
  }
  server_drain(c);
  if (--c->gens) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, server_thread, arg)) { fprintf(stderr, "workloads: pthread_create\n"); exit(3); }
    pthread_attr_destroy(&at);
  } else {
    pthread_mutex_lock(&server_mu);
    server_done++;
    pthread_cond_signal(&server_cv);
    pthread_mutex_unlock(&server_mu);
  }
  return NULL;
}
static void server(void) {
  size_t gens = scaled(100);
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  for (size_t i = 0; i < SERVER_THREADS; i++) {
    server_chain[i].r.s = 0x51ed270b27ULL * (i + 1);
    server_chain[i].gens = gens;
  }
  for (size_t i = 0; i < SERVER_THREADS; i++) {
    pthread_t t;
    if (pthread_create(&t, &at, server_thread, (void *)i)) { fprintf(stderr, "workloads: pthread_create\n"); exit(3); }
  }
  pthread_attr_destroy(&at);
  pthread_mutex_lock(&server_mu);
  while (server_done < SERVER_THREADS) pthread_cond_wait(&server_cv, &server_mu);
  pthread_mutex_unlock(&server_mu);
  for (size_t i = 0; i < SERVER_THREADS; i++) server_drain(&server_chain[i]);
}

/* ---- mstress: multi-thread stress with short-lived threads. Every round starts 8 threads (on
 * 2 cores) that each allocate and free a burst of mostly small blocks (1 in 256 is 4-256 KiB),
 * replace part of the blocks their index kept from the previous round (allocated by a thread
 * now dead), and swap blocks through a shared transfer array (freed by whichever thread takes
 * them: often another live thread); then they exit and the next round starts ----------------- */
enum { MS_THREADS = 8, MS_KEEP = 2000, MS_LOCAL = 256, MS_TRANSFER = 4096, MS_BURST = 20000 };
static void *ms_keep[MS_THREADS][MS_KEEP];
static void *_Atomic ms_transfer[MS_TRANSFER];
static size_t ms_round;
static size_t ms_size(rng_t *r) {
  uint64_t x = rnd(r);
  if ((x & 255) == 0) return range(r, 4096, 256 * 1024);
  return (x & 3) ? range(r, 8, 128) : range(r, 129, 1024);
}
static void *mstress_thread(void *arg) {
  size_t id = (size_t)arg;
  rng_t r = {0x3a5ULL + ms_round * 0x9e3779b97f4a7c15ULL + id * 0x632be59bd9b4e019ULL};
  void *local[MS_LOCAL] = {0};
  for (size_t i = 0; i < MS_BURST; i++) {
    uint64_t x = rnd(&r);
    size_t k = (x >> 8) % MS_LOCAL;
    free(local[k]);
    local[k] = site_mstress_burst(ms_size(&r));
    if ((x & 7) == 0) { /* through the transfer array: the previous occupant is freed here */
      void *p = site_mstress_pass(range(&r, 16, 512));
      free(__atomic_exchange_n(&ms_transfer[(x >> 20) % MS_TRANSFER], p, __ATOMIC_ACQ_REL));
    }
    if ((x & 15) == 1) { /* replace a block a dead thread of an earlier round kept */
      size_t j = (x >> 32) % MS_KEEP;
      free(ms_keep[id][j]);
      ms_keep[id][j] = site_mstress_keep(range(&r, 8, 256));
    }
  }
  for (size_t k = 0; k < MS_LOCAL; k++) free(local[k]);
  return NULL;
}
static void mstress(void) {
  size_t rounds = scaled(250);
  for (ms_round = 0; ms_round < rounds; ms_round++) {
    pthread_t th[MS_THREADS];
    for (size_t i = 0; i < MS_THREADS; i++)
      if (pthread_create(&th[i], NULL, mstress_thread, (void *)i)) { fprintf(stderr, "workloads: pthread_create\n"); exit(3); }
    for (size_t i = 0; i < MS_THREADS; i++) pthread_join(th[i], NULL);
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
    fprintf(stderr, "usage: workloads churn|larson|realloc|large|longlived|deep|cfrac|espresso|"
                    "barnes|server|mstress [scale]\n");
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
  else if (!strcmp(m, "cfrac")) cfrac();
  else if (!strcmp(m, "espresso")) espresso();
  else if (!strcmp(m, "barnes")) barnes();
  else if (!strcmp(m, "server")) server();
  else if (!strcmp(m, "mstress")) mstress();
  else { fprintf(stderr, "workloads: unknown mode %s\n", m); return 2; }
  probe();
  return 0;
}
