/* gcinternal.h - the arena's data structures, shared by heap.c, mark.c, sweep.c and gc.c.
 *
 * Layout: one contiguous reservation [base, base + reserved) of PALLOC_GC_PAGE-byte pages,
 * committed from the bottom as the heap grows ("bump"). A span is a run of pages holding
 * objects of one size class (or one large object). pagemap[page] is the span owning that page
 * (NULL for free or uncommitted pages), so any word is resolved to its object in O(1): range
 * check, page index, span, offset * divmul >> 32 (an exact division for offsets in a span).
 *
 * Per span, two bitmaps: alloc (slot holds an object) and mark (reached in this cycle). Bits
 * past nobjs are set in both, permanently, so the allocator never hands those slots out and
 * the sweeper's alloc = mark keeps them. Allocation scans ~alloc a 64-bit word at a time
 * (like Go's allocCache) and sets the alloc bit; sweeping is alloc = mark per word. Dead
 * objects keep their bytes until reused; they are never scanned because their alloc bit is 0.
 */
#ifndef PALLOC_GCSIM_INTERNAL_H
#define PALLOC_GCSIM_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "palloc.h"
#include "palloc_gc.h"
#include "pacer.h"
#include "palloc_assert.h" /* palloc_assert: proto/palloc_assert.h */

#define GC_PAGE_SHIFT 13
#define GC_PAGE ((size_t)1 << GC_PAGE_SHIFT)
#define GC_MAX_SMALL 32768       /* larger objects get a span of their own */
#define GC_NCLASSES 45           /* class 0 = large */
#define GC_MAX_OBJS 1024         /* objects per span, at most */
#define GC_BITWORDS (GC_MAX_OBJS / 64)
#define GC_FREE_LISTS 128        /* free page runs by length; the last holds every longer run */
#define GC_MAX_ROOTS 64

typedef struct gc_sampled_s {    /* a sampled object: the profiler's token */
  struct gc_sampled_s *next;
  uint32_t idx;
  size_t size;                   /* as passed to palloc_sample_alloc */
  palloc_sample_t *token;
} gc_sampled_t;

typedef struct gc_span_s {
  uintptr_t start;
  uint64_t size;                 /* slot size (large: the whole span) */
  uint32_t npages;
  uint32_t nobjs;
  uint32_t divmul;               /* ceil(2^32 / size) for small spans */
  uint16_t cls;
  bool noscan;
  bool needzero;                 /* slots may hold old bytes */
  struct gc_span_s *next, *prev; /* in-use list, or free-run list */
  struct gc_span_s *pnext;       /* partial list (free slots, not cached) */
  gc_sampled_t *sampled;
  uint64_t alloc[GC_BITWORDS];
  uint64_t mark[GC_BITWORDS];
} gc_span_t;

typedef struct gc_cache_s {      /* the span a class currently allocates from */
  gc_span_t *span;
  uint64_t bits;                 /* free slots of word wi not yet handed out */
  uint32_t wi, nwords;
} gc_cache_t;

typedef struct gc_range_s { uintptr_t lo, hi; } gc_range_t;

struct palloc_gc_s {
  /* hot: the allocation fast path */
  uint64_t heap_live;            /* marked at the last cycle + allocated since (slot bytes) */
  uint64_t trigger;              /* collect when heap_live reaches this */
  uint64_t mallocs, total_alloc;
  bool sample;                   /* report objects to the heap profiler */
  gc_cache_t cache[GC_NCLASSES][2]; /* [class][noscan] */

  /* address space */
  uintptr_t base, bump, committed, limit_addr;
  size_t reserved;
  gc_span_t **pagemap;
  size_t pagemap_bytes;

  /* spans */
  gc_span_t *inuse;              /* every span holding objects */
  gc_span_t *partial[GC_NCLASSES][2];
  gc_span_t *freeruns[GC_FREE_LISTS + 1];
  gc_span_t *spare;              /* unused span structs */
  char *meta_next, *meta_end;    /* span structs are carved from mmap'd slabs */
  uint64_t meta_bytes;

  /* roots */
  gc_range_t roots[GC_MAX_ROOTS];
  int nroots;
  gc_range_t data[8];
  int ndata;
  bool scan_data;

  /* marking */
  gc_range_t *stack;
  size_t stack_len, stack_cap;
  bool overflowed;               /* the mark stack could not grow: rescan marked objects */
  uint64_t marked_bytes, marked_objs;
  uint64_t scanned_stack, scanned_globals;

  /* pacing */
  int gogc;
  int64_t memory_limit;
  uint64_t goal;
  palloc_limiter_t limiter;
  uint64_t limiter_stamp;        /* wall clock when the limiter was last drained */
  uint64_t last_gc_mono;

