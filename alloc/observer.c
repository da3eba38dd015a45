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

/* The tables, as an array of n (0 when the section is absent and both bounds are NULL). */
static const palloc_observer_t *const *tables(size_t *n) {
  *n = ((uintptr_t)__stop_palloc_observers - (uintptr_t)__start_palloc_observers) /
       sizeof(const palloc_observer_t *);
  return __start_palloc_observers;
}

/* The observers that take the stream, set once by palloc_observers_init (before the first
 * allocation is streamed: palloc_init's release store publishes them). */
#define STREAMED_MAX 8
static const palloc_observer_t *streamed[STREAMED_MAX];
static int nstreamed;

void palloc_observers_init(void) {
  size_t n;
  const palloc_observer_t *const *o = tables(&n);
  for (size_t i = 0; i < n; i++) {
    if (o[i]->wanted == NULL || o[i]->publish == NULL || !o[i]->wanted()) continue;
    if (nstreamed == STREAMED_MAX) {
      palloc_warn("too many observers of the allocation stream: %s left out", o[i]->name);
      continue;
    }
    streamed[nstreamed++] = o[i];
  }
  palloc_g.stream = nstreamed > 0;
}

/* The lifecycle hooks of every observer (lifecycle.c calls these): in table order, but parent
 * and child in reverse, as pthread_atfork orders its handlers. */
#define EACH(hook)                                                                               \
  size_t n;                                                                                      \
  const palloc_observer_t *const *o = tables(&n);                                                \
  for (size_t i = 0; i < n; i++)                                                                 \
    if (o[i]->hook) o[i]->hook()
#define EACH_REVERSED(hook)                                                                      \
  size_t n;                                                                                      \
  const palloc_observer_t *const *o = tables(&n);                                                \
  for (size_t i = n; i-- > 0;)                                                                   \
    if (o[i]->hook) o[i]->hook()
void palloc_observers_start(void) { EACH(start); }
void palloc_observers_fork_prepare(void) { EACH(fork_prepare); }
void palloc_observers_fork_parent(void) { EACH_REVERSED(fork_parent); }
void palloc_observers_fork_child(void) { EACH_REVERSED(fork_child); }
void palloc_observers_exit(void) { EACH(exit); }
void palloc_observers_metrics(palloc_metric_emit_t emit, void *ctx) {
  size_t n;
  const palloc_observer_t *const *o = tables(&n);
  for (size_t i = 0; i < n; i++)
    if (o[i]->metrics) o[i]->metrics(emit, ctx);
}

void palloc_stream_flush(palloc_thread_t *t) {
  int64_t a = t->stream_alloc, f = t->stream_free;
  t->stream_alloc = t->stream_free = 0;
  palloc_guard_enter(t); /* an observer may print, and printing may allocate */
  for (int i = 0; i < nstreamed; i++) streamed[i]->publish(a, f);
  palloc_guard_exit(t);
}
