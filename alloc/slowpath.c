/* slowpath.c - the slow paths: sampled allocation, sampled free, thread start, stream mode.
 *
 * A sampled block is an ordinary mimalloc block of the requested size and alignment: what makes
 * it sampled is its entry in the registry (registry.c), which holds its bucket and requested
 * size. The free side takes both from there, so the profile's inuse values come from the same
 * numbers the alloc side counted (requested bytes; never usable size on one side and requested
 * on the other).
 *
 * Order of a sampled allocation: allocate, find the bucket (stack capture), register, then count
 * the allocation in the bucket. Counting last means a block the registry could not take is never
 * counted, so no bucket ever holds an allocation whose free it cannot see. Nobody else can free
 * the block before malloc returns it, so the order is not visible to other threads.
 *
 * Every function here is in the palloc_text section, so stack capture drops these frames.
 */
#include <errno.h>
#include <string.h>
#include "internal.h"
#include "usdt.h" /* otel_memory:alloc and :free, on sampled blocks */
#include "poisson.h" /* palloc_sample_weight */

/* What a sampled allocation of n bytes stands for: n / p(n) bytes at the current rate (peak.c's
 * weight of a sampled block, the otel_memory:alloc probe's weight argument). */
static inline int64_t alloc_weight(size_t n) {
  return (int64_t)palloc_sample_weight((double)palloc_bytes(n),
                                       atomic_load_explicit(&palloc_g.rate, memory_order_relaxed));
}

static inline void *plain_alloc(size_t n, size_t align, bool zero) {
  if (align <= 8) return zero ? mi_zalloc(n) : mi_malloc(n);
  return zero ? mi_zalloc_aligned(n, align) : mi_malloc_aligned(n, align);
}

/* Counts a sampled allocation of n bytes at the caller's stack and returns its bucket; with
 * p != NULL, the live block p is entered in the registry first (so it is counted only if its
 * free can be seen). NULL if the sample was dropped (out of memory). */
static PALLOC_TEXT palloc_bucket_t *take_sample(palloc_thread_t *t, void *p, size_t n) {
  /* sampling happens only outside palloc's own code, and outside the registry */
  palloc_assert(t->guard == 0 && t->in_registry == 0 && t->state == PALLOC_T_LIVE);
  palloc_guard_enter(t);
  uintptr_t stk[PALLOC_MAX_DEPTH];
  int ns = palloc_stack_capture(stk, palloc_g.depth);
  palloc_assert(ns >= 0 && ns <= palloc_g.depth && palloc_g.depth <= PALLOC_MAX_DEPTH);
  palloc_bucket_t *b = palloc_bucket_get(stk, ns, n);
  if (b != NULL && (p == NULL || palloc_registry_add_at(p, b, n, palloc_lifetime_now()))) {
    palloc_bucket_record_alloc(b, n);
    int64_t w = alloc_weight(n); /* once, for both */
    palloc_peak_on_alloc(b, w);
    palloc_usdt_alloc(p ? p : (void *)b, n, w); /* palloc_sample_alloc's token is the bucket */
  } else {
    b = NULL;
    atomic_fetch_add(&palloc_g.samples_dropped, 1);
  }
  palloc_guard_exit(t);
  palloc_assert(t->guard == 0); /* balanced */
  return b;
}

static PALLOC_TEXT void *alloc_sampled(palloc_thread_t *t, size_t n, size_t align, bool zero) {
  void *p = plain_alloc(n, align, zero);
  if (p != NULL) take_sample(t, p, n);
  return p;
}

/* Stream mode keeps the budget at 0 so that every allocation comes here; sampling then runs on
 * stream_left instead, with the same decision. */
static inline bool stream_sample_due(palloc_thread_t *t, size_t n) {
  palloc_assert(palloc_g.stream && t->guard == 0);
  palloc_set_countdown(t, -1);
  t->stream_left -= palloc_bytes(n);
  return t->stream_left < 0 && palloc_countdown_expired(t, n, &t->stream_left);
}

/* Decides the fate of an allocation of n bytes whose charge used up the budget. Under the
 * guard the wrapped budget is left as it is: it is large, so palloc's own allocations take the
 * fast path, and palloc_guard_exit puts back the budget of guard entry. */
