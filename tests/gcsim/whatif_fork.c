/* whatif_fork.c - fork under PALLOC_TRACE's what-if mode, while another thread publishes.
 *
 * A churn thread allocates and frees 64 KiB blocks, so that every malloc publishes a batch to the
 * what-if (and takes its lock). The main thread forks FORKS times; each child allocates and frees
 * 1 MiB, which publishes too, and exits. A child that inherited the what-if's lock held by the
 * churn thread (which does not exist in the child) would wait for it forever: its alarm ends it
 * with SIGALRM instead, and the parent counts it. Linked with libpalloc; run with PALLOC_TRACE=1.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "palloc.h"
#include "../check.h"

#define FORKS 200

static atomic_bool stop;

/* The compiler may drop a malloc whose block is only freed: p escapes here. */
static void keep(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void *churn(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    char *p = malloc(64 << 10);
    keep(p);
    free(p);
  }
  return NULL;
}

int main(void) {
  /* a call into libpalloc keeps it linked under --as-needed (the test needs its malloc) */
  CHECK(palloc_get_sample_rate() > 0, "libpalloc is not this program's malloc");
  pthread_t th;
  CHECK(pthread_create(&th, NULL, churn, NULL) == 0, "pthread_create");
  int hung = 0, failed = 0;
  for (int i = 0; i < FORKS; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(5);
      for (int k = 0; k < 16; k++) {
        char *p = malloc(64 << 10);
        keep(p);
        free(p);
      }
      _exit(0);
    }
    CHECK(pid > 0, "fork %d", i);
    if (pid < 0) break;
    int end = check_child(pid);
    if (end == CHILD_HUNG) {
      hung++;
      break; /* one is proof enough, and each costs the alarm's wait */
    } else if (end == CHILD_FAILED) failed++;
  }
  atomic_store(&stop, true);
  pthread_join(th, NULL);
  CHECK(hung == 0, "a child hung in the what-if after fork");
  CHECK(failed == 0, "%d of %d children failed", failed, FORKS);
  return CHECK_DONE();
}
