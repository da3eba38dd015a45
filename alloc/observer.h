/* observer.h - how the rest of libpalloc observes the allocator (internal, not installed).
 *
 * alloc offers other parts of libpalloc the allocation stream (the usable bytes of every malloc
 * and free, in per-thread batches) and the process's lifecycle (start, fork, exit: lifecycle.c).
 * An observer is a table of hooks, palloc_observer_t, that its
 * own file defines and enters with PALLOC_OBSERVER (PALLOC_TRACE's what-if GC trace is one).
 * alloc finds every table through the linker and names none of them, so the dependency runs one
 * way, observer -> alloc, as with SQLite's sqlite3_mem_methods or mimalloc's mi_register_*
 * hooks, and as Go's sweeper calls mProf_Free and the profiler never calls the sweeper.
 *
 * Why the linker and not a registration call: whether any observer wants the stream is decided
 * in palloc_init, which runs inside the process's first malloc, before any constructor (and the
 * registry's page map is pinned then, once for the process: registry.c). A constructor that
 * registered an observer would come after allocations the observer had to see. The tables are
 * pointers in the section "palloc_observers", which the linker bounds with __start_ and
 * __stop_ symbols: readable at any moment, no code of the observer's run to find them.
 * libpalloc.so and palloc_core hold every observer; a static link of libpalloc.a takes an
 * archive member only for a symbol the program needs, so there an observer that nothing else
 * pulls in is absent (as it was when alloc referred to it weakly).
 *
 * Cost: with no observer wanting the stream, none; the fast paths never look at observers.
 * With one, every malloc and free takes the slow path (slowpath.c, registry.c).
 *
 * Every hook may be NULL. All but exit run with palloc's reentrancy guard held on the calling
 * thread: what they allocate is served unsampled and is not streamed.
 *  - wanted: in palloc_init, possibly inside the process's first malloc, after options.c has
 *    read the environment (palloc_option_*): no allocation, no stdio, no lock. True if the
 *    observer takes the allocation stream.
 *  - publish: a batch (about PALLOC_STREAM_BATCH bytes) of usable bytes allocated and freed by
 *    one thread; any thread, concurrently. Only for an observer whose wanted() said true.
 *  - start: palloc's constructor (priority 101, before the program's own), after palloc_init.
 *  - fork_prepare, fork_parent, fork_child: palloc's one set of fork handlers. Prepare runs
 *    before alloc takes its own locks, parent and child after alloc has released them: an
 *    observer's locks come before all of alloc's in the lock order, and an observer's hook may
 *    allocate. Prepare in table order, parent and child in the reverse order.
 *  - exit: palloc's destructor (priority 101, after the program's), before the exit profile.
 * The lifecycle hooks run for every observer, whether or not it wanted the stream.
 *  - metrics: PALLOC_HTTP's /metrics (http.c), on the endpoint's thread: the observer's figures,
 *    each through emit(ctx, name, type, help, labels, value); the samples of one name given one
 *    after another (the endpoint writes HELP and TYPE once per run of a name). labels is ""
 *    or Prometheus' {k="v",...} text.
 */
#ifndef PALLOC_OBSERVER_H
#define PALLOC_OBSERVER_H
#include <stdbool.h>
#include <stdint.h>

typedef void (*palloc_metric_emit_t)(void *ctx, const char *name, const char *type,
                                     const char *help, const char *labels, double value);

typedef struct palloc_observer_s {
  const char *name;
  bool (*wanted)(void);
  void (*publish)(int64_t allocated, int64_t freed);
  void (*start)(void);
  void (*fork_prepare)(void);
  void (*fork_parent)(void);
  void (*fork_child)(void);
  void (*exit)(void);
  void (*metrics)(palloc_metric_emit_t emit, void *ctx);
} palloc_observer_t;

/* Enters the table `table` (a static const palloc_observer_t) among alloc's observers. */
#define PALLOC_OBSERVER(table)                                                                   \
  __attribute__((section("palloc_observers"), used)) static const palloc_observer_t *const    \
      palloc_observer_entry_##table = &(table)

/* The bytes a thread accumulates before it publishes them. */
#define PALLOC_STREAM_BATCH ((int64_t)64 << 10)

#endif
