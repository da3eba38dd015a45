/* test_scale.c - costs that must grow with their work and no faster (issue 19's curves):
 *  - buckets: a lookup's cost does not grow with the number of buckets (the bucket table grows
 *    in layers): inserting 4x the buckets takes about 4x the time, not 16x as it did with a
 *    fixed table; every bucket is found again, and none is made twice;
 *  - profile writes stream: writing a profile of tens of thousands of buckets (each with a deep
 *    stack) raises the process's peak RSS by less than the compressed profile plus 1 MiB: the
 *    samples are never held whole (the old write held ~30x the uncompressed profile); the same
 *    profile goes to a sink (palloc_writer_write_sink), and a failing sink fails the write.
 * `test_scale buckets` and `test_scale write` run one part each (the second needs the process to
 * itself: its peak RSS is the measure). */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "palloc_proto.h"
#include "../check.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void test_buckets(void) {
  enum { N = 50000 };
  /* warm-up: the first layers, then N buckets, then 4N more */
  double t1 = insert(0, N), t4 = insert(N, 5 * N);
  CHECK(t1 > 0 && t4 > 0, "out of memory making buckets");
  double ratio = t4 / t1;
  CHECK(ratio < 9, "4x the buckets took %.1fx the time (%.3f s, %.3f s): lookups grow with the "
        "table's load", ratio, t1, t4);
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

int main(int argc, char **argv) {
  palloc_init();
  if (argc < 2 || strcmp(argv[1], "write") != 0) test_buckets();
  if (argc < 2 || strcmp(argv[1], "buckets") != 0) test_write();
  return CHECK_DONE();
}
