/* palloc_gc.h - a garbage-collected arena for C, paced and traced like Go's heap.
 *
 * An arena hands out objects that are freed by a stop-the-world mark-sweep collector instead of
 * free(). Two kinds of objects:
 *   palloc_gc_malloc         scanned: zeroed, every aligned word inside may be a pointer;
 *   palloc_gc_malloc_atomic  pointer-free ("atomic", as in Boehm GC): never scanned, not zeroed.
 * Scanning is conservative: any word that holds an address inside an allocated object (interior
 * pointers included) keeps that object alive. Roots are the registered ranges, the stack and
 * registers of the thread that runs the collection, and (unless turned off) the program's
 * writable data and bss (those of the main executable, not of shared libraries).
 *
 * Threads: an arena belongs to one thread at a time (no internal lock, so the allocation fast
 * path is a few instructions). Only the collecting thread's stack is scanned: a pointer held
 * only by another thread's stack must also be stored in a registered root.
 *
 * Pacing (Go 1.18+ semantics, see README.md): a collection starts when the heap (bytes of
 * allocated objects since the last mark plus the bytes marked) reaches the goal
 *   goal = marked + (marked + stacks + globals) * GOGC/100, at least 4 MiB * GOGC/100,
 * lowered to (limit - non-heap memory - headroom) when a memory limit is set, never below the
 * marked heap. GOGC < 0 is "off". A GC CPU limiter caps collection at about 50% of the CPU: past
 * it the heap overshoots the goal. With GOGC on, an arena that has not collected for 2 minutes
 * collects at its next allocation slow path ("GC forced" line).
 * Environment: PALLOC_GOGC, PALLOC_MEMLIMIT, PALLOC_TRACE, PALLOC_TRACE_FILE (README.md's table),
 * read once at libpalloc's start; an arena takes them when its options say PALLOC_GC_FROM_ENV,
 * which is the default.
 *
 * Sampled objects (see palloc_sample_alloc in palloc.h) appear in the heap profile while they
 * are alive: the sweeper reports their death to the profiler.
 */
#ifndef PALLOC_GC_H
#define PALLOC_GC_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(PALLOC_API)
#define PALLOC_API __attribute__((visibility("default")))
#elif !defined(PALLOC_API)
#define PALLOC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct palloc_gc_s palloc_gc_t;

#define PALLOC_GC_FROM_ENV (-2)   /* option value: the environment variable, read at start-up */
#define PALLOC_GC_OFF      (-1)   /* gogc: off */
#define PALLOC_GC_NO_LIMIT INT64_MAX
#define PALLOC_GC_PAUSES   256    /* size of the recent-pauses ring, as in Go's MemStats */

typedef struct palloc_gc_options_s {
  int gogc;              /* percent, PALLOC_GC_OFF, or PALLOC_GC_FROM_ENV (default)      */
  int64_t memory_limit;  /* bytes, PALLOC_GC_NO_LIMIT, or PALLOC_GC_FROM_ENV (default)    */
  size_t max_heap;       /* address space reserved for objects; 0: 16 GiB                 */
  int scan_data;         /* scan the main executable's data and bss: 1 (default) or 0      */
  int trace;             /* 0 off, 1 gctrace, 2 legacy gctrace, PALLOC_GC_FROM_ENV (default) */
  int trace_fd;          /* where trace lines go; -1 (default): PALLOC_TRACE_FILE or stderr */
} palloc_gc_options_t;

/* Shaped like Go's runtime.MemStats (the GC-related part). */
typedef struct palloc_gc_stats_s {
  uint64_t num_gc;           /* completed collections                                   */
  uint64_t num_forced_gc;    /* of which palloc_gc_collect                              */
  uint64_t pause_total_ns;   /* sum of all pauses (every collection stops the world)    */
  uint64_t pause_ns[PALLOC_GC_PAUSES]; /* recent pauses; the latest is [(num_gc+255)%256] */
  uint64_t last_gc;          /* end of the last collection, ns since the Unix epoch      */
  double gc_cpu_fraction;    /* collector CPU / (wall time since program start x 1 P)   */
  uint64_t heap_alloc;       /* bytes of allocated objects (size-class rounded)         */
  uint64_t next_gc;          /* heap goal of the next collection (UINT64_MAX: none)     */
  uint64_t total_alloc;      /* cumulative bytes allocated                              */
  uint64_t mallocs, frees;   /* cumulative objects allocated / freed                     */
  uint64_t heap_objects;     /* mallocs - frees                                         */
  uint64_t heap_sys;         /* bytes of address space committed for objects            */
  uint64_t sys;              /* heap_sys + the collector's own metadata                  */
  uint64_t heap_marked;      /* bytes marked by the last collection                     */
  uint64_t stack_scanned;    /* stack bytes scanned by the last collection              */
  uint64_t globals_scanned;  /* data+bss + registered root bytes scanned by the last one */
  int gogc;                  /* current settings                                        */
  int64_t memory_limit;
} palloc_gc_stats_t;

/* Fills o with the defaults (everything from the environment, 16 GiB, data scanned). */
PALLOC_API void palloc_gc_options_init(palloc_gc_options_t *o);
/* NULL options = defaults. Returns NULL if the address space cannot be reserved. */
PALLOC_API palloc_gc_t *palloc_gc_create(const palloc_gc_options_t *o);
/* Frees every object and the arena. */
PALLOC_API void palloc_gc_destroy(palloc_gc_t *gc);

/* Returns NULL (errno ENOMEM) only when the reserved space is exhausted after a collection. */
PALLOC_API void *palloc_gc_malloc(palloc_gc_t *gc, size_t size);
PALLOC_API void *palloc_gc_malloc_atomic(palloc_gc_t *gc, size_t size);

/* Registers [start, start+len) as a root range (scanned at every collection); 0 or -1. */
PALLOC_API int palloc_gc_add_root(palloc_gc_t *gc, void *start, size_t len);
/* Removes the range registered with this start; 0, or -1 if there is none. */
PALLOC_API int palloc_gc_remove_root(palloc_gc_t *gc, void *start);

/* Runs a full collection now (a "forced" cycle, like runtime.GC()). */
PALLOC_API void palloc_gc_collect(palloc_gc_t *gc);

/* Like debug.SetGCPercent / debug.SetMemoryLimit: set, return the previous value. A negative
 * limit only reads the current one. */
PALLOC_API int palloc_gc_set_gogc(palloc_gc_t *gc, int percent);
PALLOC_API int64_t palloc_gc_set_memory_limit(palloc_gc_t *gc, int64_t bytes);

PALLOC_API void palloc_gc_read_stats(palloc_gc_t *gc, palloc_gc_stats_t *out);

/* The start of the allocated object that contains p, or NULL (p not in a live object). */
PALLOC_API void *palloc_gc_base(palloc_gc_t *gc, const void *p);

#ifdef __cplusplus
}
#endif
#endif
