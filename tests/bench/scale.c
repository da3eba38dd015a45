/* scale.c - the workloads of the scale benchmark (bench.py --scale-bench): how memory and cost
 * grow with threads, live heap, stack depth and distinct stacks.
 *
 *   scale threads N idle|busy [KIB]  N threads; each allocates KIB (default 2048) of small blocks
 *                                    (16-512 B) and frees them. idle: then every thread waits,
 *                                    and the RSS with N idle threads is printed; busy: each
 *                                    thread churns its working set 4x over, then exits
 *   scale heap MIB                   MIB live in small blocks (32-2080 B, 32 stacks), then as many
 *                                    replacements as blocks / 4
 *   scale depth D N                  N allocations of 64 B, each made D frames deep, freed at once
 *   scale stacks N                   N allocations of 64 B, each from a distinct stack (a path of
 *                                    log2(N) binary choices), kept live
 *
 * Each prints one line "scale: key=value ..." on stderr: rss_kb (current RSS at the point the
 * mode measures: idle threads, the end of the work), and, under palloc, palloc_read_stats'
 * internal_bytes and buckets. SCALE_DUMP=path: after the work, write the profile there
 * (palloc_profile_write, or jemalloc's prof.dump mallctl) and print its duration.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static volatile uintptr_t sink;

#include "rng.h"
static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) { fprintf(stderr, "scale: out of memory\n"); exit(3); }
  memset(p, 0x5a, n < 64 ? n : 64);
  return p;
}

static long rss_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* palloc's figures, if palloc is loaded; the profile dump of palloc or jemalloc (SCALE_DUMP). */
static void report(const char *what) {
  char extra[256] = "";
  uint64_t st[13];
  void (*stats)(uint64_t *) = (void (*)(uint64_t *))dlsym(RTLD_DEFAULT, "palloc_read_stats");
  const char *dump = getenv("SCALE_DUMP");
  double t0 = now_s(), dt = -1;
  if (dump) {
    int (*pw)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "palloc_profile_write");
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    int rc = -1;
    if (pw) rc = pw(dump);
    else if (mallctl) rc = mallctl("prof.dump", NULL, NULL, &dump, sizeof dump);
    if (rc == 0) dt = now_s() - t0;
  }
  long rss = rss_kb();
  if (stats) {
    stats(st);
    snprintf(extra, sizeof extra, " internal_bytes=%llu buckets=%llu samples=%llu",
             (unsigned long long)st[6], (unsigned long long)st[5], (unsigned long long)st[1]);
  }
  fprintf(stderr, "scale: mode=%s rss_kb=%ld dump_s=%.4f%s\n", what, rss, dt, extra);
}

/* ---- threads ------------------------------------------------------------------------------ */
static size_t th_bytes;
static int th_busy;
static pthread_mutex_t th_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t th_cv = PTHREAD_COND_INITIALIZER;
static int th_ready, th_release;

NOINLINE static void *site_thread_block(size_t n) { return xmalloc(n); }

/* The blocks are chained through their first word (no array: only small blocks, as the issue's
 * thread-per-connection server); busy replaces every other block of the chain 4 times over. */
static void *thread_main(void *arg) {
  rng_t r = {0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1)};
  void *head = NULL;
  size_t total = 0;
  while (total < th_bytes) {
    size_t s = range(&r, 16, 512);
    void **b = site_thread_block(s);
    *b = head;
    head = b;
    total += s;
  }
  for (int pass = 0; th_busy && pass < 4; pass++)
    for (void **b = head; b && *b; b = *b) { /* replace b's successor */
      void **old = *b, **nb = site_thread_block(range(&r, 16, 512));
      *nb = *old;
      free(old);
      *b = nb;
    }
  while (head) {
    void *next = *(void **)head;
    free(head);
    head = next;
  }
  if (!th_busy) {
    pthread_mutex_lock(&th_mu);
    th_ready++;
    pthread_cond_broadcast(&th_cv);
    while (!th_release) pthread_cond_wait(&th_cv, &th_mu);
    pthread_mutex_unlock(&th_mu);
  }
  return NULL;
}

