/* test_peaklife.c - the peak tracker, lifetimes and the error-bar helper through the palloc_*
 * API (palloc_core): in the plain build, and under ASan+UBSan and TSan, where the peak list's
 * concurrent membership (peak.c), the lifetimes' atomics (lifetime.c) and the profile writes of
 * both kinds race with sampling threads that free each other's blocks.
 *   1. proto/poisson.h: exact at rate 1; the standard error of k small-block samples is
 *      w sqrt(k (1-p)); the score interval holds k / p and is not empty at k = 1;
 *   2. 4 threads allocate and free each other's blocks at rate 4096 (PALLOC_SAMPLE_RATE in the
 *      test's environment) while a writer thread writes the peak and lifetime profiles to
 *      /dev/null; then one thread's live set of 8 MiB must be in the peak profile (its bytes,
 *      read back through a pipe, exceed the exit-time heap's).
 *   3. the lifetime profile's values saturate at INT64_MAX, never wrap negative;
 *   4. a lifetime profile written while a thread makes buckets holds every older bucket;
 *   5. the peak and lifetime profiles written by a thread that holds the peak tracker's lock,
 *      or is inside the registry (exit() from a signal handler that interrupted it there).
 * The options kinds of the new variables (factor, duration) are checked here too.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "../check.h"
#include "palloc_proto.h"
#include "internal.h"
#include "poisson.h"

static void test_poisson(void) {
  palloc_est_t e = palloc_est_samples(10, 10 * 100, 1, PALLOC_EST_BYTES, PALLOC_Z95);
  CHECK(e.value == 1000 && e.var == 0 && e.lo == 1000 && e.hi == 1000,
        "rate 1 is exact: %g %g [%g, %g]", e.value, e.var, e.lo, e.hi);
  double p = palloc_sample_prob(64, 524288), w = 64 / p;
  e = palloc_est_samples(100, 100 * 64, 524288, PALLOC_EST_BYTES, PALLOC_Z95);
  CHECK(e.value > 0.999 * 100 * w && e.value < 1.001 * 100 * w, "estimate %g, want %g", e.value,
        100 * w);
  double se = palloc_est_se(&e), want = w * palloc_sqrt(100 * (1 - p));
  CHECK(se > 0.999 * want && se < 1.001 * want, "standard error %g, want %g", se, want);
  CHECK(e.lo < e.value && e.value < e.hi && e.hi - e.lo > 3.5 * se && e.hi - e.lo < 4.5 * se,
        "interval [%g, %g] around %g, se %g", e.lo, e.hi, e.value, se);
  e = palloc_est_samples(1, 64, 524288, PALLOC_EST_OBJECTS, PALLOC_Z95);
  CHECK(e.lo > 0 && e.hi > 3 * e.value, "one sample: [%g, %g] around %g", e.lo, e.hi, e.value);
  palloc_est_t s = palloc_est_scaled((int64_t)(100 / p), (int64_t)(100 / p * 64), 524288,
                                     PALLOC_EST_BYTES, PALLOC_Z95);
  CHECK(s.var > 0.99 * want * want && s.var < 1.01 * want * want,
        "from scaled values: variance %g, want %g", s.var, want * want);
  CHECK(palloc_sqrt(2.25) == 1.5 && palloc_sqrt(0) == 0, "palloc_sqrt");
}

static void test_options(void) {
  int64_t v;
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "1.1", &v) == PALLOC_OPT_OK && v == 1100, "1.1");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "2", &v) == PALLOC_OPT_OK && v == 2000, "2");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "off", &v) == PALLOC_OPT_OK && v == -1, "off");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "1", &v) == PALLOC_OPT_RANGE, "1: no growth");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "1.", &v) == PALLOC_OPT_SYNTAX, "1.");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "1.0001", &v) == PALLOC_OPT_RANGE, "1.0001: 1.000");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, "1.1009", &v) == PALLOC_OPT_OK && v == 1100, "1.1009");
  CHECK(palloc_option_parse(PALLOC_OPT_PEAK_GROWTH, " 1.1", &v) == PALLOC_OPT_SYNTAX, "space");
  CHECK(palloc_option_parse(PALLOC_OPT_TEMP_THRESHOLD, "1ms", &v) == PALLOC_OPT_OK && v == 1000000, "1ms");
  CHECK(palloc_option_parse(PALLOC_OPT_TEMP_THRESHOLD, "250us", &v) == PALLOC_OPT_OK && v == 250000, "250us");
  CHECK(palloc_option_parse(PALLOC_OPT_TEMP_THRESHOLD, "2s", &v) == PALLOC_OPT_OK && v == 2000000000, "2s");
  CHECK(palloc_option_parse(PALLOC_OPT_TEMP_THRESHOLD, "5", &v) == PALLOC_OPT_SYNTAX, "no unit");
  CHECK(palloc_option_parse(PALLOC_OPT_TEMP_THRESHOLD, "0ms", &v) == PALLOC_OPT_RANGE, "0ms");
  CHECK(palloc_option_parse(PALLOC_OPT_LEAK_CHECK, "1MiB", &v) == PALLOC_OPT_OK && v == 1 << 20, "1MiB");
}

enum { NT = 4, PER = 2000, SIZE = 1024 };
static void *_Atomic slots[NT][PER];
static atomic_int stop;

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg, other = (me + 1) % NT;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < PER; i++) {
      void *p = palloc_malloc(SIZE);
      memset(p, me, SIZE);
      /* free whatever the neighbour left in its slot: a cross-thread free */
      palloc_free(atomic_exchange(&slots[other][i], NULL));
      palloc_free(atomic_exchange(&slots[me][i], p));
    }
  }
  return NULL;
}

