/* gc.c - the arena API: creation, allocation, collection cycles, pacing, statistics.
 *
 * The allocation fast path is: size class lookup, one compare of heap_live against the
 * trigger, one bitmap step in the class's cached span, counters, and clearing the slot when
 * it may hold old bytes. No lock: an arena belongs to one thread at a time (palloc_gc.h).
 *
 * A cycle stops the world (the owning thread is the world) and maps onto gctrace's phases:
 *   clock/cpu 1 "sweep termination": dropping the span caches and resetting mark state;
 *   clock 2, cpu "background": marking (roots and transitive closure), done by this thread
 *     as the one mark worker, so assist and idle mark CPU print 0 and the line says 1 P;
 *   clock/cpu 3 "mark termination": our eager sweep and the pacer update, which in Go happen
 *     at and after mark termination.
 * Clock fields are CLOCK_MONOTONIC, cpu fields CLOCK_THREAD_CPUTIME_ID of the same phase. The
 * heap before and at mark termination are equal (nothing allocates during the pause). The
 * goal printed is this cycle's goal; the cumulative GC CPU share is collector CPU over wall time
 * since program start (1 P).
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "gcinternal.h"
#include "options.h"

_Atomic int palloc_gc_arenas;

#define PERIODIC_NS ((uint64_t)120 * 1000000000u)

void palloc_gc_options_init(palloc_gc_options_t *o) {
  o->gogc = PALLOC_GC_FROM_ENV;
  o->memory_limit = PALLOC_GC_FROM_ENV;
  o->max_heap = 0;
  o->scan_data = 1;
  o->trace = PALLOC_GC_FROM_ENV;
  o->trace_fd = -1;
}

static void set_goal(palloc_gc_t *a) {
  uint64_t nonheap = a->meta_bytes + a->stack_cap * sizeof(gc_range_t) +
                     ((a->bump - a->base) >> GC_PAGE_SHIFT) * sizeof(gc_span_t *);
  a->goal = palloc_pacer_goal(a->gogc, a->memory_limit, a->heap_marked, a->scanned_stack,
                              a->scanned_globals, nonheap);
  a->trigger = a->goal;
}

palloc_gc_t *palloc_gc_create_internal(const palloc_gc_options_t *o, bool user) {
  palloc_gc_options_t d;
  if (o == NULL) {
    palloc_gc_options_init(&d);
    o = &d;
  }
  (void)palloc_gc_since_start();
  void *m = mmap(NULL, sizeof(palloc_gc_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (m == MAP_FAILED) return NULL;
  palloc_gc_t *a = m;
  memset(a, 0, sizeof *a);
  if (!palloc_gc_heap_init(a, o->max_heap ? o->max_heap : (size_t)16 << 30)) goto fail;
  if (!palloc_gc_stack_reserve(a)) {
    palloc_gc_heap_fini(a);
    goto fail;
  }
  a->gogc = o->gogc == PALLOC_GC_FROM_ENV ? (int)palloc_option_int(PALLOC_OPT_GOGC)
            : o->gogc < 0                 ? -1
                                          : o->gogc;
  a->memory_limit = o->memory_limit == PALLOC_GC_FROM_ENV ? palloc_option_int(PALLOC_OPT_MEMLIMIT)
                                                          : o->memory_limit;
  if (a->memory_limit < 0) a->memory_limit = INT64_MAX;
  a->scan_data = o->scan_data != 0;
  if (a->scan_data) palloc_gc_find_data(a);
  a->trace = o->trace == PALLOC_GC_FROM_ENV ? (int)palloc_option_int(PALLOC_OPT_TRACE) : o->trace;
  a->trace_fd = o->trace_fd;
  a->sample = true;
  palloc_limiter_init(&a->limiter, 1);
  a->limiter_stamp = a->last_gc_mono = palloc_gc_now_ns();
  set_goal(a);
  if (user) atomic_fetch_add(&palloc_gc_arenas, 1);
  if (user) palloc_gc_metrics_add(a);
  return a;
fail:
  munmap(m, sizeof(palloc_gc_t));
  return NULL;
}

palloc_gc_t *palloc_gc_create(const palloc_gc_options_t *o) {
  return palloc_gc_create_internal(o, true);
}

void palloc_gc_destroy(palloc_gc_t *a) {
  if (a == NULL) return;
  palloc_gc_metrics_remove(a);
  palloc_gc_release_all_samples(a);
  munmap(a->stack, a->stack_cap * sizeof(gc_range_t));
  palloc_gc_heap_fini(a);
  munmap(a, sizeof *a);
}

static void trace_line(palloc_gc_t *a, const char *s, size_t n) {
  palloc_gctrace_write(a->trace_fd >= 0 ? a->trace_fd : palloc_gctrace_fd(), s, n);
}

void palloc_gc_cycle(palloc_gc_t *a, bool forced) {
  uint64_t since = palloc_gc_since_start();
  uint64_t t0 = palloc_gc_now_ns(), c0 = palloc_gc_thread_cpu_ns();
  uint64_t heap0 = a->heap_live, goal = a->goal;

  palloc_gc_uncache(a); /* sweep termination */
  uint64_t t1 = palloc_gc_now_ns(), c1 = palloc_gc_thread_cpu_ns();

  palloc_gc_mark(a); /* mark */
  uint64_t t2 = palloc_gc_now_ns(), c2 = palloc_gc_thread_cpu_ns();

  palloc_gc_sweep(a); /* mark termination: sweep and pace */
  a->heap_marked = a->marked_bytes;
  a->heap_live = a->marked_bytes;
  set_goal(a);
  palloc_assert(a->heap_marked <= heap0 && a->goal >= a->heap_live && a->trigger == a->goal);
  uint64_t t3 = palloc_gc_now_ns(), c3 = palloc_gc_thread_cpu_ns();

  uint64_t pause = t3 - t0, cpu = c3 - c0;
  a->pauses[a->num_gc % PALLOC_GC_PAUSES] = pause;
  a->num_gc++;
  if (forced) a->num_forced++;
  a->pause_total += pause;
  a->gc_cpu_total += cpu;
  a->last_mark_cpu = c2 - c1;
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  a->last_gc_unix = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
  a->last_gc_mono = t3;
  palloc_limiter_account(&a->limiter, (int64_t)cpu, 0);
  a->limiter_stamp = t3;
  palloc_gc_publish(a);

  if (a->trace == PALLOC_TRACE_OFF) return;
  uint64_t elapsed = since + (t3 - t0);
  palloc_gctrace_cycle_t c = {
    .n = a->num_gc, .start_ns = since,
    .cpu_fraction = elapsed ? (double)a->gc_cpu_total / (double)elapsed : 0,
    .clock = {t1 - t0, t2 - t1, t3 - t2},
    .cpu = {c1 - c0, 0, c2 - c1, 0, c3 - c2},
    .heap0 = heap0, .heap1 = heap0, .marked = a->heap_marked, .goal = goal,
    .stacks = a->scanned_stack, .globals = a->scanned_globals, .procs = 1, .forced = forced,
  };
  char buf[256];
  size_t n = palloc_gctrace_format(buf, &c, a->trace == PALLOC_TRACE_LEGACY);
  trace_line(a, buf, n);
}

