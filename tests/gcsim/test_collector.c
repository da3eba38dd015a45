/* test_collector.c - the GC arena frees exactly what is unreachable.
 *
 * Lists, trees and graphs with cycles are built, dropped and rebuilt across hundreds of
 * collections (forced and paced), and checked element by element after every one. Objects held
 * only by the stack, only by a global, only by a registered root, only through an interior
 * pointer survive; dropped ones are freed (HeapObjects falls back); the contents of atomic
 * objects are not scanned. Also: the O(1) index arithmetic is exact for every offset of every
 * size class, and a structure wider than the initial mark stack is marked completely.
 * Runs in the ASan+UBSan build too ('sanitize' suite).
 */
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "../check.h"
#include "gcinternal.h"

static palloc_gc_t *make(int gogc, int scan_data) {
  palloc_gc_options_t o;
  palloc_gc_options_init(&o);
  o.gogc = gogc;
  o.memory_limit = PALLOC_GC_NO_LIMIT;
  o.scan_data = scan_data;
  o.trace = 0;
  palloc_gc_t *g = palloc_gc_create(&o);
  if (g == NULL) abort();
  return g;
}

static uint64_t objects(palloc_gc_t *g) {
  palloc_gc_stats_t s;
  palloc_gc_read_stats(g, &s);
  return s.heap_objects;
}

