/* tcache.c - the per-thread cache of free small blocks: palloc's front-end over mimalloc.
 *
 * Why it exists. mimalloc frees a block into its page's free list, which writes the block: a
 * cache miss when the block is cold, as it is in a heap much larger than the CPU's caches. A
 * block freed by a thread other than its page's owner is pushed with an atomic operation onto
 * the page's cross-thread list, and the owner collects it later. Servers and pipelines (one
 * thread allocates, another frees) and programs with large churned heaps pay this on every free,
 * and there jemalloc, whose thread cache reuses a freed block on the freeing thread, ran twice as
 * fast as mimalloc (tests/bench/FINDINGS.md). palloc keeps each thread's recently freed small
 * blocks in per-class stacks of pointers and hands them back to the same thread's next
 * allocations of the class: a free is a size lookup and a push, a malloc a pop, and neither
 * touches the block or memory another thread writes.
 *
 * Classes. The classes are mimalloc's own size classes up to PALLOC_TC_MAX, read from
 * mi_good_size rather than copied from mimalloc's sources. A block is cached under its usable
 * size, which for an ordinary block is its class size, and malloc(n) pops from the class
 * mimalloc serves n from, so the cache never changes which block size a request gets. free()
 * does not look the size up: each mimalloc page carries the class + 1 of its blocks (mimalloc
 * patch 0004, _mi_palloc_page_class below), 0 while the page holds over-aligned blocks (a
 * pointer may be the inside of one) and for blocks larger than PALLOC_TC_MAX, which are not
 * cached.
 *
 * Bounds. A class holds at most `cap` blocks (PALLOC_TC_BIN_BYTES worth, between PALLOC_TC_MIN
 * and PALLOC_TC_MAX_COUNT blocks); a free into a full class first returns the older half to
 * mimalloc, so the cost of a flush is spread over cap/2 frees and what stays is what was freed
 * last. palloc_tc_held_max() is the most one thread can hold. A class that fills twice with no
 * allocation on its thread in between gives everything back and caches nothing until the thread
 * allocates again (the drain rule, at palloc_tc_overflow), so a thread that frees its working
 * set and waits holds no cached block; while it drains, mimalloc decommits what it frees at
 * once, so that its freed pages go back too (_mi_palloc_decommit_now, at the end).
 *
 * Invariants. A thread's bins are touched only by that thread: no lock, no atomic. A thread's
 * bins have cap 0, so nothing is cached, until its first slow-path visit sets it up
 * (palloc_tc_thread_start), and again once its exit has begun (palloc_tc_thread_exit gives every
 * block back to mimalloc): a thread palloc never set up, or a pthread-key destructor running
 * after the flush, frees straight into mimalloc. Every cached block is unsampled: free() asks
 * the cache only after the page map said "not sampled", and malloc() pops only on the unsampled
 * path, so a sampled block never enters the cache and the profile never sees a cached one.
 * Stream mode sends every malloc and free to the slow paths, so it never meets the cache either.
 *
 * The class tables are written once (build_tables: by palloc_init or by mimalloc's first page,
 * whichever comes first), before any thread's bins get a cap (a thread sets up only after
 * palloc_init's release store). A free on a thread with cap 0 goes to palloc_tc_overflow, which
 * sends the block to mimalloc. With the cache off (PALLOC_TCACHE=0), pages set up from then on
 * carry class 0, and free() goes from the class byte to mimalloc.
 *
 * Slot arrays come from palloc's own memory (meta.c) and go to a free list when a thread exits,
 * so creating threads costs no mmap after the first few; its lock is a leaf, taken at fork by
 * palloc's fork handler (lifecycle.c) like palloc's other locks. Fork: the child keeps the forking
 * thread's cache; blocks cached by the parent's other threads stay allocated in the child
 * (at most palloc_tc_held_max() per thread), as the rest of those threads' memory does.
 * Signal handlers: a handler that allocates or frees on a thread interrupted inside one of its
 * bin operations finds tc_busy set and goes to mimalloc directly, so it never sees a bin half
 * changed (internal.h, palloc_tc_enter). Every change of a thread's bins, here too, is made with
 * tc_busy set.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

_Atomic uint8_t palloc_tc_class[PALLOC_TC_MAX / 8 + 1];
_Atomic uint8_t palloc_tc_exact[PALLOC_TC_MAX / 8 + 1]; /* all PALLOC_TC_NONE once set up */
_Atomic uint16_t palloc_tc_bin_at[PALLOC_TC_MAX + 1];
_Atomic bool palloc_tc_on;
static unsigned class_count;
static size_t class_size[PALLOC_TC_CLASSES];
static uint32_t class_cap[PALLOC_TC_CLASSES];
static uint32_t slots_per_thread;
static bool decommit_hook;       /* _mi_palloc_decommit_now may say yes (end of this file) */

