/* test_process.c - profiles across process events, through the real override (-lpalloc):
 *  fork   a multi-threaded parent forks 20 children while 4 threads allocate; each child
 *         allocates, writes its own profile under its own pid (PALLOC_PROFILE=...%p...) at
 *         exit, within a deadline (a deadlock on a lock inherited from the parent would hang);
 *         then 40 forks while the threads sample every allocation (unwinding constantly);
 *  signal PALLOC_PROFILE_SIGNAL=USR2 while threads allocate: every signal yields a numbered,
 *         readable snapshot, written by palloc's writer thread, not in the handler;
 *  interval PALLOC_PROFILE_INTERVAL=1 writes snapshots on its own;
 *  errors an unwritable path prints one "palloc:" line and the program goes on.
 * run_process.sh checks, after the process and its children have exited, that no temporary
 * file was left (a snapshot may legitimately be in progress while the process runs).
 * The environment (set by meson) is PALLOC_PROFILE=<dir>/proc.%p.pb.gz, PALLOC_PROFILE_SIGNAL
 * and PALLOC_PROFILE_INTERVAL=1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "palloc.h"
#include "palloc_proto.h"
#include "../check.h"

static atomic_int stop;
static volatile long sink;
static const char *dir;

__attribute__((noipa)) static void *churn(void *arg) {
  (void)arg;
  void *keep[64] = {0};
  for (unsigned i = 0; !atomic_load(&stop); i++) {
    free(keep[i % 64]);
    keep[i % 64] = malloc(64 + (i * 7919) % 8192);
  }
  for (int i = 0; i < 64; i++) free(keep[i]);
  return NULL;
}

static int readable(const char *path, size_t *samples) {
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  if (p == NULL) {
    fprintf(stderr, "%s: %s\n", path, err);
    return 0;
  }
  if (samples) *samples = p->n_sample;
  palloc_proto_free(p, NULL);
  return 1;
}

/* Counts files in dir whose name starts with prefix and ends with .pb.gz. */
static int count_files(const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && l > 6 &&
        strcmp(e->d_name + l - 6, ".pb.gz") == 0)
      n++;
  }
  if (d) closedir(d);
  return n;
}

/* The allocations are used (written and summed) so that the compiler cannot remove them. */
__attribute__((noipa)) static long child_work(void) {
  char **v = malloc(1000 * sizeof *v);
  long sum = 0;
  for (int i = 0; i < 1000; i++) { /* 4 MB live at exit */
    v[i] = malloc(4096);
    v[i][i] = (char)i;
    sum += v[i][i];
  }
  for (int i = 0; i < 100000; i++) {
    char *p = malloc(100);
    p[i % 100] = 1;
    sum += p[i % 100];
    free(p);
  }
  return sum;
}

static void test_fork(void) {
  for (int k = 0; k < 20; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(20); /* a deadlock kills the child: the parent sees it */
      pthread_t t;
      pthread_create(&t, NULL, churn, NULL); /* the child can start threads too */
      sink = child_work();
      atomic_store(&stop, 1);
      pthread_join(t, NULL);
      exit(0); /* palloc writes proc.<child pid>.pb.gz at exit */
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited cleanly (status %#x)",
          k, status);
    char path[512];
    snprintf(path, sizeof path, "%s/proc.%d.pb.gz", dir, (int)pid);
    size_t n = 0;
    CHECK(readable(path, &n) && n > 0, "child %d wrote its own readable profile %s", k, path);
  }
}

/* Every allocation sampled (rate 1) while the main thread forks, and threads that start, sample
 * and exit one after another: a new thread's first unwinds miss libunwind's per-thread cache and
 * take its global locks. A lock the unwinder held at fork would hang the child's first sample;
 * palloc's fork handler waits until no thread is unwinding, and the child must find that lock
 * usable (an rwlock unlocked in the child by its new thread id hung every child here). The
 * libunwind race itself is rare (1 child in ~1,200 in the fork test above, under load). */
