/* lock.h - palloc_lock_t: a mutex of one futex word, for the locks of the sampled paths (the
 * registry's stripes, registry.c), which every sampled allocation and sampled free takes.
 *
 * Why not pthread_mutex_t: uncontended, glibc's lock and unlock run ~55 instructions between
 * them (the mutex kind's checks, the owner and the count kept for recursive and error-checking
 * kinds); this lock's fast paths are one compare-and-swap and one exchange, inlined. At a 4 KiB
 * sampling rate a workload takes a stripe lock two to three times per sample.
 *
 * The states of the word: 0 free, 1 held, 2 held and a thread may sleep on it (Drepper,
 * "Futexes Are Tricky", mutex 2). A locker that finds it held spins a little (the holders
 * keep it for tens of instructions: a probe of an open-addressed table), then marks it 2 and
 * sleeps in FUTEX_WAIT until an unlock that finds 2 wakes one sleeper; a woken thread takes it
 * as 2, since others may still sleep. The compare-and-swap that takes it is an acquire and the
 * exchange that frees it a release, so what one holder wrote is seen by the next (ThreadSanitizer
 * sees the same pair). Zero-initialized storage is a free lock.
 *
 * A thread that holds it at fork() is the forking thread (registry.c's fork handlers hold every
 * stripe across the fork), which frees it in the child as in the parent: the child never
 * inherits a lock held by a thread it does not have. Nothing here allocates.
 */
#ifndef PALLOC_LOCK_H
#define PALLOC_LOCK_H
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
  _Atomic uint32_t word; /* 0 free, 1 held, 2 held with possible sleepers */
} palloc_lock_t;

#define PALLOC_LOCK_SPINS 64

static __attribute__((noinline, cold)) void palloc_lock_wait(palloc_lock_t *l) {
  for (int i = 0; i < PALLOC_LOCK_SPINS; i++) {
    uint32_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
    if (v == 0 && atomic_compare_exchange_weak_explicit(&l->word, &v, 1, memory_order_acquire,
                                                        memory_order_relaxed))
      return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  /* Marked 2 by whoever takes it from here on: its unlock then wakes a sleeper. The wait's
   * EAGAIN or EINTR must not reach the program's errno (free() leaves errno as it was). */
  int saved = errno;
  while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
    syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
  errno = saved;
}

static __attribute__((noinline, cold)) void palloc_lock_wake(palloc_lock_t *l) {
  int saved = errno;
  syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}

static inline __attribute__((always_inline)) void palloc_lock(palloc_lock_t *l) {
  uint32_t free_ = 0;
  if (__builtin_expect(!atomic_compare_exchange_strong_explicit(&l->word, &free_, 1,
                                                                memory_order_acquire,
                                                                memory_order_relaxed), 0))
    palloc_lock_wait(l);
}

static inline __attribute__((always_inline)) void palloc_unlock(palloc_lock_t *l) {
  if (__builtin_expect(atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2, 0))
    palloc_lock_wake(l);
}

#endif
