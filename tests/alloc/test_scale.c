/* test_scale.c - costs that must grow with their work and no faster (issue 19's curves):
 *  - buckets: a lookup's cost does not grow with the number of buckets (the bucket table grows
 *    in layers): the same lookups among 5x the buckets take about the same time, not 5x as with
 *    a fixed table; every bucket is found again, and none is made twice;
 *  - profile writes stream: writing a profile of tens of thousands of buckets (each with a deep
 *    stack) raises the process's peak RSS by less than the compressed profile plus 1 MiB: the
 *    samples are never held whole (the old write held ~30x the uncompressed profile); the same
 *    profile goes to a sink (palloc_writer_write_sink), and a failing sink fails the write.
 *  - idle threads: 16 threads that freed their working set and wait hold little of it (the
 *    drain rule and mimalloc's decommit while draining, alloc/tcache.c).
 * `test_scale buckets`, `write` and `idle` run one part each (the second needs the process to
 * itself: its peak RSS is the measure). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "palloc_proto.h"
#include "../check.h"

/* The thread's CPU time: the ratio below must not count the time other processes of a loaded
 * machine (a parallel test run) take this thread's core away. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Key i: a 12-frame stack of made-up return addresses, unique per i. */
static void key(uint64_t i, uintptr_t stk[12]) {
  for (int k = 0; k < 12; k++) stk[k] = 0x400000 + (i * 0x9e3779b97f4a7c15ull >> 20) + k * 16;
  stk[0] = 0x500000 + i;
}

static double insert(uint64_t from, uint64_t to) {
  uintptr_t stk[12];
  double t0 = now_s();
  for (uint64_t i = from; i < to; i++) {
    key(i, stk);
    if (palloc_bucket_get(stk, 12, 64) == NULL) return -1;
  }
  return now_s() - t0;
}

/* The best of three passes of M lookups of 1000 keys made already (few enough to stay in the
 * CPU's caches: what is measured is the walk, not the misses of a larger heap). */
static double lookups(void) {
  enum { M = 40000 };
  uintptr_t stk[12];
  double best = 1e9;
  for (int pass = 0; pass < 3; pass++) {
    double t0 = now_s();
    for (uint64_t i = 0; i < M; i++) {
      key(i % 1000 * 37, stk);
      if (palloc_bucket_get(stk, 12, 64) == NULL) return -1;
    }
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  return best;
}

static void test_buckets(void) {
  enum { N = 50000 };
  /* the same lookups with N buckets, then with 5N: about as fast (1-2.5x here: the layers
   * added meanwhile are searched too); a table of fixed size made them 40x slower */
  CHECK(insert(0, N) > 0, "out of memory making buckets");
  double t1 = lookups();
  CHECK(insert(N, 5 * N) > 0, "out of memory making buckets");
  double t5 = lookups();
  double ratio = t5 / t1;
  CHECK(t1 > 0 && t5 > 0 && ratio < 8, "lookups among 5x the buckets took %.1fx the time "
        "(%.4f s, %.4f s): they grow with the table's load", ratio, t1, t5);
  uintptr_t stk[12];
  size_t again = 0;
  for (uint64_t i = 0; i < 5 * N; i += 97) {
    key(i, stk);
    palloc_bucket_t *b = palloc_bucket_get(stk, 12, 64);
    again += b != NULL && b->nstk == 12 && memcmp(b->stk, stk, sizeof stk) == 0;
  }
  CHECK(again == (5 * N + 96) / 97, "%zu of %d buckets found again", again, (5 * N + 96) / 97);
  size_t n = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) n++;
  CHECK(n == 5 * N, "%zu buckets for %d keys", n, 5 * N);
}