/* Slot arrays of exited threads, for reuse. Each starts with a pointer to the next. */
static pthread_mutex_t area_lock = PTHREAD_MUTEX_INITIALIZER;
static void **free_areas;

void palloc_tc_lock(void) { pthread_mutex_lock(&area_lock); }
void palloc_tc_unlock(void) { pthread_mutex_unlock(&area_lock); }

static uint32_t cap_for(size_t size) {
  size_t cap = PALLOC_TC_BIN_BYTES / size;
  if (cap < PALLOC_TC_MIN) cap = PALLOC_TC_MIN;
  if (cap > PALLOC_TC_MAX_COUNT) cap = PALLOC_TC_MAX_COUNT;
  palloc_assert(cap >= 2); /* a flush of cap / 2 makes room */
  return (uint32_t)cap & ~1u; /* even: a flush returns exactly half */
}

/* The class tables, from mi_good_size alone, so that mimalloc can ask for a page's class
 * (_mi_palloc_page_class) before palloc_init: built by the first caller, from palloc_init or
 * from the first page mimalloc sets up, whichever comes first. Two threads (or a signal handler
 * and its thread) that build them at once store the same values. 1: built; 2: not the mimalloc
 * we know, no cache. */
static _Atomic int tables_state;

static int build_tables(void) {
  size_t prev = 0;
  unsigned c = 0;
  uint8_t cls[PALLOC_TC_MAX / 8 + 1];
  size_t size[PALLOC_TC_CLASSES];
  for (size_t w = 1; w <= PALLOC_TC_MAX / 8; w++) {
    size_t good = mi_good_size(w * 8);
    if (good < w * 8 || good > PALLOC_TC_MAX) goto unknown;
    if (good != prev) {
      if (prev != 0) c++;
      if (c >= PALLOC_TC_NONE) goto unknown;
      size[c] = good;
      prev = good;
    }
    cls[w] = (uint8_t)c;
  }
  cls[0] = cls[1]; /* malloc(0) is served as malloc(1) */
  palloc_assert(c + 1 <= PALLOC_TC_NONE); /* the NONE bin is no class: its cap stays 0 */
  for (size_t w = 0; w <= PALLOC_TC_MAX / 8; w++) {
    /* the class of a request serves it: a cached block of class c is large enough */
    palloc_assert(cls[w] <= c && size[cls[w]] >= (w ? w * 8 : 1));
    atomic_store_explicit(&palloc_tc_class[w], cls[w], memory_order_relaxed);
    uint8_t exact = w > 0 && size[cls[w]] == w * 8 ? cls[w] : PALLOC_TC_NONE;
    atomic_store_explicit(&palloc_tc_exact[w], exact, memory_order_relaxed);
  }
  for (size_t n = 0; n <= PALLOC_TC_MAX; n++)
    atomic_store_explicit(&palloc_tc_bin_at[n],
                          (uint16_t)(cls[(n + 7) >> 3] * sizeof(palloc_tc_bin_t)), memory_order_relaxed);
  atomic_store_explicit(&tables_state, 1, memory_order_release);
  return 1;
unknown:
  atomic_store_explicit(&tables_state, 2, memory_order_release);
  return 2;
}

static inline bool tables_ready(void) {
  int s = atomic_load_explicit(&tables_state, memory_order_acquire);
  return (s != 0 ? s : build_tables()) == 1;
}

/* PALLOC_TCACHE=0: pages set up from then on carry class 0, and their frees skip the cache. */
static _Atomic bool tc_off;

/* mimalloc's question (patch 0004), when it sets up a page of blocks of this usable size and
 * when a page stops holding aligned blocks: under which class + 1 does palloc's free cache
 * them, 0 for none. A page whose blocks are of no class size (over-aligned blocks may be the
 * inside of one: mimalloc answers 0 for their page itself) or too large for the cache is never
 * cached. Pages set up before palloc_tc_init(false) keep their class: their frees find bins of
 * cap 0 and go to mimalloc, as before palloc_init. */
uint8_t _mi_palloc_page_class(size_t usable) {
  if (usable - 1 >= PALLOC_TC_MAX || usable % 8 != 0 ||
      atomic_load_explicit(&tc_off, memory_order_relaxed) || !tables_ready())
    return 0;
  unsigned c = atomic_load_explicit(&palloc_tc_exact[usable >> 3], memory_order_relaxed);
  return c == PALLOC_TC_NONE ? 0 : (uint8_t)(c + 1);
}

