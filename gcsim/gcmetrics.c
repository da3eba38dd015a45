/* gcmetrics.c - gcsim's figures for PALLOC_HTTP's /metrics (alloc/http.c), as an observer's
 * metrics hook (alloc/observer.h): every arena's MemStats-shaped figures, labelled
 * arena="N" (N = the arena's creation number), and, when PALLOC_TRACE runs the what-if
 * collector, its cycles, heap goal and GC CPU fraction.
 *
 * An arena has no lock: one thread owns it (palloc_gc.h), so the endpoint's thread may not read
 * its fields. The owner publishes them instead, into a record of atomics under a sequence
 * counter (even: stable), at each slow-path visit (a span refill or a large object) and at
 * the end of each cycle: what /metrics shows is at most one span's allocations old. The records
 * are listed under a mutex, which palloc_gc_destroy takes to unlist its record before the arena
 * goes, so a reader never touches an arena, only records, and never a freed one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "gcinternal.h"
#include "observer.h"

enum { F_CYCLES, F_FORCED, F_PAUSE_NS, F_CPU_NS, F_HEAP_ALLOC, F_NEXT_GC, F_TOTAL_ALLOC,
       F_MALLOCS, F_FREES, F_HEAP_SYS, F_SYS, F_MARKED, F_GOGC, F_LIMIT, NFIG };

static const struct {
  const char *name, *type, *help;
} fig[NFIG] = {
  [F_CYCLES] = {"palloc_gc_cycles_total", "counter", "gcsim arena: completed collections (NumGC)."},
  [F_FORCED] = {"palloc_gc_forced_cycles_total", "counter",
                "gcsim arena: collections forced by palloc_gc_collect (NumForcedGC)."},
  [F_PAUSE_NS] = {"palloc_gc_pause_seconds_total", "counter",
                  "gcsim arena: time the world stood still for collections (PauseTotalNs)."},
  [F_CPU_NS] = {"palloc_gc_cpu_fraction", "gauge",
                "gcsim arena: collector CPU over wall time since start, 1 P (GCCPUFraction)."},
  [F_HEAP_ALLOC] = {"palloc_gc_heap_alloc_bytes", "gauge",
                    "gcsim arena: bytes of allocated objects (HeapAlloc)."},
  [F_NEXT_GC] = {"palloc_gc_next_gc_bytes", "gauge", "gcsim arena: heap goal of the next collection (NextGC)."},
  [F_TOTAL_ALLOC] = {"palloc_gc_alloc_bytes_total", "counter",
                     "gcsim arena: bytes allocated since creation (TotalAlloc)."},
  [F_MALLOCS] = {"palloc_gc_mallocs_total", "counter", "gcsim arena: objects allocated (Mallocs)."},
  [F_FREES] = {"palloc_gc_frees_total", "counter", "gcsim arena: objects freed (Frees)."},
  [F_HEAP_SYS] = {"palloc_gc_heap_sys_bytes", "gauge",
                  "gcsim arena: address space committed for objects (HeapSys)."},
  [F_SYS] = {"palloc_gc_sys_bytes", "gauge", "gcsim arena: HeapSys and the collector's metadata (Sys)."},
  [F_MARKED] = {"palloc_gc_heap_marked_bytes", "gauge", "gcsim arena: bytes marked by the last collection."},
  [F_GOGC] = {"palloc_gc_gogc_percent", "gauge", "gcsim arena: GOGC (-1: off)."},
  [F_LIMIT] = {"palloc_gc_memory_limit_bytes", "gauge", "gcsim arena: the memory limit (GOMEMLIMIT)."},
};

typedef struct gc_pub_s {
  struct gc_pub_s *next;
  uint64_t id;
  _Atomic uint64_t seq;   /* odd while the owner writes */
  _Atomic uint64_t v[NFIG];
} gc_pub_t;

static pthread_mutex_t pubs_mu = PTHREAD_MUTEX_INITIALIZER;
static gc_pub_t *pubs;
static uint64_t arenas_made;

