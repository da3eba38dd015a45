/* test_sampler.c - unit tests of the sampler and the buckets (palloc_core, no malloc override).
 *  - intervals: mean within 1.5% of the rate and a Kolmogorov-Smirnov test against the
 *    exponential over 100k draws with a fixed seed; rate 1 and rate 0 special cases;
 *  - the sampling probability of an allocation of size s is 1 - exp(-s/rate), end to end through
 *    palloc_sample_alloc (the same countdown and decision as malloc);
 *  - the fast path's budget: its boundary matches the signed countdown's, a budget of 0 sends
 *    even size 0 to the slow path, and impossible sizes (>= 2^63) cannot stop sampling;
 *  - buckets: same key same bucket, different size or stack different bucket, hash spread;
 *  - size and signal parsing of the environment. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "poisson.h" /* palloc_sample_weight */
#include "../check.h"

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_intervals(void) {
  enum { N = 100000 };
  const int64_t rate = 524288;
  palloc_thread_t t;
  memset(&t, 0, sizeof t);
  t.rng = 0x1234567887654321ull;
  static int64_t d[N];
  double sum = 0;
  for (int i = 0; i < N; i++) {
    d[i] = palloc_draw_interval(&t, rate);
    CHECK(d[i] >= 0, "interval %lld is negative", (long long)d[i]);
    sum += (double)d[i];
  }
  double mean = sum / N;
  CHECK(fabs(mean / rate - 1) < 0.015, "mean %.0f vs rate %lld", mean, (long long)rate);
  qsort(d, N, sizeof d[0], cmp_i64);
  double dmax = 0;
  for (int i = 0; i < N; i++) {
    double cdf = 1 - exp(-(double)d[i] / rate);
    double lo = cdf - (double)i / N, hi = (double)(i + 1) / N - cdf;
    if (lo > dmax) dmax = lo;
    if (hi > dmax) dmax = hi;
  }
  double crit = 1.628 / sqrt((double)N); /* alpha = 0.01 */
  CHECK(dmax < crit, "KS statistic %.5f >= critical %.5f", dmax, crit);
  CHECK(palloc_draw_interval(&t, 1) < 0, "rate 1 samples every allocation");
  CHECK(palloc_draw_interval(&t, 0) > 0, "rate 0 never samples");
}

/* The exponential draw (countdown.c's ziggurat) against the exponential's law over 2M draws:
 * equiprobable bins of its CDF (chi-square), the mean and second moment, and the tail beyond the
 * ziggurat's base layer (x > r = 7.697, drawn apart: r plus a fresh exponential). Each of the
 * ziggurat's parts is exercised: the rejections above the curve in a layer (a draw that kept
 * them fails the bins near 0), the tail (one cut at r fails the tail counts). */
static void test_intervals_law(void) {
  enum { N = 1 << 21, K = 1024 };
  const int64_t rate = (int64_t)1 << 30;
  palloc_thread_t t;
  memset(&t, 0, sizeof t);
  t.rng = 0x9e3779b97f4a7c15ull;
  static int bins[K];
  double sum = 0, sum2 = 0;
  int beyond_r = 0, beyond_r2 = 0;
  for (int i = 0; i < N; i++) {
    int64_t d = palloc_draw_interval(&t, rate);
    CHECK(d >= 0, "interval %lld is negative", (long long)d);
    double x = (double)d / (double)rate;
    sum += x;
    sum2 += x * x;
    beyond_r += x > 7.697117470131050;
    beyond_r2 += x > 9.697117470131050;
    int b = (int)(K * -expm1(-x));
    bins[b < K ? b : K - 1]++;
  }
  double chi = 0, e = (double)N / K;
  for (int i = 0; i < K; i++) chi += (bins[i] - e) * (bins[i] - e) / e;
  /* 1023 degrees of freedom: mean 1023, sd 45.2; 1200 is p < 1e-4 */
  CHECK(chi < 1200, "chi-square %.1f over %d equiprobable bins", chi, K);
  double mean = sum / N, m2 = sum2 / N;
  CHECK(fabs(mean - 1) < 5 / sqrt((double)N), "mean %.5f, expected 1", mean);
  CHECK(fabs(m2 - 2) < 5 * sqrt(20.0 / N), "second moment %.5f, expected 2", m2); /* Var x^2 = 20 */
  double p1 = exp(-7.697117470131050), p2 = exp(-9.697117470131050);
  CHECK(fabs(beyond_r - N * p1) < 5 * sqrt(N * p1), "%d draws beyond r, expected %.1f", beyond_r,
        N * p1);
  CHECK(fabs(beyond_r2 - N * p2) < 5 * sqrt(N * p2), "%d draws beyond r + 2, expected %.1f",
        beyond_r2, N * p2);
}