static atomic_int spawn_stop;
static void *short_lived(void *arg) {
  (void)arg;
  for (int i = 0; i < 20; i++) free(malloc(48 + (size_t)i * 16));
  return NULL;
}
static void *spawner(void *arg) {
  (void)arg;
  while (!atomic_load(&spawn_stop)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
  }
  return NULL;
}
static void test_fork_sampling(void) {
  size_t rate = palloc_get_sample_rate();
  palloc_set_sample_rate(1);
  pthread_t sp[2];
  for (int i = 0; i < 2; i++) pthread_create(&sp[i], NULL, spawner, NULL);
  int hung = 0, bad = 0;
  for (int k = 0; k < 40; k++) {
    usleep(2000);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10);
      for (int i = 0; i < 200; i++) {
        char *p = malloc(32 + (size_t)i);
        p[0] = (char)i;
        sink += p[0];
        free(p);
      }
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) hung++;
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad++;
  }
  atomic_store(&spawn_stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(sp[i], NULL);
  palloc_set_sample_rate(rate);
  CHECK(hung == 0 && bad == 0, "fork while sampling: %d of 40 children hung, %d failed", hung, bad);
}

static void test_signal(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "proc.%d.", (int)getpid());
  int before = count_files(prefix);
  for (int i = 0; i < 5; i++) {
    kill(getpid(), SIGUSR2);
    usleep(300 * 1000);
  }
  for (int waited = 0; count_files(prefix) < before + 5 && waited < 100; waited++)
    usleep(100 * 1000);
  int after = count_files(prefix);
  CHECK(after >= before + 5, "5 signals gave %d snapshots", after - before);
  char path[600];
  snprintf(path, sizeof path, "%s/proc.%d.0001.pb.gz", dir, (int)getpid());
  CHECK(readable(path, NULL), "first snapshot %s is readable", path);
}

static void test_interval(void) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "proc.%d.", (int)getpid());
  int before = count_files(prefix);
  sleep(3);
  int after = count_files(prefix);
  CHECK(after >= before + 2, "interval 1 s wrote %d snapshots in 3 s", after - before);
}

static unsigned char drained[8 << 20];
static size_t drained_len;
static void *drain(void *arg) {
  int fd = *(int *)arg;
  ssize_t r;
  while ((r = read(fd, drained + drained_len, sizeof drained - drained_len)) > 0)
    drained_len += (size_t)r;
  return NULL;
}

static void test_errors(void) {
  int pipefd[2];
  CHECK(pipe(pipefd) == 0, "pipe");
  int saved = dup(2);
  dup2(pipefd[1], 2);
  int rc = palloc_profile_write("/nonexistent-dir/heap.pb.gz");
  dup2(saved, 2);
  close(pipefd[1]);
  char buf[1024] = "";
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  CHECK(rc == -1, "write to a missing directory fails");
  CHECK(strncmp(buf, "palloc: ", 8) == 0 && strstr(buf, "/nonexistent-dir/heap.pb.gz") &&
        strchr(buf, '\n') == buf + strlen(buf) - 1, "one palloc: line naming the path: %s", buf);
  /* palloc_profile_write_fd to a pipe: the profile streams through, whole and valid */
  CHECK(pipe(pipefd) == 0, "pipe");
  pthread_t reader;
  pthread_create(&reader, NULL, drain, &pipefd[0]);
  CHECK(palloc_profile_write_fd(pipefd[1]) == 0, "write_fd to a pipe");
  close(pipefd[1]);
  pthread_join(reader, NULL);
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_decode(drained, drained_len, NULL, err);
  CHECK(p != NULL && p->n_sample > 0, "the piped profile decodes: %s", p ? "ok" : err);
  palloc_proto_free(p, NULL);
  close(pipefd[0]);
  palloc_stats_t st;
  palloc_read_stats(&st);
  CHECK(st.profile_errors >= 1 && st.profiles_written >= 5, "stats: %llu written, %llu errors",
        (unsigned long long)st.profiles_written, (unsigned long long)st.profile_errors);
}

int main(int argc, char **argv) {
  dir = argc > 1 ? argv[1] : ".";
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, churn, NULL);
  test_fork();
  test_fork_sampling();
  test_signal();
  test_interval();
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  test_errors();
  return CHECK_DONE();
}