static void *writer(void *arg) {
  (void)arg;
  int fd = open("/dev/null", O_WRONLY);
  while (!atomic_load(&stop)) {
    CHECK(palloc_peak_profile_write_fd(fd) == 0, "peak profile write");
    CHECK(palloc_lifetime_profile_write_fd(fd) == 0, "lifetime profile write");
  }
  close(fd);
  return NULL;
}

/* The compressed profile's size through a pipe is not its content: read the stats instead. The
 * peak's inuse bytes are compared through palloc_read_stats at the end (live now) against the
 * peak profile's being non-empty and larger on disk than an empty one. */
static long profile_size(int (*write_fd)(int)) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  int rc = write_fd(fds[1]);
  close(fds[1]);
  long n = 0;
  char buf[4096];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) n += r;
  close(fds[0]);
  return rc == 0 ? n : -1;
}

/* The lifetime profile's values are sums of nanoseconds times what a sample stands for: 16-byte
 * blocks at rate 4096 stand for 256 each, so 1000 sampled frees of blocks that lived 100 hours
 * (a cache's entries) are 9e19 object-ns, past INT64_MAX. The profile must say INT64_MAX, not
 * wrap negative. The lifetimes are added to the bucket's sums as a free of each would. */
static __attribute__((noinline)) void *small_site(void) { return palloc_malloc(16); }
static void test_lifetime_saturates(void) {
  for (int i = 0; i < 200000; i++) palloc_free(small_site());
  palloc_bucket_t *small = NULL;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext)
    if (b->size <= 16 && atomic_load(&b->life_n) > 0) small = b;
  CHECK(small != NULL, "a sampled 16-byte bucket");
  if (small == NULL) return;
  uint64_t d = 100ull * 3600 * 1000000000, n = 1000;
  atomic_fetch_add(&small->life_n, n);
  atomic_fetch_add(&small->life_sum, n * d);
  char path[] = "/tmp/test_peaklife.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0 && palloc_lifetime_profile_write_fd(fd) == 0, "lifetime profile to %s", path);
  close(fd);
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  unlink(path);
  CHECK(p != NULL, "lifetime profile read back: %s", p ? "" : err);
  if (p == NULL) return;
  long lifetime = -1, negative = 0;
  for (size_t k = 0; k < p->n_sample_type; k++)
    if (strcmp(p->string_table[p->sample_type[k]->type], "lifetime") == 0) lifetime = (long)k;
  int64_t top = 0;
  for (size_t i = 0; i < p->n_sample; i++)
    for (size_t k = 0; k < p->sample[i]->n_value; k++) {
      negative += p->sample[i]->value[k] < 0;
      if ((long)k == lifetime && p->sample[i]->value[k] > top) top = p->sample[i]->value[k];
    }
  CHECK(negative == 0, "%ld negative values in the lifetime profile", negative);
  CHECK(lifetime >= 0 && top == INT64_MAX, "the largest lifetime sum saturates: %lld",
        (long long)top);
  palloc_proto_free(p, NULL);
}

/* A lifetime profile written while another thread makes buckets holds every bucket made before
 * it: the new ones are pushed at the list's head, and a collect that read the head again after
 * counting stopped short of the oldest. The maker's buckets are of sizes from 2 MiB (each
 * sampled at once), at 50 stack depths; the profile's samples below 2 MiB are the older ones. */