  /* trace and statistics */
  int trace, trace_fd;
  uint64_t num_gc, num_forced, pause_total, pauses[PALLOC_GC_PAUSES], last_gc_unix;
  uint64_t gc_cpu_total, frees, heap_marked;
  uint64_t last_mark_cpu;        /* CPU time of the last mark phase (what-if calibration) */
  struct gc_pub_s *pub;          /* the figures /metrics reads (gcmetrics.c), or NULL */
};

/* heap.c */
extern uint32_t palloc_gc_class_size[GC_NCLASSES];
extern uint8_t palloc_gc_class_pages[GC_NCLASSES];
void palloc_gc_classes_init(void);
extern uint8_t palloc_gc_class_of[GC_MAX_SMALL / 16 + 1];
static inline int palloc_gc_size_class(size_t size) { /* 0 for large */
  return size > GC_MAX_SMALL ? 0 : palloc_gc_class_of[(size + 15) >> 4];
}
bool palloc_gc_heap_init(palloc_gc_t *a, size_t reserve);
void palloc_gc_heap_fini(palloc_gc_t *a);
gc_span_t *palloc_gc_span_alloc(palloc_gc_t *a, int cls, size_t npages, bool noscan);
void palloc_gc_span_free(palloc_gc_t *a, gc_span_t *s);
void *palloc_gc_refill(palloc_gc_t *a, int cls, bool noscan); /* cache empty: next span */
void *palloc_gc_large(palloc_gc_t *a, size_t size, bool noscan);
void palloc_gc_uncache(palloc_gc_t *a);
static inline gc_span_t *palloc_gc_span_of(const palloc_gc_t *a, uintptr_t w) {
  if (w - a->base >= a->bump - a->base) return NULL;
  return a->pagemap[(w - a->base) >> GC_PAGE_SHIFT];
}
static inline uint32_t palloc_gc_index(const gc_span_t *s, uintptr_t w) {
  if (s->cls == 0) return 0;
  return (uint32_t)(((uint64_t)(w - s->start) * s->divmul) >> 32);
}

/* Hands out the next free slot of the cached span, or NULL when it has none left. */
static inline void *palloc_gc_cache_take(gc_cache_t *c) {
  while (c->bits == 0) {
    if (++c->wi >= c->nwords) return NULL;
    c->bits = ~c->span->alloc[c->wi];
  }
  gc_span_t *s = c->span;
  uint32_t idx = c->wi * 64 + (uint32_t)__builtin_ctzll(c->bits);
  /* tail bits past nobjs are set in alloc: no slot beyond the span is handed out, nor one twice */
  palloc_assert(idx < s->nobjs && (s->alloc[idx >> 6] & ((uint64_t)1 << (idx & 63))) == 0);
  c->bits &= c->bits - 1;
  s->alloc[idx >> 6] |= (uint64_t)1 << (idx & 63);
  return (void *)(s->start + (uintptr_t)idx * s->size);
}

/* mark.c */
void palloc_gc_mark(palloc_gc_t *a);          /* roots + transitive closure */
bool palloc_gc_stack_reserve(palloc_gc_t *a);
void palloc_gc_find_data(palloc_gc_t *a);

/* sweep.c */
void palloc_gc_sweep(palloc_gc_t *a);         /* frees dead objects, rebuilds partial lists */
void palloc_gc_release_all_samples(palloc_gc_t *a);

/* gc.c */
palloc_gc_t *palloc_gc_create_internal(const palloc_gc_options_t *o, bool user);
void palloc_gc_cycle(palloc_gc_t *a, bool forced);
void palloc_gc_slow_check(palloc_gc_t *a);    /* heap_live reached the trigger */
extern _Atomic int palloc_gc_arenas;           /* user arenas created (mutes the what-if) */

/* gcmetrics.c: the figures PALLOC_HTTP's /metrics shows of each arena, published by the arena's
 * own thread (an arena has no lock) at its slow-path visits and cycles, read by the endpoint. */
void palloc_gc_metrics_add(palloc_gc_t *a);    /* palloc_gc_create */
void palloc_gc_metrics_remove(palloc_gc_t *a); /* palloc_gc_destroy, before the arena goes */
void palloc_gc_publish(palloc_gc_t *a);
/* whatif.c: the what-if collector's figures; false when PALLOC_TRACE is off (or an arena took
 * over the trace). */
bool palloc_whatif_figures(uint64_t *cycles, uint64_t *goal, int64_t *heap, int64_t *live,
                           double *cpu_fraction);
#endif