/* Called by palloc_init, once, before any thread is set up. */
void palloc_tc_init(bool enabled) {
  decommit_hook = enabled && getenv("MIMALLOC_DECOMMIT_DELAY") == NULL &&
                  getenv("mimalloc_decommit_delay") == NULL &&
                  getenv("MIMALLOC_RESET_DELAY") == NULL && getenv("mimalloc_reset_delay") == NULL;
  if (!enabled) atomic_store_explicit(&tc_off, true, memory_order_relaxed);
  if (!enabled || !tables_ready()) return;
  for (size_t w = 1; w <= PALLOC_TC_MAX / 8; w++) {
    unsigned e = atomic_load_explicit(&palloc_tc_exact[w], memory_order_relaxed);
    if (e == PALLOC_TC_NONE) continue;
    class_size[e] = w * 8;
    if (e + 1 > class_count) class_count = e + 1;
  }
  for (unsigned i = 0; i < class_count; i++) {
    class_cap[i] = cap_for(class_size[i]);
    slots_per_thread += class_cap[i];
  }
  atomic_store_explicit(&palloc_tc_on, true, memory_order_relaxed);
}

size_t palloc_tc_held_max(void) {
  size_t held = 0;
  for (unsigned i = 0; i < class_count; i++)
    held += class_cap[i] * class_size[i];
  return held;
}

/* A thread's first slow-path visit (guard held). Without memory for the slots, the thread
 * simply runs uncached. */
void palloc_tc_thread_start(palloc_thread_t *t) {
  if (slots_per_thread == 0 || t->tc[0].slot != NULL || t->tc_busy) return;
  pthread_mutex_lock(&area_lock);
  void **area = free_areas;
  if (area != NULL) free_areas = (void **)area[0];
  pthread_mutex_unlock(&area_lock);
  if (area == NULL) area = palloc_meta_alloc(slots_per_thread * sizeof(void *));
  if (area == NULL) return;
  palloc_tc_enter(t);
  palloc_assert(t->tc[PALLOC_TC_NONE].cap == 0);
  for (unsigned i = 0; i < class_count; i++) {
    palloc_assert(t->tc[i].n == 0 && t->tc[i].cap == 0); /* a new thread's, or exited */
    t->tc[i].slot = area;
    t->tc[i].n = 0;
    t->tc[i].cap = class_cap[i];
    area += class_cap[i];
  }
  palloc_tc_leave(t);
}

static void flush_bin(palloc_tc_bin_t *b, uint32_t count) {
  palloc_assert(count <= b->n && b->n <= b->cap && palloc_thread.tc_busy);
  if (count == 0) return;
  for (uint32_t i = 0; i < count; i++) mi_free(b->slot[i]);
  memmove(b->slot, b->slot + count, (b->n - count) * sizeof(void *));
  b->n -= count;
}

/* A free into a full bin (or into a thread's bins before set-up or after exit: cap 0), from
 * palloc_tc_put with tc_busy set: a handler that interrupts the flush's mi_free calls bypasses
 * the cache.
 *
 * The drain rule. A bin that fills twice with no allocation at all on its thread in between is
 * being drained (the thread tears a structure down, or frees what others allocated): nothing
 * it holds will be reused soon. It then gives everything back and caches nothing (cap 0, its
 * slots kept) until its thread allocates again: the first free into it after that restores its
 * cap. A full bin whose thread did allocate flushes its older half, as always. So a thread that
 * frees its working set and goes idle keeps nothing in its cache: the blocks freed last would
 * otherwise pin a page of each class that mimalloc could free (most of 512 idle threads'
 * memory, tests/bench/scale.c). "No allocation" is read from the budget, which every malloc
 * charges: the same low 32 bits at both events. Nothing is added to the fast paths; while a
 * bin drains, each free into it takes this function's few extra instructions before mi_free,
 * and a thread that only ever frees (a pipeline's consumer) gives blocks back at once instead
 * of in batches. */
bool palloc_tc_overflow(palloc_tc_bin_t *b, void *p) {
  palloc_thread_t *t = &palloc_thread;
  palloc_assert(t->tc_busy == 1 && b >= t->tc && b < t->tc + PALLOC_TC_CLASSES);
  palloc_assert(b->n == b->cap); /* full, or a bin that caches nothing */
  /* slot == NULL: a bin of no class, or of a thread not set up or whose exit began (cap 0 for
   * good: palloc_tc_thread_exit empties the bins and their slots, then caches nothing) */
  bool kept = false;
  if (b->slot != NULL) {
    uint32_t *stamp = &t->tc_stamp[b - t->tc];
    uint32_t now = (uint32_t)atomic_load_explicit(&t->budget, memory_order_relaxed);
    bool allocated = *stamp != now;
    *stamp = now;
    if (b->cap == 0) {
      if (allocated) {                      /* drained, and the thread allocates again */
        b->cap = class_cap[b - t->tc];
        b->slot[b->n++] = p;
        kept = true;
      }
    } else if (!allocated) {                /* full twice without an allocation: drain */
      flush_bin(b, b->n);
      b->cap = 0;
      t->tc_drain_stamp = now;
      t->tc_draining = 1;
    } else {                                /* full: give back the older half */
      flush_bin(b, b->n / 2);
      b->slot[b->n++] = p;
      kept = true;
    }
    palloc_assert(b - t->tc < (ptrdiff_t)class_count && b->n <= b->cap &&
                  (b->cap == 0 || b->cap == class_cap[b - t->tc]));
  }
  palloc_tc_leave(t);
  return kept;
}