/* proto/poisson.h's palloc_sample_weight (the weight of a sampled block: the peak estimate, the
 * otel_memory probe) against s / (1 - exp(-s/rate)) through libm's expm1, which keeps a small
 * s/rate's bits: within 1e-15 over 1 B .. 10 MB at rates 2 .. 2^40, on both sides of the series'
 * bound (s/rate = 1/2); rate 1 and size 0 exactly. */
static void test_weight(void) {
  const int64_t rates[] = {2, 4096, 524288, (int64_t)1 << 40};
  double worst = 0, worst_s = 0;
  int64_t worst_r = 0;
  for (int k = 0; k < 4; k++) {
    double r = (double)rates[k];
    for (double s = 1; s < 1e7; s = s < 4096 ? s + 1 : s * 1.001) {
      double x = s / r, want = x > 700 ? s : r * (x / -expm1(-x));
      double err = fabs(palloc_sample_weight(s, rates[k]) - want) / want;
      if (err > worst) worst = err, worst_s = s, worst_r = rates[k];
    }
    for (double x = 0.499; x < 0.501; x += 1e-5) {
      double want = r * (x / -expm1(-x)), err = fabs(palloc_sample_weight(x * r, rates[k]) - want) / want;
      if (err > worst) worst = err, worst_s = x * r, worst_r = rates[k];
    }
  }
  CHECK(worst < 1e-15, "weight of %.0f B at rate %lld off by %.3g", worst_s, (long long)worst_r,
        worst);
  CHECK(palloc_sample_weight(1000, 1) == 1000 && palloc_sample_weight(0, 4096) == 0,
        "rate 1: the size; size 0: nothing");
}

static void test_probability(void) {
  /* With rate 4096, an allocation of 4096 bytes is sampled with probability 1 - e^-1. */
  palloc_set_sample_rate(4096);
  enum { N = 200000 };
  int sampled = 0;
  for (int i = 0; i < N; i++) {
    palloc_sample_t *s = palloc_sample_alloc(4096);
    if (s) {
      sampled++;
      palloc_sample_free(s, 4096);
    }
  }
  double p = 1 - exp(-1.0), got = (double)sampled / N;
  double se = sqrt(p * (1 - p) / N);
  CHECK(fabs(got - p) < 5 * se, "sampled fraction %.4f, expected %.4f +- %.4f", got, p, 5 * se);
  /* 64 bytes at 4096: 1 - exp(-1/64) */
  sampled = 0;
  for (int i = 0; i < N; i++) {
    palloc_sample_t *s = palloc_sample_alloc(64);
    if (s) {
      sampled++;
      palloc_sample_free(s, 64);
    }
  }
  p = 1 - exp(-64.0 / 4096);
  got = (double)sampled / N;
  se = sqrt(p * (1 - p) / N);
  CHECK(fabs(got - p) < 5 * se, "64 B sampled fraction %.5f, expected %.5f", got, p);
  palloc_set_sample_rate(1);
  int all = 0;
  for (int i = 0; i < 1000; i++) {
    palloc_sample_t *s = palloc_sample_alloc(1);
    all += s != NULL;
    palloc_sample_free(s, 1);
  }
  CHECK(all == 1000, "rate 1 sampled %d of 1000", all);
  palloc_set_sample_rate(0);
  int none = 0;
  for (int i = 0; i < 100000; i++) none += palloc_sample_alloc(1 << 20) != NULL;
  CHECK(none == 0, "rate 0 sampled %d", none);
  palloc_stats_t st;
  palloc_read_stats(&st);
  CHECK(st.sample_rate == 0, "stats rate %llu", (unsigned long long)st.sample_rate);
  CHECK(st.live_sampled_blocks == 0 && st.sampled_allocs == st.sampled_frees,
        "every sampled block was freed: live %llu", (unsigned long long)st.live_sampled_blocks);
  CHECK(st.buckets >= 3 && st.internal_bytes > 0, "buckets %llu internal %llu",
        (unsigned long long)st.buckets, (unsigned long long)st.internal_bytes);
  palloc_set_sample_rate(PALLOC_DEFAULT_SAMPLE_RATE);
}

