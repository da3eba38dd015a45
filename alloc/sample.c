/* sample.c - the slow paths: sampled allocation, sampled free, thread start, trace mode.
 *
 * A sampled block is laid out as [header 16 B][user block], allocated from the thread's heap in
 * the exclusive arena with mi_heap_malloc_aligned_at so that the *user* pointer has the
 * requested alignment. The header holds the bucket and the requested size: the free side needs
 * nothing else, so the profile's inuse values come from the same numbers the alloc side counted
 * (requested bytes; never usable size on one side and requested on the other).
 *
 * Every function here is in the palloc_text section, so stack capture drops these frames.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"

/* ThreadSanitizer cannot see mimalloc's synchronization (it is not instrumented): when a block
 * freed by one thread is handed out again to another, the header writes look racy. These
 * annotations state the handoff mimalloc really performs. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#define HANDOFF_RELEASE(p) __tsan_release(p)
#else
#define HANDOFF_ACQUIRE(p) ((void)0)
#define HANDOFF_RELEASE(p) ((void)0)
#endif

typedef struct palloc_hdr_s {
  palloc_bucket_t *bucket;
  size_t size;
} palloc_hdr_t;
_Static_assert(sizeof(palloc_hdr_t) == PALLOC_HDR, "header size");

static inline void *plain_alloc(size_t n, size_t align, bool zero) {
  if (align <= 8) return zero ? mi_zalloc(n) : mi_malloc(n);
  return zero ? mi_zalloc_aligned(n, align) : mi_malloc_aligned(n, align);
}

PALLOC_TEXT palloc_bucket_t *palloc_record_sample(size_t n) {
  uintptr_t stk[PALLOC_MAX_DEPTH];
  int ns = palloc_stack_capture(stk, palloc_g.depth);
  palloc_bucket_t *b = palloc_bucket_get(stk, ns, n);
  if (b != NULL)
    palloc_bucket_record_alloc(b, n);
  else
    atomic_fetch_add(&palloc_g.samples_dropped, 1);
  return b;
}

PALLOC_TEXT void *palloc_alloc_sampled(palloc_thread_t *t, size_t n, size_t align, bool zero) {
  palloc_guard_enter(t);
  void *base = NULL;
  mi_heap_t *h = palloc_thread_heap(t);
  if (h != NULL && n <= SIZE_MAX - 2 * PALLOC_HDR) {
    size_t a = align > PALLOC_HDR ? align : PALLOC_HDR;
    base = zero ? mi_heap_zalloc_aligned_at(h, n + PALLOC_HDR, a, PALLOC_HDR)
                : mi_heap_malloc_aligned_at(h, n + PALLOC_HDR, a, PALLOC_HDR);
  }
  if (base == NULL) {
    void *p = plain_alloc(n, align, zero);
    if (p != NULL || h == NULL) atomic_fetch_add(&palloc_g.samples_dropped, 1);
    palloc_guard_exit(t);
    return p;
  }
  HANDOFF_ACQUIRE(base);
  palloc_hdr_t *hdr = base;
  hdr->size = n;
  hdr->bucket = palloc_record_sample(n);
  palloc_guard_exit(t);
  return (char *)base + PALLOC_HDR;
}

PALLOC_TEXT void palloc_free_sampled(void *p) {
  palloc_hdr_t *hdr = (palloc_hdr_t *)((char *)p - PALLOC_HDR);
  /* Counted before the block is released: once mi_free returns, the same address may be handed
   * out and sampled again by another thread. */
  if (hdr->bucket != NULL) palloc_bucket_record_free(hdr->bucket, hdr->size);
  HANDOFF_RELEASE(hdr);
  mi_free(hdr);
}

#define usable palloc_malloc_usable_size /* of any block (entry.c) */

/* The first slow-path visit of a thread, or a visit before palloc is initialized. Returns
 * false if the thread cannot sample yet (initialization in progress on another thread). */
static bool thread_ready(palloc_thread_t *t, size_t n) {
  if (t->state == PALLOC_T_LIVE) return true;
  if (t->state == PALLOC_T_DEAD) return false;
  palloc_init();
  if (atomic_load_explicit(&palloc_g.initialized, memory_order_acquire) != 2) return false;
  palloc_guard_enter(t);
  palloc_thread_start(t);
  int64_t fresh = atomic_load_explicit(&t->countdown, memory_order_relaxed);
  palloc_thread_watch_exit(t); /* allocates: served unsampled under the guard */
  palloc_guard_exit(t);
  /* Charge this allocation against the freshly drawn interval. */
  atomic_store_explicit(&t->countdown, fresh - palloc_bytes(n), memory_order_relaxed);
  return true;
}

/* Trace mode keeps the countdown negative so that every allocation comes here; sampling then
 * runs on trace_left instead, with the same decision. */
static inline bool trace_decide(palloc_thread_t *t, size_t n) {
  atomic_store_explicit(&t->countdown, INT64_MIN / 4, memory_order_relaxed);
  t->trace_left -= palloc_bytes(n);
  return t->trace_left < 0 && palloc_sample_decide(t, n, &t->trace_left);
}