/* free()'s overflow (palloc_tc_put): out of line, so that free's fast path keeps p in no
 * callee-saved register and builds no bin address. `at` is the bin's byte offset in tc. */
void palloc_tc_overflow_free(size_t at, void *p) {
  palloc_tc_bin_t *b = (palloc_tc_bin_t *)((char *)palloc_thread.tc + at);
  if (!palloc_tc_overflow(b, p)) mi_free(p);
}

static void flush_all(palloc_thread_t *t) {
  for (unsigned i = 0; i < class_count; i++) flush_bin(&t->tc[i], t->tc[i].n);
}

/* The thread's exit has begun: give everything back and cache nothing from here on. */
void palloc_tc_thread_exit(palloc_thread_t *t) {
  void **area = t->tc[0].slot;
  if (area == NULL || t->tc_busy) return;
  palloc_tc_enter(t);
  flush_all(t);
  for (unsigned i = 0; i < class_count; i++) t->tc[i] = (palloc_tc_bin_t){0};
  palloc_assert(t->tc[0].slot == NULL && t->tc[0].cap == 0);
  palloc_tc_leave(t);
  pthread_mutex_lock(&area_lock);
  area[0] = (void *)free_areas;
  free_areas = area;
  pthread_mutex_unlock(&area_lock);
}

/* From a signal handler that interrupted a bin operation: nothing (the bins are not ours now). */
void palloc_thread_cache_flush(void) {
  palloc_thread_t *t = &palloc_thread;
  if (t->tc_busy) return;
  palloc_tc_enter(t);
  flush_all(t);
  palloc_tc_leave(t);
}

/* ---- memory of idle threads ---------------------------------------------------------------- */
/* mimalloc decommits a freed span decommit_delay (25 ms) later, but checks the delay only when
 * the owning thread frees or allocates in that segment again: a thread that frees its working
 * set and goes idle keeps every page it freed, and a process of many threads that wait between
 * requests (a thread-per-connection server) holds all of them: 512 such threads held 1.35 GB
 * where jemalloc holds 0.22 GB (tests/bench/scale.c, threads 512 idle). Decommitting every span
 * at once (MIMALLOC_DECOMMIT_DELAY=0) gives that back but costs a madvise on each freed span and
 * an mprotect and page faults on its reuse: mstress's short-lived threads went from 0.1 to 1.1 s
 * of system time.
 *
 * So mimalloc asks (alloc/mimalloc/patches/0003) whether to decommit what this thread frees at
 * once, and palloc says yes only while the thread tears its working set down: since one of its
 * bins began to drain (the drain rule, above) the thread has allocated nothing (the budget's low
 * 32 bits are those of that moment). A thread that frees and allocates in turn keeps the delay.
 * And only in a process of PALLOC_DRAIN_THREADS live threads or more, as only a thread that
 * waits while others work is idle: a single-threaded program that tears a structure down and
 * builds it again at once (barnes: its tree every step) would pay a madvise, an mprotect and the
 * page faults for every page each time (barnes: 3% more CPU). (A larger threshold let the first
 * threads of a server, which start and go idle before the rest exist, keep what they freed.)
 * The price is paid by threads that tear their working set down and then exit: the threads
 * that reuse their pages recommit them (512 threads that each churn 2 MiB and exit: 1.7-1.9 s
 * of CPU against 0.9-1.3 s). The user's MIMALLOC_DECOMMIT_DELAY (or its old name
 * MIMALLOC_RESET_DELAY), in upper or lower case, turns this off. */
#define PALLOC_DRAIN_THREADS 2

bool _mi_palloc_decommit_now(void) {
  palloc_thread_t *t = &palloc_thread;
  return decommit_hook && t->tc_draining &&
         t->tc_drain_stamp == (uint32_t)atomic_load_explicit(&t->budget, memory_order_relaxed) &&
         atomic_load_explicit(&palloc_g.threads, memory_order_relaxed) >= PALLOC_DRAIN_THREADS;
}
