/* lifecycle.c - the process's and the threads' lifecycle: start, thread start and exit, fork,
 * exit. (The steps of each module stay in its file; this file is their order.)
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include "internal.h"

uint64_t palloc_start_ns;

/* ---- process start ---------------------------------------------------------------------- */
/* mimalloc reports a failed allocation through its error handler but leaves errno alone;
 * POSIX requires ENOMEM. The handler runs only on failure, so the fast path stays untouched. */
static void on_mimalloc_error(int err, void *arg) {
  (void)arg;
  if (err == ENOMEM || err == EOVERFLOW) errno = ENOMEM;
}

void palloc_init(void) {
  int expected = 0;
  if (atomic_load_explicit(&palloc_g.initialized, memory_order_acquire) == 2) return;
  if (!atomic_compare_exchange_strong(&palloc_g.initialized, &expected, 1)) return;
  palloc_thread_t *t = &palloc_thread;
  uint32_t guard = t->guard;
  t->guard++;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  palloc_start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  mi_register_error(on_mimalloc_error, NULL);
  palloc_config_load();
  palloc_observers_init();
  palloc_tc_init(palloc_g.tcache);
  if (palloc_registry_init(palloc_g.stream)) {
    pthread_atfork(palloc_registry_lock, palloc_registry_unlock, palloc_registry_unlock);
  } else {
    palloc_warn("cannot map the sampled-block registry; heap profiling is off");
    atomic_store(&palloc_g.rate, 0);
  }
  t->guard--;
  palloc_assert(t->guard == guard); /* every palloc_guard_enter above had its exit */
  atomic_store_explicit(&palloc_g.initialized, 2, memory_order_release);
}

/* ---- threads ---------------------------------------------------------------------------- */
/* The first slow-path visit of a thread, or a visit before palloc is initialized. Gives the
 * thread's first interval in *first; false if the thread cannot sample (initialization in
 * progress on another thread, or the thread is exiting). */
bool palloc_thread_ready(palloc_thread_t *t, int64_t *first) {
  if (t->state == PALLOC_T_DEAD) return false;
  palloc_init();
  if (atomic_load_explicit(&palloc_g.initialized, memory_order_acquire) != 2) return false;
  palloc_guard_enter(t);
  palloc_thread_start(t);
  palloc_tc_thread_start(t);
  *first = palloc_countdown(t);
  palloc_thread_watch_exit(t); /* allocates: served unsampled under the guard */
  palloc_guard_exit(t);        /* restores the budget of guard entry: the caller sets it */
  palloc_assert(t->guard == 0 && t->state == PALLOC_T_LIVE);
  return true;
}

/* Thread exit: a thread stops sampling once its exit has begun. A C++-style thread_local
 * destructor (__cxa_thread_atexit_impl) runs before glibc's pthread-key destructors, which tear
 * down libunwind's per-thread state; allocations made after that point are served unsampled. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;

static void thread_exit(void *arg) {
  palloc_thread_t *t = arg;
  palloc_assert(t == &palloc_thread && t->state == PALLOC_T_LIVE);
  t->state = PALLOC_T_DEAD;
  palloc_set_countdown(t, INT64_MAX / 2);
  palloc_tc_thread_exit(t);
  palloc_assert(atomic_load_explicit(&palloc_g.threads, memory_order_relaxed) > 0); /* counted */
  atomic_fetch_sub_explicit(&palloc_g.threads, 1, memory_order_relaxed);
}

/* Called at a thread's first slow-path visit (guard held: the registration allocates). The main
 * thread is not watched: it samples to the end. */
void palloc_thread_watch_exit(palloc_thread_t *t) {
  if (!t->is_main) __cxa_thread_atexit_impl(thread_exit, t, &__dso_handle);
}

/* ---- fork ----------------------------------------------------------------------------------- */
/* The locks are taken in this order, outermost first: the profile writer's (it may make buckets:
 * meta), palloc's memory (meta), the unwinder's (a thread unwinding takes no palloc lock), the
 * thread caches' slot arrays (a leaf). The registry's stripes follow, in their own handler.
 * The forking thread holds them under its guard, so that a signal handler's allocations there
 * are unsampled and wait for none of them (internal.h). */
void palloc_fork_prepare(void) {
  palloc_guard_enter(&palloc_thread);
  palloc_writer_lock();
  palloc_meta_lock();
  palloc_stack_fork_prepare();
  palloc_tc_lock();
}
void palloc_fork_parent(void) {
  palloc_tc_unlock();
  palloc_stack_fork_parent();
  palloc_meta_unlock();
  palloc_writer_unlock();
  palloc_guard_exit(&palloc_thread);
}
void palloc_fork_child(void) {
  palloc_tc_unlock();
  palloc_stack_fork_child();
  palloc_meta_unlock();
  palloc_writer_unlock();
  palloc_guard_exit(&palloc_thread);
  palloc_writer_fork_child();
}

/* ---- process start and exit ----------------------------------------------------------------- */
__attribute__((constructor(101))) static void palloc_start(void) {
  palloc_init();
  palloc_thread_t *t = &palloc_thread;
  palloc_guard_enter(t);
  palloc_writer_start();
  pthread_atfork(palloc_fork_prepare, palloc_fork_parent, palloc_fork_child);
  palloc_guard_exit(t);
}

__attribute__((destructor(101))) static void palloc_stop(void) {
  palloc_writer_stop();
}
