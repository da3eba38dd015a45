/* gcbench.c - GCBench (Ellis, Kovac, Boehm), written for palloc from its published description,
 * compiled twice: against palloc's GC arena (default) and against Boehm GC (-DUSE_BOEHM).
 *
 * Build and drop a depth-18 "stretch" tree; keep a depth-16 tree and a 500,000-double
 * pointer-free array live; for depth d = 4, 6, ..., 16 build NumIters(d) = 2*TreeSize(18) /
 * TreeSize(d) trees top-down (Populate) and as many bottom-up (MakeTree), dropping each;
 * finally check the long-lived data (every node of the tree is counted). Node = {left, right, int i, int j}.
 *
 * Prints one line of figures: total wall time, process CPU time, collections, peak heap, median and max pause.
 * Pauses: palloc, every collection (the whole cycle stops the world; PauseNs ring); Boehm,
 * GC_EVENT_START..GC_EVENT_END of each collection via GC_set_on_collection_event.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef USE_BOEHM
#include <gc.h>
#define COLLECTOR "boehm"
#define ALLOC(n) GC_MALLOC(n)
#define ALLOC_ATOMIC(n) GC_MALLOC_ATOMIC(n)
#else
#include "palloc_gc.h"
#define COLLECTOR "palloc"
static palloc_gc_t *gc;
#define ALLOC(n) palloc_gc_malloc(gc, n)
#define ALLOC_ATOMIC(n) palloc_gc_malloc_atomic(gc, n)
#endif

enum { kStretchTreeDepth = 18, kLongLivedTreeDepth = 16, kArraySize = 500000,
       kMinTreeDepth = 4, kMaxTreeDepth = 16 };

typedef struct Node { struct Node *left, *right; int i, j; } Node;

static Node *new_node(Node *l, Node *r) {
  Node *n = ALLOC(sizeof(Node));
  n->left = l;
  n->right = r;
  return n;
}
static int tree_size(int d) { return (1 << (d + 1)) - 1; }
static int num_iters(int d) { return 2 * tree_size(kStretchTreeDepth) / tree_size(d); }

static void populate(int depth, Node *n) {
  if (depth <= 0) return;
  depth--;
  n->left = new_node(NULL, NULL);
  n->right = new_node(NULL, NULL);
  populate(depth, n->left);
  populate(depth, n->right);
}

static long count(const Node *n) { return n == NULL ? 0 : 1 + count(n->left) + count(n->right); }

static Node *make_tree(int depth) {
  if (depth <= 0) return new_node(NULL, NULL);
  Node *l = make_tree(depth - 1);
  Node *r = make_tree(depth - 1);
  return new_node(l, r);
}

static void time_construction(int depth) {
  int iters = num_iters(depth);
  for (int i = 0; i < iters; i++) {
    Node *t = new_node(NULL, NULL);
    populate(depth, t);
  }
  for (int i = 0; i < iters; i++) (void)make_tree(depth);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

#ifdef USE_BOEHM
static uint64_t pauses[4096], pause_start;
static size_t npauses;
static uint64_t ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static void on_event(GC_EventType e) {
  if (e == GC_EVENT_START) pause_start = ns();
  if (e == GC_EVENT_END && npauses < 4096) pauses[npauses++] = ns() - pause_start;
}
#endif

int main(void) {
#ifdef USE_BOEHM
  GC_INIT();
  GC_set_on_collection_event(on_event);
#else
  gc = palloc_gc_create(NULL); /* PALLOC_GOGC etc. from the environment; data+bss scanned */
#endif
  double t0 = now_s();
  (void)make_tree(kStretchTreeDepth);
  /* volatile: the tree must stay reachable from this frame until it is checked at the end (a
   * conservative collector sees only what the compiled code keeps) */
  Node *volatile long_lived = new_node(NULL, NULL);
  populate(kLongLivedTreeDepth, long_lived);
  double *array = ALLOC_ATOMIC(sizeof(double) * kArraySize);
  for (int i = 0; i < kArraySize / 2; i++) array[i] = 1.0 / i;
  for (int d = kMinTreeDepth; d <= kMaxTreeDepth; d += 2) time_construction(d);
  if (count(long_lived) != tree_size(kLongLivedTreeDepth) || array[1000] != 1.0 / 1000) {
    fprintf(stderr, "gcbench: long-lived data damaged\n");
    return 1;
  }
  double elapsed = now_s() - t0;
  struct timespec cpu_ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_ts); /* all threads (Boehm's markers too) */
  double cpu = (double)cpu_ts.tv_sec + (double)cpu_ts.tv_nsec / 1e9;

  uint64_t *p, n, heap;
#ifdef USE_BOEHM
  p = pauses;
  n = npauses;
  heap = GC_get_heap_size();
  uint64_t collections = GC_get_gc_no();
#else
  static palloc_gc_stats_t s;
  palloc_gc_read_stats(gc, &s);
  n = s.num_gc < PALLOC_GC_PAUSES ? s.num_gc : PALLOC_GC_PAUSES;
  p = s.pause_ns;
  heap = s.heap_sys;
  uint64_t collections = s.num_gc;
#endif
  qsort(p, n, sizeof *p, cmp_u64);
  printf("%-6s time %.3f s  cpu %.3f s  collections %llu  peak heap %.1f MiB  pause median %.2f ms  max %.2f ms\n",
         COLLECTOR, elapsed, cpu, (unsigned long long)collections, (double)heap / 1048576.0,
         n ? (double)p[n / 2] / 1e6 : 0.0, n ? (double)p[n - 1] / 1e6 : 0.0);
  return 0;
}