/* Overwrites dead stack frames so stale copies of pointers do not keep garbage alive. */
__attribute__((noinline)) static void clobber_stack(void) {
  volatile char buf[16384];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = 0;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* ---- structures --------------------------------------------------------------------------- */
typedef struct lnode { struct lnode *next; uint64_t value; char *blob; } lnode_t;
typedef struct tnode { struct tnode *left, *right; uint64_t key; } tnode_t;
typedef struct vertex { uint64_t id; size_t degree; struct vertex **edges; } vertex_t;

/* roots live in malloc'd memory registered as a root range (the arena does not scan data) */
typedef struct roots { lnode_t *list; tnode_t *tree; vertex_t **graph; uint64_t seed[3]; } roots_t;

#define LIST_N 700
#define TREE_DEPTH 10
#define GRAPH_N 300

__attribute__((noinline)) static lnode_t *build_list(palloc_gc_t *g, uint64_t seed) {
  lnode_t *head = NULL;
  for (uint64_t i = 0; i < LIST_N; i++) {
    lnode_t *n = palloc_gc_malloc(g, sizeof *n);
    size_t bl = 1 + (seed + i) % 200; /* atomic blob of varying size class */
    n->blob = palloc_gc_malloc_atomic(g, bl);
    memset(n->blob, (int)((seed + i) & 0x7f), bl);
    n->value = seed * 1000003 + i;
    n->next = head;
    head = n;
  }
  return head;
}

static int check_list(const lnode_t *n, uint64_t seed) {
  for (uint64_t i = LIST_N; i-- > 0; n = n->next) {
    if (n == NULL || n->value != seed * 1000003 + i) return 0;
    size_t bl = 1 + (seed + i) % 200;
    for (size_t k = 0; k < bl; k++)
      if (n->blob[k] != (char)((seed + i) & 0x7f)) return 0;
  }
  return n == NULL;
}

static tnode_t *build_tree(palloc_gc_t *g, int depth, uint64_t key) {
  if (depth == 0) return NULL;
  tnode_t *t = palloc_gc_malloc(g, sizeof *t);
  t->key = key;
  t->left = build_tree(g, depth - 1, key * 2);
  t->right = build_tree(g, depth - 1, key * 2 + 1);
  return t;
}

static int check_tree(const tnode_t *t, int depth, uint64_t key) {
  if (depth == 0) return t == NULL;
  return t != NULL && t->key == key && check_tree(t->left, depth - 1, key * 2) &&
         check_tree(t->right, depth - 1, key * 2 + 1);
}

/* A random directed graph with cycles; the expected edges are kept as ids outside the arena. */
static uint32_t expect_edges[GRAPH_N][8];
static size_t expect_degree[GRAPH_N];

__attribute__((noinline)) static vertex_t **build_graph(palloc_gc_t *g, uint64_t seed) {
  vertex_t **v = palloc_gc_malloc(g, GRAPH_N * sizeof *v);
  for (size_t i = 0; i < GRAPH_N; i++) {
    v[i] = palloc_gc_malloc(g, sizeof(vertex_t));
    v[i]->id = seed * 7919 + i;
  }
  for (size_t i = 0; i < GRAPH_N; i++) {
    size_t d = 1 + rnd() % 8;
    v[i]->degree = d;
    v[i]->edges = palloc_gc_malloc(g, d * sizeof(vertex_t *));
    expect_degree[i] = d;
    for (size_t k = 0; k < d; k++) {
      uint32_t to = (uint32_t)(k == 0 ? (i + 1) % GRAPH_N : rnd() % GRAPH_N); /* a ring: cycles */
      expect_edges[i][k] = to;
      v[i]->edges[k] = v[to];
    }
  }
  return v;
}

static int check_graph(vertex_t **v, uint64_t seed) {
  if (v == NULL) return 0;
  for (size_t i = 0; i < GRAPH_N; i++) {
    if (v[i] == NULL || v[i]->id != seed * 7919 + i || v[i]->degree != expect_degree[i]) return 0;
    for (size_t k = 0; k < v[i]->degree; k++)
      if (v[i]->edges[k] != v[expect_edges[i][k]] ||
          v[i]->edges[k]->id != seed * 7919 + expect_edges[i][k])
        return 0;
  }
  return 1;
}

__attribute__((noinline)) static void garbage(palloc_gc_t *g, int n) {
  for (int i = 0; i < n; i++) {
    void **p = palloc_gc_malloc(g, 16 + (size_t)(rnd() % 600));
    p[0] = p; /* a self-cycle: garbage with cycles */
  }
}

/* The rounds run in their own frame, so no stale copy of a dropped pointer stays in the
 * caller's frame once they return (conservative scanning would honour it). */
__attribute__((noinline)) static int rounds(palloc_gc_t *g, roots_t *r) {
  int bad = 0;
  uint64_t seed = 1;
  r->seed[0] = seed++, r->list = build_list(g, r->seed[0]);
  r->seed[1] = seed++, r->tree = build_tree(g, TREE_DEPTH, 1);
  r->seed[2] = seed++, r->graph = build_graph(g, r->seed[2]);
  for (int round = 0; round < 400; round++) {
    switch (round % 3) { /* drop one structure, make garbage, rebuild it */
    case 0: r->list = NULL; garbage(g, 2500); r->seed[0] = seed++; r->list = build_list(g, r->seed[0]); break;
    case 1: r->tree = NULL; garbage(g, 2500); r->tree = build_tree(g, TREE_DEPTH, 1); break;
    case 2: r->graph = NULL; garbage(g, 2500); r->seed[2] = seed++; r->graph = build_graph(g, r->seed[2]); break;
    }
    if (round % 5 == 0) palloc_gc_collect(g);
    bad += !check_list(r->list, r->seed[0]);
    bad += !check_tree(r->tree, TREE_DEPTH, 1);
    bad += !check_graph(r->graph, r->seed[2]);
  }
  return bad;
}

__attribute__((noinline)) static void drop_all(roots_t *r) { r->list = NULL, r->tree = NULL, r->graph = NULL; }

struct final_arg {
  palloc_gc_t *g;
  uint64_t after;
};
static void *final_collect(void *arg) {
  struct final_arg *fa = arg;
  palloc_gc_collect(fa->g);
  fa->after = objects(fa->g);
  return NULL;
}

static void test_structures(void) {
  palloc_gc_t *g = make(30, 0);
  roots_t *r = calloc(1, sizeof *r);
  palloc_gc_add_root(g, r, sizeof *r);
  int bad = rounds(g, r);
  palloc_gc_stats_t s;
  palloc_gc_read_stats(g, &s);
  CHECK(bad == 0, "%d structure checks failed", bad);
  CHECK(s.num_gc >= 300, "only %llu collections", (unsigned long long)s.num_gc);
  CHECK(s.num_gc > s.num_forced_gc + 100, "paced collections: %llu of %llu",
        (unsigned long long)(s.num_gc - s.num_forced_gc), (unsigned long long)s.num_gc);
  /* the live structures: list 2*LIST_N, tree 2^d-1, graph 1 + 2*GRAPH_N objects */
  uint64_t live = 2 * LIST_N + ((1u << TREE_DEPTH) - 1) + 1 + 2 * GRAPH_N;
  clobber_stack();
  palloc_gc_collect(g);
  uint64_t after = objects(g);
  CHECK(after >= live && after <= live + live / 50, "heap objects %llu, live %llu",
        (unsigned long long)after, (unsigned long long)live);
  /* Dropped structures must go. A conservative collector scans the collecting thread's stack
   * and registers, where this thread may still hold a stale pointer into a subtree (seen under
   * ASan: one 511-node subtree retained through a saved register). The arena belongs to one
   * thread at a time, so the final collection runs on a fresh thread that holds only r. */
  drop_all(r);
  struct final_arg fa = {g, 0};
  pthread_t th;
  pthread_create(&th, NULL, final_collect, &fa);
  pthread_join(th, NULL);
  after = fa.after;
  CHECK(after <= live / 50, "after dropping everything %llu objects remain", (unsigned long long)after);
  palloc_gc_destroy(g);
  free(r);
}

/* ---- reachability kinds ------------------------------------------------------------------- */
static void *volatile global_only;

__attribute__((noinline)) static void *fill(palloc_gc_t *g, size_t n, int c) {
  char *p = palloc_gc_malloc(g, n);
  memset(p, c, n);
  return p;
}
static int intact(const char *p, size_t n, int c) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (char)c) return 0;
  return 1;
}
__attribute__((noinline)) static void set_global(palloc_gc_t *g) { global_only = fill(g, 96, 0x5a); }