PALLOC_TEXT bool palloc_sample_due(palloc_thread_t *t, size_t n) {
  if (t->guard) return false;
  if (palloc_unlikely(t->state != PALLOC_T_LIVE)) {
    int64_t first;
    if (!palloc_thread_ready(t, &first)) {
      /* An exiting thread allocates unsampled to its end; otherwise retry at the next call. */
      palloc_set_countdown(t, t->state == PALLOC_T_DEAD ? INT64_MAX / 2 : -1);
      return false;
    }
    /* This allocation is charged against the freshly drawn interval. */
    if (palloc_g.stream) {
      t->stream_left = first;
    } else if (first - palloc_bytes(n) >= 0) {
      palloc_set_countdown(t, first - palloc_bytes(n));
      return false;
    }
  }
  if (palloc_g.stream) return stream_sample_due(t, n);
  int64_t next;
  bool sample = palloc_countdown_expired(t, n, &next);
  palloc_assert(next >= -1 && (next >= 0 || sample)); /* -1: the next allocation is sampled */
  palloc_set_countdown(t, next);
  return sample;
}

PALLOC_TEXT void *palloc_alloc_slow(size_t n, size_t align, bool zero) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_g.stream && palloc_likely(t->state == PALLOC_T_LIVE && t->guard == 0)) {
    /* Stream mode's steady state: every allocation is here, so keep it short. */
    void *p = stream_sample_due(t, n) ? alloc_sampled(t, n, align, zero)
                                 : plain_alloc(n, align, zero);
    if (p != NULL) palloc_stream_account(t, (int64_t)mi_usable_size(p), 0);
    return p;
  }
  void *p = palloc_sample_due(t, n) ? alloc_sampled(t, n, align, zero)
                                     : plain_alloc(n, align, zero);
  if (palloc_g.stream && p != NULL && t->guard == 0) palloc_stream_account(t, (int64_t)mi_usable_size(p), 0);
  return p;
}

PALLOC_TEXT void palloc_free_slow(void *p) {
  if (p == NULL) return;
  palloc_thread_t *t = &palloc_thread;
  if (palloc_unlikely(t->in_registry)) {
    /* A signal handler, and this thread is inside the registry: registry.c frees p after. */
    palloc_registry_defer_free(t, p);
    return;
  }
  if (palloc_g.stream && t->guard == 0) palloc_stream_account(t, 0, (int64_t)mi_usable_size(p));
  /* Counted before the block is released: once mi_free returns, the same address may be handed
   * out and sampled again by another thread. */
  palloc_bucket_t *b;
  size_t size;
  uint64_t born;
  if (palloc_registry_take_at(p, &b, &size, &born)) {
    palloc_sample_freed(b, size, born);
    palloc_usdt_free(p);
  }
  palloc_assert(t->in_registry == 0);
  mi_free(p);
}

/* realloc whose charge used up the budget (due), or whose block may be sampled. The old block
 * leaves the registry *before* mi_realloc can release it (another thread may be handed the same
 * address and sample it), and comes back if mi_realloc fails, since the old block then stays. */
PALLOC_TEXT void *palloc_realloc_slow(void *p, size_t n, bool due) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_unlikely(t->in_registry)) {
    /* A signal handler, and this thread is inside the registry (palloc_free_slow): p cannot be
     * looked up now, so it moves to an unsampled block and its free is deferred. */
    void *q = mi_malloc(n);
    if (q == NULL) return NULL;
    size_t old = mi_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    palloc_registry_defer_free(t, p);
    return q;
  }
  bool sample = due && palloc_sample_due(t, n);
  bool streaming = palloc_g.stream && t->guard == 0;
  size_t old_usable = streaming ? mi_usable_size(p) : 0;
  palloc_bucket_t *ob = NULL;
  size_t osize = 0;
  uint64_t oborn = 0;
  bool was_sampled = palloc_registry_take_at(p, &ob, &osize, &oborn); /* checks p's page count first */
  void *q = mi_realloc(p, n);
  if (q == NULL) {
    if (was_sampled && !palloc_registry_add_at(p, ob, osize, oborn))
      palloc_sample_freed(ob, osize, 0); /* it stays, unsampled: out of the profile */
    return NULL;
  }
  /* realloc ends the old block's life (a new one begins if q is sampled), as tcmalloc's
   * lifetime profile counts it */
  if (was_sampled) {
    palloc_sample_freed(ob, osize, oborn);
    palloc_usdt_free(p);
  }
  if (sample) take_sample(t, q, n);
  if (streaming) palloc_stream_account(t, (int64_t)mi_usable_size(q), (int64_t)old_usable);
  return q;
}

/* ---- custom allocators (palloc.h) -------------------------------------------------------- */
PALLOC_TEXT palloc_sample_t *palloc_sample_alloc(size_t size) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_charge(size) || !palloc_sample_due(t, size)) return NULL;
  return (palloc_sample_t *)take_sample(t, NULL, size); /* the token is the bucket; no registry */
}

void palloc_sample_free(palloc_sample_t *token, size_t size) {
  if (token != NULL) {
    palloc_sample_freed((palloc_bucket_t *)token, size, 0);
    palloc_usdt_free(token);
  }
}
