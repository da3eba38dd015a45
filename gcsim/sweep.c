/* sweep.c - frees what marking did not reach, in the same pause.
 *
 * Per span: dead = alloc & ~mark, then alloc = mark and mark is cleared (tail bits past nobjs
 * stay set in both; see gcinternal.h). A span with no survivor returns its pages to the free
 * runs; one with free slots goes on its class's partial list for the allocator. Sweeping is a
 * few word operations per span, so we sweep eagerly instead of lazily (as Go and Boehm do):
 * the pause includes it, and no allocation ever meets an unswept span.
 *
 * Sampled objects (rare: one per sampling interval) carry a profiler token in a per-span list;
 * the sweeper hands the token of a dead one back to the profiler (palloc_sample_free).
 */
#include <stdlib.h>
#include <string.h>
#include "gcinternal.h"

static void sweep_samples(gc_span_t *s) {
  for (gc_sampled_t **pp = &s->sampled; *pp != NULL;) {
    gc_sampled_t *n = *pp;
    uint64_t bit = (uint64_t)1 << (n->idx & 63);
    if ((s->mark[n->idx >> 6] & bit) == 0) {
      palloc_sample_free(n->token, n->size);
      *pp = n->next;
      free(n);
    } else {
      pp = &n->next;
    }
  }
}

static inline uint64_t tail_bits(uint32_t nobjs, uint32_t w) {
  uint32_t first = w * 64;
  if (nobjs >= first + 64) return 0;
  if (nobjs <= first) return ~(uint64_t)0;
  return ~(uint64_t)0 << (nobjs - first);
}

void palloc_gc_sweep(palloc_gc_t *a) {
  memset(a->partial, 0, sizeof a->partial);
  uint64_t freed = 0;
  for (gc_span_t *s = a->inuse, *next; s != NULL; s = next) {
    next = s->next;
    if (s->sampled) sweep_samples(s);
    uint32_t nw = (s->nobjs + 63) / 64;
    uint64_t live = 0, dead = 0;
    for (uint32_t w = 0; w < nw; w++) {
      uint64_t tail = tail_bits(s->nobjs, w);
      uint64_t al = s->alloc[w], mk = s->mark[w];
      dead += (uint64_t)__builtin_popcountll(al & ~mk);
      live += (uint64_t)__builtin_popcountll(mk & ~tail);
      s->alloc[w] = mk;
      s->mark[w] = tail;
    }
    freed += dead;
    palloc_assert(live <= s->nobjs);
    if (live == 0) {
      palloc_gc_span_free(a, s);
      continue;
    }
    if (dead) s->needzero = true;
    if (live < s->nobjs) {
      s->pnext = a->partial[s->cls][s->noscan];
      a->partial[s->cls][s->noscan] = s;
    }
  }
  a->frees += freed;
  palloc_assert(a->frees <= a->mallocs); /* every object freed was allocated */
}

void palloc_gc_release_all_samples(palloc_gc_t *a) {
  for (gc_span_t *s = a->inuse; s != NULL; s = s->next) {
    while (s->sampled) {
      gc_sampled_t *n = s->sampled;
      s->sampled = n->next;
      palloc_sample_free(n->token, n->size);
      free(n);
    }
  }
}