/* churn: collections, with the freed slots reallocated and overwritten */
__attribute__((noinline)) static void churn(palloc_gc_t *g) {
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < 20000; i++) memset(palloc_gc_malloc(g, 96), 0xee, 96);
    palloc_gc_collect(g);
  }
}

static void test_roots(void) {
  /* stack only (and registers): the arena scans neither data nor any root */
  palloc_gc_t *g = make(100, 0);
  char *volatile on_stack = fill(g, 96, 0x11);
  char *in_register = fill(g, 200, 0x22);
  churn(g);
  CHECK(palloc_gc_base(g, on_stack) == on_stack && intact(on_stack, 96, 0x11), "stack-held object lost");
  CHECK(palloc_gc_base(g, in_register) == in_register && intact(in_register, 200, 0x22),
        "local-variable object lost");
  palloc_gc_destroy(g);

  /* global only */
  g = make(100, 1);
  set_global(g);
  churn(g);
  CHECK(palloc_gc_base(g, global_only) == global_only && intact(global_only, 96, 0x5a),
        "global-held object lost");
  global_only = NULL;
  palloc_gc_destroy(g);

  /* registered root only, and interior pointers only (small and large objects) */
  g = make(100, 0);
  uintptr_t *root = calloc(4, sizeof *root);
  palloc_gc_add_root(g, root, 4 * sizeof *root);
  root[0] = (uintptr_t)fill(g, 64, 0x33);
  root[1] = (uintptr_t)fill(g, 500, 0x44) + 333;        /* interior */
  root[2] = (uintptr_t)fill(g, 100000, 0x55) + 70000;   /* interior, 9th page of a large one */
  root[3] = (uintptr_t)fill(g, 48, 0x66) + 47;          /* last byte */
  churn(g);
  CHECK(intact((char *)root[0], 64, 0x33), "root-held object lost");
  CHECK(intact((char *)root[1] - 333, 500, 0x44), "interior-held object lost");
  CHECK(intact((char *)root[2] - 70000, 100000, 0x55), "interior-held large object lost");
  CHECK(intact((char *)root[3] - 47, 48, 0x66), "last-byte-held object lost");
  CHECK(palloc_gc_base(g, (void *)root[2]) == (void *)(root[2] - 70000), "base of large");
  palloc_gc_remove_root(g, root);
  free(root);
  palloc_gc_destroy(g);

  /* unreachable objects are freed: 2000 held by a root range, then the range removed */
  g = make(100, 0);
  void **held = calloc(2000, sizeof *held);
  palloc_gc_add_root(g, held, 2000 * sizeof *held);
  uint64_t before = objects(g);
  for (int i = 0; i < 2000; i++) held[i] = palloc_gc_malloc(g, 40);
  clobber_stack();
  palloc_gc_collect(g);
  CHECK(objects(g) == before + 2000, "held objects: %llu", (unsigned long long)objects(g));
  int alive = 0;
  for (int i = 0; i < 2000; i++) alive += palloc_gc_base(g, held[i]) != NULL;
  CHECK(alive == 2000, "%d of 2000 held objects alive", alive);
  palloc_gc_remove_root(g, held);
  clobber_stack();
  palloc_gc_collect(g);
  alive = 0;
  for (int i = 0; i < 2000; i++) alive += palloc_gc_base(g, held[i]) != NULL;
  CHECK(alive <= 20, "%d of 2000 dropped objects still allocated", alive);
  CHECK(objects(g) <= before + 20, "heap objects did not fall back: %llu", (unsigned long long)objects(g));
  free(held);
  palloc_gc_destroy(g);
}

