/* observer.c - the allocation stream and its observers (observer.h).
 *
 * When an observer wants the stream at start-up, every allocation and free takes the slow path
 * (the budget is kept at 0 and the registry's page map is pinned, registry.c), and its usable
 * size is added to per-thread counters. Like Go's per-P heapLive updates, the counters are
 * published to the observers only once a thread has accumulated PALLOC_STREAM_BATCH bytes, so
 * no shared atomic is touched per malloc. With no observer wanting it none of this runs: the
 * hot paths are unchanged.
 */
#include "internal.h"

/* The observers' tables, placed by PALLOC_OBSERVER; the linker defines these bounds when the
 * section is not empty (weak: a link without observers leaves both NULL, an empty range). */
extern const palloc_observer_t *const __start_palloc_observers[] __attribute__((weak));
extern const palloc_observer_t *const __stop_palloc_observers[] __attribute__((weak));

/* The observers that take the stream, set once by palloc_observers_init (before the first
 * allocation is streamed: palloc_init's release store publishes them). */
#define STREAMED_MAX 8
static const palloc_observer_t *streamed[STREAMED_MAX];
static int nstreamed;

void palloc_observers_init(void) {
  for (const palloc_observer_t *const *o = __start_palloc_observers; o < __stop_palloc_observers;
       o++) {
    if ((*o)->wanted == NULL || (*o)->publish == NULL || !(*o)->wanted()) continue;
    if (nstreamed == STREAMED_MAX) {
      palloc_warn("too many observers of the allocation stream: %s left out", (*o)->name);
      continue;
    }
    streamed[nstreamed++] = *o;
  }
  palloc_g.stream = nstreamed > 0;
}

void palloc_stream_flush(palloc_thread_t *t) {
  int64_t a = t->stream_alloc, f = t->stream_free;
  t->stream_alloc = t->stream_free = 0;
  palloc_guard_enter(t); /* an observer may print, and printing may allocate */
  for (int i = 0; i < nstreamed; i++) streamed[i]->publish(a, f);
  palloc_guard_exit(t);
}