void palloc_gc_slow_check(palloc_gc_t *a) {
  uint64_t now = palloc_gc_now_ns();
  palloc_limiter_account(&a->limiter, 0, (int64_t)(now - a->limiter_stamp));
  a->limiter_stamp = now;
  if (palloc_limiter_full(&a->limiter)) {
    /* over the CPU cap: let the heap overshoot, and look again a little later */
    uint64_t slack = a->heap_live / 16 > ((uint64_t)1 << 20) ? a->heap_live / 16 : (uint64_t)1 << 20;
    a->trigger = a->heap_live + slack;
    return;
  }
  palloc_gc_cycle(a, false);
}

void palloc_gc_collect(palloc_gc_t *a) { palloc_gc_cycle(a, true); }

static void periodic(palloc_gc_t *a) {
  if (a->gogc < 0 || palloc_gc_now_ns() - a->last_gc_mono < PERIODIC_NS) return;
  if (a->trace != PALLOC_TRACE_OFF) trace_line(a, "GC forced\n", 10);
  palloc_gc_cycle(a, false);
}

static void note_sample(palloc_gc_t *a, void *p, size_t size) {
  palloc_sample_t *tok = palloc_sample_alloc(size);
  if (tok == NULL) return;
  gc_sampled_t *n = malloc(sizeof *n);
  gc_span_t *s = palloc_gc_span_of(a, (uintptr_t)p);
  if (n == NULL || s == NULL) {
    free(n);
    palloc_sample_free(tok, size);
    return;
  }
  n->idx = palloc_gc_index(s, (uintptr_t)p);
  n->size = size;
  n->token = tok;
  n->next = s->sampled;
  s->sampled = n;
}

static void *alloc_slow(palloc_gc_t *a, int cls, size_t size, bool noscan) {
  periodic(a);
  palloc_gc_publish(a);
  for (int attempt = 0;; attempt++) {
    void *p = cls ? palloc_gc_refill(a, cls, noscan) : palloc_gc_large(a, size, noscan);
    if (p != NULL) return p;
    if (attempt == 1) {
      errno = ENOMEM;
      return NULL;
    }
    palloc_gc_cycle(a, false); /* out of reserved space: collect and retry once */
  }
}