/* atomic objects are not scanned: pointers stored in one do not keep anything alive */
static void test_atomic(void) {
  palloc_gc_t *g = make(100, 0);
  void **root = calloc(2, sizeof *root);
  palloc_gc_add_root(g, root, 2 * sizeof *root);
  void **atomic = palloc_gc_malloc_atomic(g, 1000 * sizeof(void *));
  void **scanned = palloc_gc_malloc(g, 1000 * sizeof(void *));
  root[0] = atomic, root[1] = scanned;
  for (int i = 0; i < 1000; i++) atomic[i] = palloc_gc_malloc(g, 32);
  for (int i = 0; i < 1000; i++) scanned[i] = palloc_gc_malloc(g, 32);
  clobber_stack();
  palloc_gc_collect(g);
  int via_atomic = 0, via_scanned = 0;
  for (int i = 0; i < 1000; i++) via_atomic += palloc_gc_base(g, atomic[i]) != NULL;
  for (int i = 0; i < 1000; i++) via_scanned += palloc_gc_base(g, scanned[i]) != NULL;
  CHECK(palloc_gc_base(g, atomic) == atomic, "the atomic object itself must survive");
  CHECK(via_atomic <= 10, "%d objects kept alive through an atomic object", via_atomic);
  CHECK(via_scanned == 1000, "%d of 1000 objects kept through a scanned one", via_scanned);
  free(root);
  palloc_gc_destroy(g);
}

/* wider than the initial mark stack (64 Ki ranges) and a long list: no recursion, no loss */
static void test_wide_and_deep(void) {
  palloc_gc_t *g = make(-1, 0);
  void **root = calloc(2, sizeof *root);
  palloc_gc_add_root(g, root, 2 * sizeof *root);
  const size_t wide = 200000;
  void **arr = palloc_gc_malloc(g, wide * sizeof *arr);
  root[0] = arr;
  for (size_t i = 0; i < wide; i++) {
    uint64_t *o = palloc_gc_malloc(g, 16);
    o[1] = i;
    arr[i] = o;
  }
  lnode_t *head = NULL;
  for (uint64_t i = 0; i < 500000; i++) {
    lnode_t *n = palloc_gc_malloc(g, sizeof *n);
    n->value = i;
    n->next = head;
    head = n;
  }
  root[1] = head;
  head = NULL;
  garbage(g, 1000);
  palloc_gc_collect(g);
  size_t bad = 0;
  for (size_t i = 0; i < wide; i++) bad += ((uint64_t *)arr[i])[1] != i;
  uint64_t expect = 500000;
  for (lnode_t *n = root[1]; n != NULL; n = n->next) bad += n->value != --expect;
  CHECK(bad == 0 && expect == 0, "wide/deep structures damaged: %zu bad, %llu missing", bad,
        (unsigned long long)expect);
  CHECK(objects(g) >= 1 + wide + 500000, "objects %llu", (unsigned long long)objects(g));
  free(root);
  palloc_gc_destroy(g);
}