/* Decides the fate of an allocation of n bytes whose charge drove the countdown negative. */
PALLOC_TEXT bool palloc_slow_decide(palloc_thread_t *t, size_t n) {
  if (t->guard) return false;
  if (palloc_unlikely(t->state != PALLOC_T_LIVE)) {
    if (!thread_ready(t, n)) {
      if (t->state == PALLOC_T_DEAD)
        atomic_store_explicit(&t->countdown, INT64_MAX / 2, memory_order_relaxed);
      else
        atomic_store_explicit(&t->countdown, -1, memory_order_relaxed); /* retry next time */
      return false;
    }
    if (!palloc_g.trace && atomic_load_explicit(&t->countdown, memory_order_relaxed) >= 0)
      return false;
    if (palloc_g.trace) t->trace_left = atomic_load_explicit(&t->countdown, memory_order_relaxed) + palloc_bytes(n);
  }
  if (palloc_g.trace) return trace_decide(t, n);
  int64_t next;
  bool sample = palloc_sample_decide(t, n, &next);
  atomic_store_explicit(&t->countdown, next, memory_order_relaxed);
  return sample;
}

PALLOC_TEXT void *palloc_alloc_slow(size_t n, size_t align, bool zero) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_g.trace && palloc_likely(t->state == PALLOC_T_LIVE && t->guard == 0)) {
    /* Trace mode's steady state: every allocation is here, so keep it short. */
    void *p = trace_decide(t, n) ? palloc_alloc_sampled(t, n, align, zero)
                                 : plain_alloc(n, align, zero);
    if (p != NULL) palloc_trace_account(t, (int64_t)usable(p), 0);
    return p;
  }
  void *p = palloc_slow_decide(t, n) ? palloc_alloc_sampled(t, n, align, zero)
                                     : plain_alloc(n, align, zero);
  if (palloc_g.trace && p != NULL && t->guard == 0) palloc_trace_account(t, (int64_t)usable(p), 0);
  return p;
}

PALLOC_TEXT void palloc_free_slow(void *p) {
  if (p == NULL) return;
  bool sampled = palloc_in_arena(p);
  if (palloc_g.trace) {
    palloc_thread_t *t = &palloc_thread;
    if (t->guard == 0)
      palloc_trace_account(t, 0, (int64_t)usable(p));
  }
  if (sampled)
    palloc_free_sampled(p);
  else
    mi_free(p);
}

/* realloc whose charge made the countdown negative, or whose block was sampled. */
PALLOC_TEXT void *palloc_realloc_slow(void *p, size_t n) {
  palloc_thread_t *t = &palloc_thread;
  bool old_sampled = palloc_in_arena(p);
  bool sample = atomic_load_explicit(&t->countdown, memory_order_relaxed) < 0 && palloc_slow_decide(t, n);
  size_t old_usable = usable(p);
  if (old_sampled && n <= old_usable) {
    /* Fits where it is: account the old block's free and the new allocation (sampled or not)
     * on the same memory instead of copying. A block that stays in the arena unsampled has no
     * bucket, like a dropped sample. */
    palloc_hdr_t *hdr = (palloc_hdr_t *)((char *)p - PALLOC_HDR);
    if (hdr->bucket != NULL) palloc_bucket_record_free(hdr->bucket, hdr->size);
    palloc_bucket_t *b = NULL;
    if (sample) {
      palloc_guard_enter(t);
      b = palloc_record_sample(n);
      palloc_guard_exit(t);
    }
    hdr->bucket = b;
    hdr->size = n;
    if (palloc_g.trace && t->guard == 0) palloc_trace_account(t, (int64_t)old_usable, (int64_t)old_usable);
    return p;
  }
  if (!sample && !old_sampled) {
    void *q = mi_realloc(p, n);
    if (palloc_g.trace && q != NULL && t->guard == 0)
      palloc_trace_account(t, (int64_t)mi_usable_size(q), (int64_t)old_usable);
    return q;
  }
  void *q = sample ? palloc_alloc_sampled(t, n, 0, false) : mi_malloc(n);
  if (q == NULL) return NULL; /* the old block stays valid, as realloc requires */
  memcpy(q, p, old_usable < n ? old_usable : n);
  if (palloc_g.trace && t->guard == 0) palloc_trace_account(t, (int64_t)usable(q), 0);
  palloc_free_slow(p);
  return q;
}

/* ---- custom allocators (palloc.h) -------------------------------------------------------- */
PALLOC_TEXT palloc_sample_t *palloc_sample_alloc(size_t size) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_charge(size) || !palloc_slow_decide(t, size)) return NULL;
  palloc_guard_enter(t);
  palloc_bucket_t *b = palloc_record_sample(size);
  palloc_guard_exit(t);
  return b;
}

void palloc_sample_free(palloc_sample_t *token, size_t size) {
  if (token != NULL) palloc_bucket_record_free(token, size);
}