static void threads(int argc, char **argv) {
  int n = argc > 2 ? atoi(argv[2]) : 8;
  th_busy = argc > 3 && strcmp(argv[3], "busy") == 0;
  th_bytes = (argc > 4 ? (size_t)atol(argv[4]) : 2048) * 1024;
  pthread_t *th = calloc((size_t)n, sizeof *th);
  pthread_attr_t at;
  pthread_attr_init(&at);
  for (int i = 0; i < n; i++)
    if (pthread_create(&th[i], &at, thread_main, (void *)(uintptr_t)i)) {
      fprintf(stderr, "scale: pthread_create\n");
      exit(3);
    }
  if (!th_busy) {
    pthread_mutex_lock(&th_mu);
    while (th_ready < n) pthread_cond_wait(&th_cv, &th_mu);
    pthread_mutex_unlock(&th_mu);
    struct timespec ts = {0, 300 * 1000000L}; /* idle for a while, as a server between requests */
    nanosleep(&ts, NULL);
    report("threads-idle");
    pthread_mutex_lock(&th_mu);
    th_release = 1;
    pthread_cond_broadcast(&th_cv);
    pthread_mutex_unlock(&th_mu);
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  if (th_busy) report("threads-busy");
  free(th);
}

/* ---- live heap ---------------------------------------------------------------------------- */
#define HEAP_LEVEL(i)                                                                        \
  NOINLINE static void *heap_path##i(size_t n, int d) {                                      \
    void *p = d ? heap_path##i(n, d - 1) : xmalloc(n);                                       \
    sink += (uintptr_t)d;                                                                    \
    return p;                                                                                \
  }
HEAP_LEVEL(0) HEAP_LEVEL(1) HEAP_LEVEL(2) HEAP_LEVEL(3)
static void *(*const heap_paths[4])(size_t, int) = {heap_path0, heap_path1, heap_path2, heap_path3};

static void heap(int argc, char **argv) {
  size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 64;
  size_t count = mib * 1024 * 1024 / 1056; /* mean size 1056 B */
  void **obj = malloc(count * sizeof *obj);
  rng_t r = {0x10f1};
  for (size_t i = 0; i < count; i++) {
    uint64_t x = rnd(&r);
    obj[i] = heap_paths[x & 3](range(&r, 32, 2080), (int)((x >> 2) & 7));
  }
  for (size_t i = 0; i < count / 4; i++) {
    size_t k = rnd(&r) % count;
    free(obj[k]);
    obj[k] = heap_paths[k & 3](range(&r, 32, 2080), (int)(k >> 2 & 7));
  }
  report("heap");
}

/* ---- stack depth ---------------------------------------------------------------------------- */
NOINLINE static void *depth_rec(int d) {
  void *p = d <= 0 ? xmalloc(64) : depth_rec(d - 1);
  sink += (uintptr_t)d; /* not a tail call */
  return p;
}

static void depth(int argc, char **argv) {
  int d = argc > 2 ? atoi(argv[2]) : 8;
  long n = argc > 3 ? atol(argv[3]) : 10000;
  for (long i = 0; i < n; i++) free(depth_rec(d - 3)); /* main and depth's frames: d in all */
  report("depth");
}

/* ---- distinct stacks: the path of bits through a and b at each level ------------------------ */
NOINLINE static void *stk_b(uint32_t bits, int level);
NOINLINE static void *stk_a(uint32_t bits, int level) {
  void *p = level == 0 ? xmalloc(64) : (bits & 1) ? stk_b(bits >> 1, level - 1)
                                                  : stk_a(bits >> 1, level - 1);
  sink += (uintptr_t)level;
  return p;
}
NOINLINE static void *stk_b(uint32_t bits, int level) {
  void *p = level == 0 ? xmalloc(64) : (bits & 1) ? stk_b(bits >> 1, level - 1)
                                                  : stk_a(bits >> 1, level - 1);
  sink += (uintptr_t)level + 1;
  return p;
}

static void stacks(int argc, char **argv) {
  long n = argc > 2 ? atol(argv[2]) : 1024;
  int levels = 0;
  while ((1L << levels) < n) levels++;
  void **obj = malloc((size_t)n * sizeof *obj);
  for (long i = 0; i < n; i++) obj[i] = stk_a((uint32_t)i, levels);
  report("stacks");
  sink += (uintptr_t)obj;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  if (!strcmp(m, "threads")) threads(argc, argv);
  else if (!strcmp(m, "heap")) heap(argc, argv);
  else if (!strcmp(m, "depth")) depth(argc, argv);
  else if (!strcmp(m, "stacks")) stacks(argc, argv);
  else {
    fprintf(stderr, "usage: scale threads N idle|busy [KIB] | heap MIB | depth D N | stacks N\n");
    return 2;
  }
  return 0;
}
