/* metrics_fork.c - fork while PALLOC_HTTP's /metrics reads the gcsim arenas' figures.
 *
 * The endpoint's thread holds gcmetrics.c's list lock while it writes every arena's figures; a
 * scraper thread asks for /metrics over and over (with ARENAS arenas, each scrape holds the lock
 * for most of its time). The main thread forks FORKS times; each child makes and destroys an
 * arena, which takes that lock. A child that inherited the lock held by the endpoint's thread
 * (which does not exist in the child) would wait for it forever: its alarm ends it with SIGALRM
 * instead, and the parent counts it. Linked with libpalloc; run with
 * PALLOC_HTTP=unix:DIR/metrics_fork.%p.sock.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "palloc.h"
#include "palloc_gc.h"
#include "../check.h"

#define ARENAS 200
#define FORKS 100

static atomic_bool stop;
static atomic_long scrapes;
static struct sockaddr_un sun;

static void *scraper(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 &&
        write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
      char buf[65536];
      while (read(fd, buf, sizeof buf) > 0) {}
      atomic_fetch_add(&scrapes, 1);
    } else {
      usleep(1000);
    }
    close(fd);
  }
  return NULL;
}

int main(void) {
  CHECK(palloc_get_sample_rate() > 0, "libpalloc is not this program's malloc");
  const char *spec = getenv("PALLOC_HTTP");
  CHECK(spec && strncmp(spec, "unix:", 5) == 0 && strstr(spec, "%p"), "run with PALLOC_HTTP=unix:...%%p...");
  if (!spec) return 1;
  const char *pp = strstr(spec + 5, "%p");
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%.*s%d%s", (int)(pp - spec - 5), spec + 5,
           (int)getpid(), pp + 2);
  static palloc_gc_t *arenas[ARENAS];
  for (int i = 0; i < ARENAS; i++) CHECK((arenas[i] = palloc_gc_create(NULL)) != NULL, "arena %d", i);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, scraper, NULL) == 0, "pthread_create");
  while (atomic_load(&scrapes) < 2) usleep(1000);
  int hung = 0, failed = 0;
  for (int i = 0; i < FORKS; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(5);
      palloc_gc_t *a = palloc_gc_create(NULL);
      if (a) palloc_gc_destroy(a);
      _exit(a ? 0 : 1);
    }
    CHECK(pid > 0, "fork %d", i);
    if (pid < 0) break;
    int end = check_child(pid);
    if (end == CHILD_HUNG) {
      hung++;
      break; /* one is proof enough, and each costs the alarm's wait */
    } else if (end == CHILD_FAILED) failed++;
    usleep(2000);
  }
  atomic_store(&stop, true);
  pthread_join(th, NULL);
  CHECK(hung == 0, "a fork child hung on gcmetrics' lock, held by the endpoint's thread at the fork");
  CHECK(failed == 0, "%d fork children failed", failed);
  for (int i = 0; i < ARENAS; i++) palloc_gc_destroy(arenas[i]);
  printf("%ld scrapes, %d forks\n", atomic_load(&scrapes), FORKS);
  return CHECK_DONE();
}