/* palloc_charge is the fast path's whole test: it must agree with the countdown the slow paths
 * reason in (a sample is due once the countdown goes negative), at the boundary and beyond. */
static void test_budget(void) {
  palloc_thread_t *t = &palloc_thread;
  uint64_t saved = atomic_load(&t->budget);
  palloc_set_countdown(t, 100);
  CHECK(palloc_charge(100), "countdown 100 - 100 = 0 is not due");
  CHECK(palloc_countdown(t) == 0, "after the charge: countdown %lld", (long long)palloc_countdown(t));
  CHECK(!palloc_charge(1), "countdown 0 - 1 is due");
  CHECK(palloc_countdown(t) == -1, "charged countdown reads %lld, not -1", (long long)palloc_countdown(t));
  palloc_set_countdown(t, 100);
  CHECK(!palloc_charge(250), "countdown 100 - 250 is due");
  CHECK(palloc_countdown(t) == -150, "charged countdown reads %lld, not -150",
        (long long)palloc_countdown(t));
  palloc_set_countdown(t, -7);
  CHECK(!palloc_charge(0), "a negative countdown sends size 0 to the slow path");
  const size_t huge[] = {SIZE_MAX, (size_t)1 << 63, ((size_t)1 << 63) + 12345, SIZE_MAX - ((size_t)1 << 62)};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    palloc_set_countdown(t, 1000);
    CHECK(!palloc_charge(huge[i]), "size %zu took the fast path", huge[i]);
  }
  atomic_store(&t->budget, saved);

  /* End to end: after impossible requests, 4096-byte allocations at rate 4096 are still sampled
   * at 1 - e^-1 (a wrapped budget would leave this thread unsampled for good). */
  palloc_set_sample_rate(4096);
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    palloc_sample_t *s = palloc_sample_alloc(huge[i]);
    palloc_sample_free(s, huge[i]);
  }
  enum { N = 20000 };
  int sampled = 0;
  for (int i = 0; i < N; i++) {
    palloc_sample_t *s = palloc_sample_alloc(4096);
    sampled += s != NULL;
    palloc_sample_free(s, 4096);
  }
  double p = 1 - exp(-1.0), got = (double)sampled / N, se = sqrt(p * (1 - p) / N);
  CHECK(fabs(got - p) < 5 * se, "after huge sizes: sampled fraction %.4f, expected %.4f", got, p);
  palloc_set_sample_rate(1);
  sampled = 0;
  for (int i = 0; i < 100; i++) {
    palloc_sample_t *s = palloc_sample_alloc(0);
    sampled += s != NULL;
    palloc_sample_free(s, 0);
  }
  CHECK(sampled == 100, "rate 1 sampled %d of 100 zero-size allocations", sampled);
  palloc_set_sample_rate(PALLOC_DEFAULT_SAMPLE_RATE);
}

