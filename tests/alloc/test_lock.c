/* test_lock.c - alloc/lock.h's palloc_lock_t, the registry stripes' lock, under contention:
 *  - mutual exclusion: 4 threads increment a plain counter under one lock, and mark the lock's
 *    holder; every increment counts and no thread ever finds another inside;
 *  - the sleeping path: a holder that yields inside makes the others spin out and sleep in
 *    FUTEX_WAIT (the word is seen at 2, "held with sleepers"), and every unlock that finds
 *    sleepers wakes one (a lost wake-up hangs the test: the meson timeout fails it);
 *  - errno: a locker that slept (FUTEX_WAIT's EAGAIN, EINTR) leaves the thread's errno as it was,
 *    as free() must; made certain by a locker that sleeps while signals without SA_RESTART
 *    interrupt its wait (EINTR each time);
 *  - the word is 0 (free) after the last unlock. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include "lock.h"
#include "../check.h"

enum { THREADS = 4, ROUNDS = 100000 };
static palloc_lock_t lock;
static unsigned long counter;       /* under lock */
static int inside;                  /* under lock: 1 while a thread holds it */
static _Atomic int overlaps, sleepers_seen, errno_changed;

static void *worker(void *arg) {
  (void)arg;
  errno = 4242;
  for (int i = 0; i < ROUNDS; i++) {
    palloc_lock(&lock);
    if (inside) atomic_fetch_add(&overlaps, 1);
    inside = 1;
    counter++;
    if (atomic_load_explicit(&lock.word, memory_order_relaxed) == 2)
      atomic_fetch_add(&sleepers_seen, 1);
    if (i % 512 == 0) sched_yield(); /* a long hold: the others spin out and sleep */
    inside = 0;
    palloc_unlock(&lock);
    if (errno != 4242) {
      atomic_fetch_add(&errno_changed, 1);
      errno = 4242;
    }
  }
  return NULL;
}

static palloc_lock_t held;
static _Atomic int sleeper_errno = -1;

static void on_usr1(int sig) { (void)sig; }

static void *sleeper(void *arg) {
  (void)arg;
  errno = 4242;
  palloc_lock(&held); /* held by main: spins out, sleeps, is interrupted, sleeps again */
  atomic_store(&sleeper_errno, errno);
  palloc_unlock(&held);
  return NULL;
}

static void pause_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

static void test_interrupted_wait(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: FUTEX_WAIT returns EINTR */
  sigaction(SIGUSR1, &sa, NULL);
  palloc_lock(&held);
  pthread_t t;
  pthread_create(&t, NULL, sleeper, NULL);
  for (int i = 0; i < 5; i++) {
    pause_ms(20);
    pthread_kill(t, SIGUSR1);
  }
  pause_ms(20);
  palloc_unlock(&held);
  pthread_join(t, NULL);
  CHECK(atomic_load(&sleeper_errno) == 4242, "errno %d after an interrupted wait, want 4242",
        atomic_load(&sleeper_errno));
  CHECK(atomic_load(&held.word) == 0, "the word is %u after the last unlock",
        (unsigned)atomic_load(&held.word));
}

int main(void) {
  test_interrupted_wait();
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, worker, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  CHECK(counter == (unsigned long)THREADS * ROUNDS, "counter %lu, want %lu", counter,
        (unsigned long)THREADS * ROUNDS);
  CHECK(atomic_load(&overlaps) == 0, "%d times a thread found the lock's holder inside",
        atomic_load(&overlaps));
  CHECK(atomic_load(&errno_changed) == 0, "errno changed %d times", atomic_load(&errno_changed));
  CHECK(atomic_load(&lock.word) == 0, "the word is %u after the last unlock",
        (unsigned)atomic_load(&lock.word));
  printf("lock: %d holds saw sleepers\n", atomic_load(&sleepers_seen));
  return CHECK_DONE();
}