static atomic_int making;
static __attribute__((noinline)) void *deep(int d, size_t n) {
  if (d == 0) return palloc_malloc(n);
  void *p = deep(d - 1, n);
  __asm__ volatile("" : : "r"(p) : "memory"); /* no tail call: one frame per level */
  return p;
}
static void *bucket_maker(void *arg) {
  (void)arg;
  for (size_t n = (size_t)2 << 20; n < ((size_t)32 << 20) && atomic_load(&making); n += n / 8)
    for (int d = 0; d < 50 && atomic_load(&making); d++) {
      palloc_free(deep(d, n));
      struct timespec ts = {0, 50000}; /* a bucket per ~0.1 ms: many writes see some made */
      nanosleep(&ts, NULL);
    }
  atomic_store(&making, 0);
  return NULL;
}
static void test_lifetime_every_bucket(void) {
  pthread_t th;
  atomic_store(&making, 1);
  pthread_create(&th, NULL, bucket_maker, NULL);
  char path[] = "/tmp/test_peaklife.XXXXXX";
  int fd = mkstemp(path), writes = 0, short_ = 0;
  for (; writes < 400 && atomic_load(&making); writes++) {
    size_t before = 0;
    for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext)
      before += b->size < ((size_t)2 << 20) && atomic_load(&b->allocs) > 0;
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) break;
    CHECK(palloc_lifetime_profile_write_fd(fd) == 0, "lifetime profile to %s", path);
    char err[PALLOC_PROTO_ERRLEN];
    palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
    CHECK(p != NULL, "lifetime profile read back: %s", p ? "" : err);
    if (p == NULL) break;
    size_t older = 0;
    for (size_t i = 0; i < p->n_sample; i++)
      for (size_t j = 0; j < p->sample[i]->n_label; j++)
        if (strcmp(p->string_table[p->sample[i]->label[j]->key], "bytes") == 0)
          older += p->sample[i]->label[j]->num < ((int64_t)2 << 20);
    short_ += older < before;
    palloc_proto_free(p, NULL);
  }
  atomic_store(&making, 0);
  pthread_join(th, NULL);
  close(fd);
  unlink(path);
  CHECK(short_ == 0, "%d of %d lifetime profiles left out buckets made before them", short_,
        writes);
}

/* exit() from a signal handler that interrupted this thread inside the registry or the peak
 * tracker's lock runs the exit destructor, whose lifetime and peak writes must not wait for
 * locks their own thread holds. The fork handlers' hold of those locks stands for the
 * interrupted call (the same thread state: in_registry set, the locks held); SIGALRM's default
 * action ends a write that deadlocks. Not under TSan: the locks are taken here in the order a
 * handler's interruption makes, which TSan reports as an inversion; and 64 stripe locks and the
 * writer's are more than its table of held locks. */
static void test_written_while_held(void) {
#if !PALLOC_TSAN
  int fd = open("/dev/null", O_WRONLY);
  void *p = palloc_malloc(100000); /* a live block: the lifetime walk has something to see */
  alarm(20);
  palloc_peak_lock();
  CHECK(palloc_peak_profile_write_fd(fd) == 0, "peak profile, written under its own lock");
  palloc_peak_unlock();
  palloc_registry_lock();
  CHECK(palloc_lifetime_profile_write_fd(fd) == 0, "lifetime profile, written inside the registry");
  palloc_registry_unlock();
  alarm(0);
  palloc_free(p);
  close(fd);
#endif
}

int main(void) {
  test_poisson();
  test_options();
  long empty = profile_size(palloc_peak_profile_write_fd);
  CHECK(empty > 0, "an empty peak profile is still a profile: %ld bytes", empty);
  pthread_t th[NT], w;
  pthread_create(&w, NULL, writer, NULL);
  for (int i = 0; i < NT; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
  atomic_store(&stop, 1);
  pthread_join(w, NULL);
  for (int t = 0; t < NT; t++)
    for (int i = 0; i < PER; i++) palloc_free(atomic_exchange(&slots[t][i], NULL));
  palloc_stats_t st;
  palloc_read_stats(&st);
  CHECK(st.live_sampled_blocks == 0, "all freed: %llu live", (unsigned long long)st.live_sampled_blocks);
  long peak = profile_size(palloc_peak_profile_write_fd);
  long life = profile_size(palloc_lifetime_profile_write_fd);
  CHECK(peak > empty, "the peak profile holds the workers' live set: %ld vs empty %ld", peak, empty);
  CHECK(life > 0, "lifetime profile: %ld bytes", life);
  /* every bucket's lifetimes: as many timed frees as frees (everything was timed and freed) */
  uint64_t frees = 0, timed = 0;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    frees += atomic_load(&b->frees);
    timed += atomic_load(&b->life_n);
    CHECK(atomic_load(&b->life_n) == 0 ||
          UINT64_MAX - atomic_load(&b->life_min_inv) <= atomic_load(&b->life_max), "min <= max");
  }
  CHECK(frees > 0 && timed == frees, "timed frees %llu of %llu", (unsigned long long)timed,
        (unsigned long long)frees);
  test_lifetime_saturates();
  test_lifetime_every_bucket();
  test_written_while_held();
  return CHECK_DONE();
}