void palloc_gc_metrics_add(palloc_gc_t *a) {
  void *m = mmap(NULL, sizeof(gc_pub_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return; /* the arena works on, without figures */
  gc_pub_t *p = m;
  pthread_mutex_lock(&pubs_mu);
  p->id = ++arenas_made;
  a->pub = p;
  palloc_gc_publish(a);
  p->next = pubs;
  pubs = p;
  pthread_mutex_unlock(&pubs_mu);
}

void palloc_gc_metrics_remove(palloc_gc_t *a) {
  if (a->pub == NULL) return;
  pthread_mutex_lock(&pubs_mu);
  for (gc_pub_t **q = &pubs; *q; q = &(*q)->next)
    if (*q == a->pub) {
      *q = a->pub->next;
      break;
    }
  pthread_mutex_unlock(&pubs_mu);
  munmap(a->pub, sizeof(gc_pub_t));
  a->pub = NULL;
}

void palloc_gc_publish(palloc_gc_t *a) {
  gc_pub_t *p = a->pub;
  if (p == NULL) return;
  uint64_t v[NFIG] = {
    [F_CYCLES] = a->num_gc, [F_FORCED] = a->num_forced, [F_PAUSE_NS] = a->pause_total,
    [F_CPU_NS] = a->gc_cpu_total, [F_HEAP_ALLOC] = a->heap_live, [F_NEXT_GC] = a->goal,
    [F_TOTAL_ALLOC] = a->total_alloc, [F_MALLOCS] = a->mallocs, [F_FREES] = a->frees,
    [F_HEAP_SYS] = a->committed - a->base - GC_PAGE,
    [F_SYS] = a->committed - a->base - GC_PAGE + a->meta_bytes +
              a->stack_cap * sizeof(gc_range_t) +
              ((a->bump - a->base) >> GC_PAGE_SHIFT) * sizeof(gc_span_t *),
    [F_MARKED] = a->heap_marked, [F_GOGC] = (uint64_t)(int64_t)a->gogc,
    [F_LIMIT] = (uint64_t)a->memory_limit,
  };
  uint64_t s = atomic_load_explicit(&p->seq, memory_order_relaxed);
  atomic_store_explicit(&p->seq, s + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  for (int i = 0; i < NFIG; i++) atomic_store_explicit(&p->v[i], v[i], memory_order_relaxed);
  atomic_store_explicit(&p->seq, s + 2, memory_order_release);
}

/* One consistent copy of p's figures (the owner rarely writes: a few tries suffice); false if
 * the owner kept writing. */
static bool read_pub(gc_pub_t *p, uint64_t v[NFIG]) {
  for (int tries = 0; tries < 100; tries++) {
    uint64_t s0 = atomic_load_explicit(&p->seq, memory_order_acquire);
    if (s0 & 1) continue;
    for (int i = 0; i < NFIG; i++) v[i] = atomic_load_explicit(&p->v[i], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&p->seq, memory_order_relaxed) == s0) return true;
  }
  return false;
}

static void gc_metrics(palloc_metric_emit_t emit, void *ctx) {
  uint64_t cycles, goal;
  int64_t heap, live;
  double frac;
  if (palloc_whatif_figures(&cycles, &goal, &heap, &live, &frac)) {
    emit(ctx, "palloc_whatif_gc_cycles_total", "counter",
         "PALLOC_TRACE what-if: collections a Go-style collector would have run.", "", (double)cycles);
    emit(ctx, "palloc_whatif_heap_goal_bytes", "gauge",
         "PALLOC_TRACE what-if: the pacer's heap goal for the next collection.", "", (double)goal);
    emit(ctx, "palloc_whatif_heap_bytes", "gauge",
         "PALLOC_TRACE what-if: the simulated collected heap.", "", (double)heap);
    emit(ctx, "palloc_whatif_live_bytes", "gauge",
         "PALLOC_TRACE what-if: bytes allocated and not freed (usable sizes).", "", (double)live);
    emit(ctx, "palloc_whatif_gc_cpu_fraction", "gauge",
         "PALLOC_TRACE what-if: simulated collector time over the simulated clock, 1 P.", "", frac);
  }
  pthread_mutex_lock(&pubs_mu);
  uint64_t since = palloc_gc_since_start();
  for (int f = 0; f < NFIG; f++)
    for (gc_pub_t *p = pubs; p; p = p->next) {
      uint64_t v[NFIG];
      if (!read_pub(p, v)) continue;
      char labels[48];
      snprintf(labels, sizeof labels, "{arena=\"%llu\"}", (unsigned long long)p->id);
      double x = (double)v[f];
      if (f == F_PAUSE_NS) x = (double)v[f] / 1e9;
      if (f == F_CPU_NS) x = since ? (double)v[f] / (double)since : 0;
      if (f == F_GOGC) x = (double)(int64_t)v[f];
      emit(ctx, fig[f].name, fig[f].type, fig[f].help, labels, x);
    }
  pthread_mutex_unlock(&pubs_mu);
}

/* Fork: a child must not inherit pubs_mu held by a thread that does not exist there (the
 * endpoint's thread, in gc_metrics; an arena's owner, in add or remove): its next
 * palloc_gc_create or palloc_gc_destroy would wait forever. pubs_mu is a leaf (its holders take
 * no other lock and wait for nothing but a write to a memfd), so palloc's fork handlers may take
 * it before alloc's locks and release it after. */
static void gc_metrics_fork_prepare(void) { pthread_mutex_lock(&pubs_mu); }
static void gc_metrics_fork_release(void) { pthread_mutex_unlock(&pubs_mu); }

static const palloc_observer_t gc_metrics_observer = {.name = "gcmetrics", .metrics = gc_metrics,
                                                      .fork_prepare = gc_metrics_fork_prepare,
                                                      .fork_parent = gc_metrics_fork_release,
                                                      .fork_child = gc_metrics_fork_release};
PALLOC_OBSERVER(gc_metrics_observer);