static void test_buckets(void) {
  uintptr_t a[3] = {0x401000, 0x402000, 0x403000}, b[3] = {0x401000, 0x402000, 0x403001};
  palloc_bucket_t *x = palloc_bucket_get(a, 3, 64);
  CHECK(x != NULL, "bucket made");
  CHECK(palloc_bucket_get(a, 3, 64) == x, "same key, same bucket");
  CHECK(palloc_bucket_get(a, 3, 65) != x, "other size class, other bucket");
  CHECK(palloc_bucket_get(a, 3, 63) == x, "same size class (57-64), same bucket");
  /* size classes: 8 per power of two, never smaller than the request, at most 1/8 above */
  CHECK(palloc_size_class(1) == 8 && palloc_size_class(64) == 64 && palloc_size_class(65) == 72,
        "small classes");
  CHECK(palloc_size_class(1000) == 1024 && palloc_size_class(1025) == 1152, "1 KiB classes");
  for (size_t n = 1; n < ((size_t)1 << 40); n = n * 3 / 2 + 1) {
    size_t c = palloc_size_class(n);
    CHECK(c >= n && (n <= 64 ? c - n < 8 : (c - n) * 8 <= n), "class %zu of %zu", c, n);
  }
  CHECK(palloc_size_class(SIZE_MAX) == SIZE_MAX, "no overflow");
  CHECK(palloc_bucket_get(b, 3, 64) != x, "other stack, other bucket");
  CHECK(palloc_bucket_get(a, 2, 64) != x, "shorter stack, other bucket");
  CHECK(palloc_bucket_hash(a, 3, 64) == palloc_bucket_hash(a, 3, 64), "hash is a function");
  /* spread: 64k distinct stacks over 256 bins, chi-square well under the 0.001 critical value */
  enum { BINS = 256, K = 65536 };
  static int count[BINS];
  for (int i = 0; i < K; i++) {
    uintptr_t s[4] = {0x400000 + (uintptr_t)i * 16, 0x500000, 0x600000 + (uintptr_t)(i % 7), 0};
    count[palloc_bucket_hash(s, 4, 32) % BINS]++;
  }
  double chi = 0, e = (double)K / BINS;
  for (int i = 0; i < BINS; i++) chi += (count[i] - e) * (count[i] - e) / e;
  CHECK(chi < 330, "chi-square %.1f over %d bins", chi, BINS);
  /* chains: distinct stacks spread as evenly; one stack's size classes take neighbouring chains
   * (consecutive ordinals: 8 classes per power of two), so its buckets share a page of heads */
  static int ccount[BINS];
  for (int i = 0; i < K; i++) {
    uintptr_t s[4] = {0x400000 + (uintptr_t)i * 16, 0x500000, 0x600000 + (uintptr_t)(i % 7), 0};
    ccount[palloc_bucket_chain(s, 4, palloc_size_class((size_t)(i % 5) * 100 + 8)) % BINS]++;
  }
  chi = 0;
  for (int i = 0; i < BINS; i++) chi += (ccount[i] - e) * (ccount[i] - e) / e;
  CHECK(chi < 330, "chain chi-square %.1f over %d bins", chi, BINS);
  size_t c8 = palloc_bucket_chain(a, 3, 8), prev = c8;
  int steps_ok = 1;
  for (size_t n = 9; n <= ((size_t)1 << 20); n++) {
    size_t c = palloc_bucket_chain(a, 3, palloc_size_class(n));
    if (c != prev && c != ((prev + 1) & 0xffff)) steps_ok = 0;
    prev = c;
  }
  CHECK(steps_ok && ((prev - c8) & 0xffff) == 8 + 14 * 8 - 1,
        "one stack's classes 8 B..1 MiB take %zu consecutive chains",
        (size_t)((prev - c8) & 0xffff) + 1);
  palloc_bucket_record_alloc(x, 64);
  palloc_bucket_record_alloc(x, 64);
  palloc_bucket_record_free(x, 64);
  palloc_bucket_counts_t c;
  palloc_bucket_read(x, &c);
  CHECK(c.allocs == 2 && c.alloc_bytes == 128 && c.frees == 1 && c.free_bytes == 64,
        "counters %llu %llu %llu %llu", (unsigned long long)c.allocs,
        (unsigned long long)c.alloc_bytes, (unsigned long long)c.frees,
        (unsigned long long)c.free_bytes);
}

static void test_parsing(void) {
  CHECK(palloc_parse_size("524288") == 524288, "plain");
  CHECK(palloc_parse_size("512KiB") == 524288, "KiB");
  CHECK(palloc_parse_size("512K") == 524288, "K");
  CHECK(palloc_parse_size("1MiB") == 1048576, "MiB");
  /* Go's spelling since the one options table: "kb" (a decimal unit elsewhere) and a space
   * inside are refused; tests/alloc/test_options.c has the whole list. */
  CHECK(palloc_parse_size("4 kb") == -1 && palloc_parse_size("4kb") == -1, "kb, a space");
  CHECK(palloc_parse_size("2GiB") == 2147483648ll, "GiB");
  CHECK(palloc_parse_size("0") == 0, "zero");
  CHECK(palloc_parse_size("") == -1 && palloc_parse_size("abc") == -1, "garbage");
  CHECK(palloc_parse_size("12XB") == -1 && palloc_parse_size("-5") == -1, "bad suffix, sign");
  CHECK(palloc_parse_size("99999999999999999999") == -1, "overflow");
  CHECK(palloc_parse_size("9999999999TiB") == -1, "overflow with unit");
  CHECK(palloc_parse_signal("USR2") == SIGUSR2 && palloc_parse_signal("SIGUSR1") == SIGUSR1,
        "signal names");
  CHECK(palloc_parse_signal("12") == 12 && palloc_parse_signal("hup") == SIGHUP, "numbers, case");
  CHECK(palloc_parse_signal("NOPE") == -1 && palloc_parse_signal("999") == -1, "bad signals");
  CHECK(palloc_parse_signal("RTMIN+2") == SIGRTMIN + 2, "realtime");
  CHECK(palloc_parse_size(" 512") == -1 && palloc_parse_size("512 ") == -1 &&
        palloc_parse_size("+512") == -1, "leading or trailing space, sign");
  CHECK(palloc_parse_signal("KILL") == SIGKILL && palloc_parse_signal("SIGSEGV") == SIGSEGV,
        "signals that cannot be used are still names");
  CHECK(palloc_parse_signal(" 10") == -1 && palloc_parse_signal("+10") == -1 &&
        palloc_parse_signal("RTMIN+2x") == -1 && palloc_parse_signal("RTMINx") == -1,
        "no space, sign or trailing garbage");
}

