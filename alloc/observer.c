/* trace.c - the allocation side of PALLOC_TRACE's what-if GC trace (gcsim/ does the rest).
 *
 * When gcsim asks for it at start-up, every allocation and free takes the slow path (the
 * budget is kept at 0 and the registry's page map is pinned, registry.c), and its usable size is
 * added to per-thread counters. Like Go's per-P heapLive updates, the counters are published to
 * gcsim only once a thread has accumulated PALLOC_STREAM_BATCH bytes, so no shared atomic is touched per
 * malloc. With PALLOC_TRACE unset none of this runs: the hot paths are unchanged.
 *
 * gcsim is an optional part of libpalloc: its entry points are weak references here.
 */
#include "internal.h"

extern bool palloc_whatif_wanted(void) __attribute__((weak));
extern void palloc_whatif_publish(int64_t allocated, int64_t freed) __attribute__((weak));

void palloc_trace_configure(void) {
  if (palloc_whatif_wanted == NULL || palloc_whatif_publish == NULL || !palloc_whatif_wanted())
    return;
  palloc_g.stream = true;
}

void palloc_stream_flush(palloc_thread_t *t) {
  int64_t a = t->stream_alloc, f = t->stream_free;
  t->stream_alloc = t->stream_free = 0;
  palloc_guard_enter(t); /* gcsim may print, and printing may allocate */
  palloc_whatif_publish(a, f);
  palloc_guard_exit(t);
}