/* A distinct stack per i: the path of i's bits through a and b, levels deep. */
__attribute__((noinline)) static void *path_b(uint32_t bits, int level);
__attribute__((noinline)) static void *path_a(uint32_t bits, int level) {
  void *p = level == 0 ? palloc_malloc(48) : bits & 1 ? path_b(bits >> 1, level - 1)
                                                      : path_a(bits >> 1, level - 1);
  __asm__ volatile("" : : "r"(p) : "memory"); /* not a tail call */
  return p;
}
__attribute__((noinline)) static void *path_b(uint32_t bits, int level) {
  void *p = level == 0 ? palloc_malloc(48) : bits & 1 ? path_b(bits >> 1, level - 1)
                                                      : path_a(bits >> 1, level - 1);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static long maxrss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

typedef struct { size_t n; uint8_t head[2]; } sink_t;
static int sink_write(void *ctx, const void *buf, size_t n) {
  sink_t *m = ctx;
  for (size_t i = 0; i < n && m->n + i < 2; i++) m->head[m->n + i] = ((const uint8_t *)buf)[i];
  m->n += n;
  return 0;
}
static int sink_fail(void *ctx, const void *buf, size_t n) {
  (void)ctx, (void)buf, (void)n;
  errno = EPIPE;
  return -1;
}

static void test_write(void) {
  enum { LEVELS = 15, N = 1 << LEVELS };
  palloc_set_sample_rate(1); /* every allocation: a bucket per stack */
  static void *keep[N];
  for (uint32_t i = 0; i < N; i++) keep[i] = path_a(i, LEVELS);
  palloc_stats_t st;
  palloc_read_stats(&st);
  CHECK(st.buckets >= N, "%llu buckets for %d stacks", (unsigned long long)st.buckets, N);
  char path[64];
  snprintf(path, sizeof path, "/tmp/palloc-test-scale.%d.pb.gz", (int)getpid());
  long before = maxrss_kb();
  CHECK(palloc_profile_write(path) == 0, "the profile write failed");
  long grew = maxrss_kb() - before;
  palloc_read_stats(&st);
  long allowed = (long)(st.last_write_bytes / 1024) + 1024;
  CHECK(grew < allowed, "writing a %llu KB profile of %llu buckets raised the peak RSS by %ld KB "
        "(allowed: its size + 1 MiB = %ld KB)", (unsigned long long)st.last_write_bytes / 1024,
        (unsigned long long)st.buckets, grew, allowed);
  unlink(path);
  /* The same profile to a sink (a write callback: what an HTTP endpoint gives): gzip's bytes,
   * as many as the write reports; a failing sink fails the write. */
  sink_t m = {0, {0}};
  palloc_proto_sink_t sink = {sink_write, &m};
  CHECK(palloc_writer_write_sink(&sink) == 0, "the write to a sink failed");
  palloc_read_stats(&st);
  CHECK(m.n == st.last_write_bytes && m.head[0] == 0x1f && m.head[1] == 0x8b,
        "the sink got %zu bytes (%02x %02x), the write reported %llu", m.n, m.head[0],
        m.head[1], (unsigned long long)st.last_write_bytes);
  palloc_proto_sink_t bad = {sink_fail, NULL};
  CHECK(palloc_writer_write_sink(&bad) == -1, "a failing sink did not fail the write");
  for (uint32_t i = 0; i < N; i++) palloc_free(keep[i]);
}

/* Idle threads: 16 threads each allocate 4 MiB of small blocks, free them all and wait. What
 * they freed goes back to the system (the drain rule empties their caches, and mimalloc
 * decommits what a draining thread frees at once): the process's RSS with them waiting is
 * within a quarter of what they allocated above its RSS before. Before, mimalloc's 25 ms
 * decommit delay was never checked again by the waiting threads: they kept it all. */
enum { IDLE_THREADS = 16, IDLE_BYTES = 4 << 20 };
static pthread_barrier_t idle_done, idle_end;

static void *idle_thread(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  void *head = NULL;
  for (size_t total = 0; total < IDLE_BYTES;) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = 16 + x % 497;
    void **b = palloc_malloc(n);
    memset(b, 1, n);
    *b = head;
    head = b;
    total += n;
  }
  while (head) {
    void *next = *(void **)head;
    palloc_free(head);
    head = next;
  }
  pthread_barrier_wait(&idle_done);
  pthread_barrier_wait(&idle_end);
  return NULL;
}

static long rss_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
  if (f) fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_idle(void) {
  pthread_t th[IDLE_THREADS];
  pthread_barrier_init(&idle_done, NULL, IDLE_THREADS + 1);
  pthread_barrier_init(&idle_end, NULL, IDLE_THREADS + 1);
  long before = rss_kb();
  for (uintptr_t i = 0; i < IDLE_THREADS; i++)
    CHECK(pthread_create(&th[i], NULL, idle_thread, (void *)i) == 0, "pthread_create");
  pthread_barrier_wait(&idle_done);
  long held = rss_kb() - before, allocated = (long)IDLE_THREADS * IDLE_BYTES / 1024;
  CHECK(held < allocated / 4, "%d idle threads that freed %ld KiB hold %ld KiB", IDLE_THREADS,
        allocated, held);
  pthread_barrier_wait(&idle_end);
  for (int i = 0; i < IDLE_THREADS; i++) pthread_join(th[i], NULL);
}

int main(int argc, char **argv) {
  palloc_init();
  const char *part = argc > 1 ? argv[1] : "";
  if (!*part || !strcmp(part, "buckets")) test_buckets();
  if (!*part || !strcmp(part, "write")) test_write();
  if (!strcmp(part, "idle")) test_idle();
  return CHECK_DONE();
}