/* The registry of sampled blocks: entries found exactly once with their bucket and size after
 * inserts and deletions in any order (many share a stripe and probe runs, so backward-shift
 * deletion and growth are exercised), page counts back to zero, and four threads at once. The
 * addresses are made up (the registry never touches the blocks) and lie in pages no real
 * allocation uses. */
enum { REG_N = 50000, REG_THREADS = 4 };
static uintptr_t reg_addr(int t, int i) { return ((uintptr_t)0x6d0000 + (uintptr_t)t) << 24 | (uintptr_t)i * 48; }
static palloc_bucket_t *reg_bucket(int i) { return (palloc_bucket_t *)(uintptr_t)(0x1000 + (uintptr_t)i * 16); }
static _Atomic int reg_errors;

static void *reg_worker(void *arg) {
  int t = (int)(intptr_t)arg;
  uint64_t r = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
  static int order[REG_THREADS][REG_N];
  for (int i = 0; i < REG_N; i++) {
    order[t][i] = i;
    if (!palloc_registry_add((void *)reg_addr(t, i), reg_bucket(i), (size_t)i + 1))
      atomic_fetch_add(&reg_errors, 1);
  }
  for (int i = REG_N - 1; i > 0; i--) { /* Fisher-Yates */
    r ^= r >> 12; r ^= r << 25; r ^= r >> 27;
    int j = (int)((r * 0x2545f4914f6cdd1dull) % (uint64_t)(i + 1)), x = order[t][i];
    order[t][i] = order[t][j];
    order[t][j] = x;
  }
  for (int k = 0; k < REG_N; k++) {
    int i = order[t][k];
    palloc_bucket_t *b = NULL;
    size_t size = 0;
    if (!palloc_registry_take((void *)reg_addr(t, i), &b, &size) || b != reg_bucket(i) ||
        size != (size_t)i + 1)
      atomic_fetch_add(&reg_errors, 1);
    if (palloc_registry_take((void *)reg_addr(t, i), &b, &size)) atomic_fetch_add(&reg_errors, 1);
    /* the rest of this thread's entries are still there */
    if (k + 1 < REG_N && k % 997 == 0 &&
        !palloc_maybe_sampled((void *)reg_addr(t, order[t][REG_N - 1])))
      atomic_fetch_add(&reg_errors, 1);
  }
  return NULL;
}

static void test_registry(void) {
  palloc_init();
  CHECK(!palloc_maybe_sampled((void *)reg_addr(0, 7)), "unregistered page: count 0");
  CHECK(!palloc_registry_take((void *)reg_addr(0, 7), &(palloc_bucket_t *){NULL}, &(size_t){0}),
        "unregistered address not found");
  uint64_t before = palloc_registry_bytes();
  pthread_t th[REG_THREADS];
  for (int t = 0; t < REG_THREADS; t++) pthread_create(&th[t], NULL, reg_worker, (void *)(intptr_t)t);
  for (int t = 0; t < REG_THREADS; t++) pthread_join(th[t], NULL);
  CHECK(atomic_load(&reg_errors) == 0, "registry: %d wrong answers over %d entries",
        atomic_load(&reg_errors), REG_N * REG_THREADS);
  CHECK(palloc_registry_bytes() > before, "tables grew past their first slots");
  int nonzero = 0;
  for (int t = 0; t < REG_THREADS; t++)
    for (int i = 0; i < REG_N; i += 85) nonzero += palloc_maybe_sampled((void *)reg_addr(t, i));
  CHECK(nonzero == 0, "page counts back to zero (%d pages still counted)", nonzero);
}

int main(void) {
  test_intervals();
  test_intervals_law();
  test_weight();
  test_probability();
  test_budget();
  test_buckets();
  test_parsing();
  test_registry();
  return CHECK_DONE();
}