/* the multiply-shift index equals the division for every offset of every class's span */
static void test_index_exact(void) {
  palloc_gc_classes_init();
  size_t wrong = 0;
  for (int c = 1; c < GC_NCLASSES; c++) {
    gc_span_t s = {.start = 0, .cls = (uint16_t)c, .size = palloc_gc_class_size[c]};
    s.divmul = (uint32_t)(UINT32_MAX / (uint32_t)s.size + 1);
    size_t span = (size_t)palloc_gc_class_pages[c] * GC_PAGE;
    CHECK(span / s.size <= GC_MAX_OBJS && span / s.size >= 1, "class %d: %zu objects", c, span / s.size);
    for (uintptr_t off = 0; off < span; off++) wrong += palloc_gc_index(&s, off) != off / s.size;
    CHECK(palloc_gc_size_class(s.size) == c && palloc_gc_size_class(s.size - 15) <= c,
          "size class lookup for %llu", (unsigned long long)s.size);
  }
  CHECK(wrong == 0, "%zu wrong indexes", wrong);
  CHECK(palloc_gc_size_class(GC_MAX_SMALL + 1) == 0, "large objects have class 0");
}

/* sampled arena objects are in the heap profile while alive, and leave it when swept */
static void test_sampling(void) {
  palloc_set_sample_rate(1);
  palloc_gc_t *g = make(PALLOC_GC_OFF, 0);
  palloc_gc_malloc(g, 8); /* draws the new sampling interval */
  palloc_stats_t before, mid, after, end;
  palloc_read_stats(&before);
  void **root = calloc(100, sizeof *root);
  palloc_gc_add_root(g, root, 100 * sizeof *root);
  for (int i = 0; i < 100; i++) root[i] = palloc_gc_malloc(g, 200);
  for (int i = 0; i < 100; i++) palloc_gc_malloc_atomic(g, 300); /* garbage */
  palloc_read_stats(&mid);
  CHECK(mid.sampled_allocs - before.sampled_allocs == 200, "sampled %llu of 200",
        (unsigned long long)(mid.sampled_allocs - before.sampled_allocs));
  CHECK(mid.live_sampled_bytes - before.live_sampled_bytes == 100 * 200 + 100 * 300,
        "live sampled bytes %llu", (unsigned long long)(mid.live_sampled_bytes - before.live_sampled_bytes));
  clobber_stack();
  palloc_gc_collect(g);
  palloc_read_stats(&after);
  uint64_t freed = after.sampled_frees - before.sampled_frees;
  CHECK(freed >= 98 && freed <= 101, "the sweeper reported %llu sampled deaths, want ~100 (+1)",
        (unsigned long long)freed);
  CHECK(after.live_sampled_blocks >= before.live_sampled_blocks + 99, "survivors left the profile");
  palloc_gc_destroy(g);
  palloc_read_stats(&end);
  CHECK(end.live_sampled_blocks <= before.live_sampled_blocks,
        "destroy releases every sampled object: %llu live, %llu before",
        (unsigned long long)end.live_sampled_blocks, (unsigned long long)before.live_sampled_blocks);
  free(root);
  palloc_set_sample_rate(PALLOC_DEFAULT_SAMPLE_RATE);
}

int main(void) {
  test_index_exact();
  test_sampling();
  test_structures();
  test_roots();
  test_atomic();
  test_wide_and_deep();
  return CHECK_DONE();
}
