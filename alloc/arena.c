/* arena.c - the exclusive mimalloc arena that holds every sampled block.
 *
 * Why an arena: free() must tell a sampled block from an unsampled one without a lock or a
 * table probe. All sampled blocks are allocated from per-thread heaps bound to one exclusive
 * arena (mi_reserve_os_memory_ex + mi_heap_new_in_arena), so "sampled" is "inside
 * [arena_lo, arena_hi)": one subtraction and one compare on two read-mostly globals. mimalloc
 * never serves ordinary heaps from an exclusive arena, and its abandoned arena segments are
 * reclaimed only by arena heaps (or freed when empty), so the range holds nothing else.
 *
 * The arena is address space only (reserved uncommitted, committed by mimalloc as pages are
 * used). We try 256 GiB and halve down to 1 GiB for systems with a small RLIMIT_AS. When it is
 * full, a sampled allocation is served unsampled and counted in samples_dropped.
 *
 * Heap lifetime: a mimalloc heap belongs to its thread and mimalloc deletes it in the thread's
 * pthread-key destructor. We must stop using it before that: a C++-style thread_local destructor
 * (__cxa_thread_atexit_impl) runs before any pthread-key destructor in glibc, and marks the
 * thread dead; allocations made after that point are served unsampled. The main thread keeps
 * its heap to the end (mimalloc does not delete heaps at process exit).
 */
#include <pthread.h>
#include "internal.h"

extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;

static _Atomic int arena_state; /* palloc_once */

static bool reserve_arena(void) {
  for (size_t size = (size_t)256 << 30; size >= ((size_t)1 << 30); size /= 2) {
    mi_arena_id_t id;
    if (mi_reserve_os_memory_ex(size, false, false, true, &id) != 0) continue;
    size_t got = 0;
    void *start = mi_arena_area(id, &got);
    if (start == NULL) continue;
    palloc_g.arena_id = id;
    palloc_g.arena_lo = (uintptr_t)start;
    palloc_g.arena_hi = (uintptr_t)start + got;
    if (!palloc_g.trace) {
      atomic_store(&palloc_g.free_lo, palloc_g.arena_lo);
      atomic_store(&palloc_g.free_span, got);
    }
    return true;
  }
  palloc_warn("cannot reserve address space for sampled blocks; heap profiling is off");
  return false;
}

bool palloc_arena_ready(void) { return palloc_once(&arena_state, reserve_arena); }

static void thread_exit(void *arg) {
  palloc_thread_t *t = arg;
  t->state = PALLOC_T_DEAD;
  t->heap = NULL;
  atomic_store_explicit(&t->countdown, INT64_MAX / 2, memory_order_relaxed);
  atomic_fetch_sub_explicit(&palloc_g.threads, 1, memory_order_relaxed);
}

/* Called at a thread's first slow-path visit (guard held: the registration allocates). */
void palloc_thread_watch_exit(palloc_thread_t *t) {
  if (!t->is_main) __cxa_thread_atexit_impl(thread_exit, t, &__dso_handle);
}

mi_heap_t *palloc_thread_heap(palloc_thread_t *t) {
  if (t->heap != NULL) return t->heap;
  if (t->state != PALLOC_T_LIVE || !palloc_arena_ready()) return NULL;
  t->heap = mi_heap_new_in_arena(palloc_g.arena_id);
  return t->heap;
}
