/* peaklife.c - the programs behind check_peaklife.py (peak heap, lifetimes, the leak gate).
 *
 *   peaklife phases [threads]   phase 1: 64 MiB in 4 KiB blocks from site_x, all freed (by other
 *                               threads with "threads"); phase 2: 16 MiB from site_y, held
 *   peaklife lifetimes [threads] site_a: freed at once; site_b: freed after ~50 ms; site_c: never
 *   peaklife leak BYTES [threads|fork|supp]  leaks BYTES from leak_site (in 1 KiB blocks), and
 *                               with "supp" BYTES more from suppressed_site (in supp_file.c's
 *                               name via its function)
 *   any mode ... fork           the same in a forked child, whose status is this program's
 *   any mode ... closeerr       an exit handler closes stderr and opens victim.txt, which gets
 *                               descriptor 2 (as coreutils' close_stdout, then a file)
 *   peaklife clean [threads|fork]  allocates and frees everything
 *   peaklife inherit            holds 1 MiB from leak_site, forks a child that exits by exit(0)
 *                               leaving it, prints the child's status, then frees it
 *   peaklife snapshot           phases, then raises SIGUSR2 (PALLOC_PROFILE_SIGNAL) and waits
 * Each ends by printing "done" through stdio (the leak gate must not lose it).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static volatile void *sink;

static void msleep(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {}
}

NOINLINE void *site_x(size_t n) { void *p = malloc(n); memset(p, 1, n); sink = p; return p; }
NOINLINE void *site_y(size_t n) { void *p = malloc(n); memset(p, 2, n); sink = p; return p; }
NOINLINE void *site_a(size_t n) { void *p = malloc(n); sink = p; return p; }
NOINLINE void *site_b(size_t n) { void *p = malloc(n); sink = p; return p; }
NOINLINE void *site_c(size_t n) { void *p = malloc(n); sink = p; return p; }
NOINLINE void *leak_site(size_t n) { void *p = malloc(n); memset(p, 3, n); sink = p; return p; }
NOINLINE void *suppressed_site(size_t n) { void *p = malloc(n); sink = p; return p; }
void *other_file_site(size_t n); /* peaklife_supp.c */

typedef struct { void **v; size_t from, to; } range_t;
static void *free_range(void *arg) {
  range_t *r = arg;
  for (size_t i = r->from; i < r->to; i++) free(r->v[i]);
  return NULL;
}
/* frees v[0..n) on this thread, or split over 4 threads */
static void free_all(void **v, size_t n, int threads) {
  if (!threads) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    return;
  }
  pthread_t th[4];
  range_t r[4];
  for (int k = 0; k < 4; k++) {
    r[k] = (range_t){v, n * k / 4, n * (k + 1) / 4};
    pthread_create(&th[k], NULL, free_range, &r[k]);
  }
  for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
}

static void phases(int threads) {
  size_t n = (64u << 20) / 4096;
  void **v = calloc(n, sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = site_x(4096);
  free_all(v, n, threads);
  free(v);
  msleep(10);
  size_t m = (16u << 20) / 4096;
  void **w = calloc(m, sizeof *w);
  for (size_t i = 0; i < m; i++) w[i] = site_y(4096);
  sink = w; /* held until exit */
}

typedef struct { int threads; } lt_t;
static void *lifetimes_run(void *arg) {
  (void)arg;
  enum { N = 4000, NB = 200 };
  static void *b[NB];
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < NB; i++) b[i] = site_b(2048);
    for (int i = 0; i < N; i++) free(site_a(2048));
    msleep(50);
    for (int i = 0; i < NB; i++) free(b[i]);
  }
  for (int i = 0; i < NB; i++) site_c(2048); /* never freed */
  return NULL;
}
static void lifetimes(int threads) {
  if (!threads) {
    lifetimes_run(NULL);
    return;
  }
  pthread_t th;
  pthread_create(&th, NULL, lifetimes_run, NULL);
  pthread_join(th, NULL);
}

static void close_stderr(void) {
  fclose(stderr);
  int fd = open("victim.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644); /* takes descriptor 2 */
  (void)fd;
}

static void *leak_run(void *arg) {
  size_t bytes = *(size_t *)arg;
  for (size_t i = 0; i < bytes / 1024; i++) leak_site(1024);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *mode = argv[1], *opt = argc > 2 ? argv[argc - 1] : "";
  int threads = strcmp(opt, "threads") == 0;
  if (strcmp(opt, "closeerr") == 0) atexit(close_stderr);
  if (strcmp(opt, "fork") == 0) {
    /* everything happens in a forked child, whose status is this program's; the parent
     * leaves by _exit, so that only the child writes profiles and checks leaks */
    void *before = malloc(1 << 20); /* sampled or not, freed by the child: no leak */
    fflush(NULL);
    pid_t pid = fork();
    if (pid > 0) {
      int st;
      waitpid(pid, &st, 0);
      printf("child %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
      fflush(NULL);
      _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
    }
    free(before);
  }
  if (strcmp(mode, "phases") == 0) phases(threads);
  else if (strcmp(mode, "lifetimes") == 0) lifetimes(threads);
  else if (strcmp(mode, "inherit") == 0) {
    void **v = calloc(256, sizeof *v);
    for (int i = 0; i < 256; i++) v[i] = leak_site(4096);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      free(malloc(100));
      exit(0); /* destructors run: the parent's blocks are still live here */
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    for (int i = 0; i < 256; i++) free(v[i]);
    free(v);
  }
  else if (strcmp(mode, "snapshot") == 0) {
    phases(0);
    raise(SIGUSR2);
    msleep(300); /* the writer thread writes the snapshots meanwhile */
  }
  else if (strcmp(mode, "leak") == 0 || strcmp(mode, "clean") == 0) {
    size_t bytes = strcmp(mode, "leak") == 0 ? strtoull(argv[2], NULL, 0) : 0;
    /* work that is freed: never a leak */
    void **v = calloc(1000, sizeof *v);
    for (int i = 0; i < 1000; i++) v[i] = malloc(4096);
    free_all(v, 1000, threads);
    free(v);
    if (threads) {
      pthread_t th;
      pthread_create(&th, NULL, leak_run, &bytes);
      pthread_join(th, NULL);
    } else {
      leak_run(&bytes);
    }
    if (strcmp(opt, "supp") == 0)
      for (size_t i = 0; i < bytes / 1024; i++) suppressed_site(1024), other_file_site(1024);
  } else {
    return 2;
  }
  printf("done\n"); /* buffered when stdout is a pipe: the gate must flush it */
  return 0;
}