static inline void *gc_alloc(palloc_gc_t *a, size_t size, bool noscan) {
  if (__builtin_expect(a->heap_live >= a->trigger, 0)) palloc_gc_slow_check(a);
  int cls = palloc_gc_size_class(size);
  void *p = NULL;
  gc_span_t *s;
  if (cls) {
    gc_cache_t *c = &a->cache[cls][noscan];
    if (__builtin_expect(c->span != NULL, 1)) p = palloc_gc_cache_take(c);
    if (p == NULL && (p = alloc_slow(a, cls, size, noscan)) == NULL) return NULL;
    s = c->span;
  } else {
    if ((p = alloc_slow(a, 0, size, noscan)) == NULL) return NULL;
    s = palloc_gc_span_of(a, (uintptr_t)p);
  }
  if (!noscan && s->needzero) {
    switch (s->size) { /* constant sizes: inlined stores instead of a call */
    case 16: memset(p, 0, 16); break;
    case 32: memset(p, 0, 32); break;
    case 48: memset(p, 0, 48); break;
    case 64: memset(p, 0, 64); break;
    default: memset(p, 0, s->size);
    }
  }
  a->heap_live += s->size;
  a->total_alloc += s->size;
  a->mallocs++;
  if (a->sample) note_sample(a, p, size);
  return p;
}

void *palloc_gc_malloc(palloc_gc_t *a, size_t size) { return gc_alloc(a, size, false); }
void *palloc_gc_malloc_atomic(palloc_gc_t *a, size_t size) { return gc_alloc(a, size, true); }

int palloc_gc_add_root(palloc_gc_t *a, void *start, size_t len) {
  if (a->nroots == GC_MAX_ROOTS || start == NULL) return -1;
  palloc_assert(a->nroots >= 0 && a->nroots < GC_MAX_ROOTS);
  a->roots[a->nroots].lo = (uintptr_t)start;
  a->roots[a->nroots].hi = (uintptr_t)start + len;
  a->nroots++;
  return 0;
}

int palloc_gc_remove_root(palloc_gc_t *a, void *start) {
  for (int i = 0; i < a->nroots; i++) {
    if (a->roots[i].lo != (uintptr_t)start) continue;
    a->roots[i] = a->roots[--a->nroots];
    return 0;
  }
  return -1;
}

int palloc_gc_set_gogc(palloc_gc_t *a, int percent) {
  int old = a->gogc;
  a->gogc = percent < 0 ? -1 : percent;
  set_goal(a);
  return old;
}

int64_t palloc_gc_set_memory_limit(palloc_gc_t *a, int64_t bytes) {
  int64_t old = a->memory_limit;
  if (bytes >= 0) {
    a->memory_limit = bytes;
    set_goal(a);
  }
  return old;
}

void palloc_gc_read_stats(palloc_gc_t *a, palloc_gc_stats_t *o) {
  memset(o, 0, sizeof *o);
  o->num_gc = a->num_gc;
  o->num_forced_gc = a->num_forced;
  o->pause_total_ns = a->pause_total;
  memcpy(o->pause_ns, a->pauses, sizeof o->pause_ns);
  o->last_gc = a->last_gc_unix;
  uint64_t since = palloc_gc_since_start();
  o->gc_cpu_fraction = since ? (double)a->gc_cpu_total / (double)since : 0;
  o->heap_alloc = a->heap_live;
  o->next_gc = a->goal;
  o->total_alloc = a->total_alloc;
  o->mallocs = a->mallocs;
  o->frees = a->frees;
  o->heap_objects = a->mallocs - a->frees;
  o->heap_sys = a->committed - a->base - GC_PAGE; /* the guard page is never committed */
  o->sys = o->heap_sys + a->meta_bytes + a->stack_cap * sizeof(gc_range_t) +
           ((a->bump - a->base) >> GC_PAGE_SHIFT) * sizeof(gc_span_t *);
  o->heap_marked = a->heap_marked;
  o->stack_scanned = a->scanned_stack;
  o->globals_scanned = a->scanned_globals;
  o->gogc = a->gogc;
  o->memory_limit = a->memory_limit;
}

void *palloc_gc_base(palloc_gc_t *a, const void *p) {
  gc_span_t *s = palloc_gc_span_of(a, (uintptr_t)p);
  if (s == NULL) return NULL;
  uint32_t idx = palloc_gc_index(s, (uintptr_t)p);
  if (idx >= s->nobjs || ((s->alloc[idx >> 6] >> (idx & 63)) & 1) == 0) return NULL;
  return (void *)(s->start + (uintptr_t)idx * s->size);
}
