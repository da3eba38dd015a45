/* lifecycle.c - the process's and the threads' lifecycle, in one place (as mimalloc's init.c):
 *
 *  - process start: palloc_init, inside the process's first malloc (before any constructor; no
 *    allocation through a path that could come back here), then palloc_start, a constructor of
 *    priority 101, for what may allocate and start threads (the profile writer) and for the
 *    observers' start hooks;
 *  - thread start: a thread's first slow-path visit (palloc_thread_ready): its countdown, its
 *    cache's bins, its exit watch;
 *  - thread exit: a thread_local-style destructor (thread_exit);
 *  - fork: one set of pthread_atfork handlers, registered once by palloc_init, which take every
 *    lock of palloc's in one order (below);
 *  - process exit: palloc_stop, a destructor of priority 101: the observers' exit hooks, then the
 *    exit profile.
 * The steps of each module stay in its own file; this file is their order. Other parts of
 * libpalloc (gcsim) take part through their observer tables (observer.h), not through here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
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
  if (!palloc_registry_init(palloc_g.stream)) {
    palloc_warn("cannot map the sampled-block registry; heap profiling is off");
    atomic_store(&palloc_g.rate, 0);
  }
  /* Here and not in the constructor: a fork before constructors run (another library's) finds
   * the handlers too. The stripe locks exist whether or not the registry got its map. */
  pthread_atfork(palloc_fork_prepare, palloc_fork_parent, palloc_fork_child);
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
/* The prepare handler takes every lock of palloc's, so that the child never inherits one held
 * by a thread that does not exist there. The order, outermost first, is the order in which a
 * thread may hold them, so that taking them all cannot deadlock against any thread:
 *  1. the observers' locks (observer.h): an observer's hook may allocate, and so sample, and
 *     so take any lock below, while no lock below is held when an observer is called;
 *  2. the profile writer's (a write may make buckets: meta);
 *  3. palloc's memory (meta);
 *  4. the unwinder's (a thread unwinding takes no palloc lock);
 *  5. the thread caches' slot arrays (a leaf);
 *  5'. the peak tracker's (peak.c; a leaf, taken under the writer's by a peak profile write);
 *  6. the registry's stripes (a leaf: the registry calls nothing that locks), with their own
 *     in_registry and guard brackets (registry.c).
 * Parent and child release them in the reverse order. The forking thread holds them under its
 * guard, so that a signal handler's allocations there are unsampled and wait for none of them
 * (internal.h). The child then restarts the writer thread, which did not survive the fork. */
void palloc_fork_prepare(void) {
  palloc_guard_enter(&palloc_thread);
  palloc_observers_fork_prepare();
  palloc_writer_lock();
  palloc_meta_lock();
  palloc_stack_fork_prepare();
  palloc_tc_lock();
  palloc_peak_lock();
  palloc_registry_lock();
}
void palloc_fork_parent(void) {
  palloc_registry_unlock();
  palloc_peak_unlock();
  palloc_tc_unlock();
  palloc_stack_fork_parent();
  palloc_meta_unlock();
  palloc_writer_unlock();
  palloc_observers_fork_parent();
  palloc_guard_exit(&palloc_thread);
}
void palloc_fork_child(void) {
  palloc_registry_unlock();
  palloc_peak_unlock();
  palloc_tc_unlock();
  palloc_stack_fork_child();
  palloc_meta_unlock();
  palloc_writer_unlock();
  palloc_observers_fork_child();
  palloc_bucket_fork_child();
  palloc_leak_fork_child();
  palloc_guard_exit(&palloc_thread);
  palloc_writer_fork_child();
}

/* ---- process start and exit ----------------------------------------------------------------- */
__attribute__((constructor(101))) static void palloc_start(void) {
  palloc_init();
  palloc_thread_t *t = &palloc_thread;
  palloc_guard_enter(t);
  palloc_writer_start();
  palloc_leak_start();
  palloc_observers_start();
  palloc_guard_exit(t);
}

__attribute__((destructor(101))) static void palloc_stop(void) {
  palloc_observers_exit();
  palloc_writer_stop();
  palloc_extra_profiles_exit(); /* the peak and lifetime profiles */
  palloc_leak_check_exit();     /* last: it may end the process (PALLOC_LEAK_CHECK) */
}

bool palloc_thread_spawn(void *(*fn)(void *)) {
  pthread_t th;
  pthread_attr_t attr;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread starts with this mask */
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  bool ok = pthread_create(&th, &attr, fn, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return ok;
}
