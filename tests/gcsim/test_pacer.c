/* test_pacer.c - the arena collects when and as the pacer formulas say.
 *
 * The expected goals are computed here from the documented formulas (not with pacer.c):
 *   goal = L + (L + stacks + globals) * GOGC/100, at least 4 MiB * GOGC/100;
 *   with a limit: at most limit - nonheap - max(3% of (limit - nonheap), 1 MiB);
 * and checked against NextGC after every cycle and against the goal column of the printed lines
 * (floored MiB). Also: the heap minimum, a memory limit keeping the heap under it while the live
 * data fits, GOGC=off never collecting unless forced, the environment syntax, the CPU limiter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../check.h"
#include "gcinternal.h"
#include "options.h"
#include "trace_parse.h"

#define MiB ((uint64_t)1 << 20)

static int tmpfd(void) {
  char path[] = "/tmp/gcsim-pacer-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) abort();
  unlink(path);
  return fd;
}

static palloc_gc_t *make(int gogc, int64_t limit, int fd) {
  palloc_gc_options_t o;
  palloc_gc_options_init(&o);
  o.gogc = gogc;
  o.memory_limit = limit;
  o.scan_data = 0;
  o.trace = 1;
  o.trace_fd = fd;
  palloc_gc_t *g = palloc_gc_create(&o);
  if (g == NULL) abort();
  return g;
}

static palloc_gc_stats_t stats(palloc_gc_t *g) {
  palloc_gc_stats_t s;
  palloc_gc_read_stats(g, &s);
  return s;
}

static uint64_t expect_goal(int gogc, uint64_t live, uint64_t stacks, uint64_t globals) {
  uint64_t goal = live + (live + stacks + globals) * (uint64_t)gogc / 100;
  uint64_t minimum = 4 * MiB * (uint64_t)gogc / 100;
  return goal > minimum ? goal : minimum;
}

/* Allocates garbage (atomic 8 KiB objects) until `cycles` more collections have run, checking
 * NextGC after each one; returns the number of mismatches. max_bytes bounds the work. */
static int churn_until(palloc_gc_t *g, uint64_t cycles, uint64_t max_bytes, int gogc) {
  int bad = 0;
  uint64_t start = stats(g).num_gc, done = 0, seen = start;
  while (stats(g).num_gc < start + cycles && done < max_bytes) {
    palloc_gc_malloc_atomic(g, 8192);
    done += 8192;
    palloc_gc_stats_t s = stats(g);
    if (s.num_gc != seen && gogc >= 0 && s.memory_limit == INT64_MAX) {
      seen = s.num_gc;
      uint64_t want = expect_goal(gogc, s.heap_marked, s.stack_scanned, s.globals_scanned);
      if (s.next_gc != want) {
        bad++;
        fprintf(stderr, "NextGC %llu, formula %llu\n", (unsigned long long)s.next_gc,
                (unsigned long long)want);
      }
    }
  }
  return bad;
}

static void test_formula_pure(void) {
  /* the GC guide's example: 8 MiB live, 1 MiB stacks, 1 MiB globals, GOGC=100 -> 18 MiB */
  CHECK(palloc_pacer_goal(100, INT64_MAX, 8 * MiB, MiB, MiB, 0) == 18 * MiB, "guide example");
  CHECK(palloc_pacer_goal(100, INT64_MAX, MiB, 0, 0, 0) == 4 * MiB, "heap minimum");
  CHECK(palloc_pacer_goal(50, INT64_MAX, 0, 0, 0, 0) == 2 * MiB, "heap minimum at GOGC=50");
  CHECK(palloc_pacer_goal(0, INT64_MAX, 5 * MiB, 0, 0, 0) == 5 * MiB, "GOGC=0: goal = live");
  CHECK(palloc_pacer_goal(-1, INT64_MAX, 5 * MiB, 0, 0, 0) == UINT64_MAX, "GOGC=off: no goal");
  uint64_t room = 100 * MiB - 2 * MiB;
  CHECK(palloc_pacer_goal(-1, 100 * MiB, 5 * MiB, 0, 0, 2 * MiB) == room - room / 100 * 3,
        "GOGC=off with a limit: limit - nonheap - 3%%");
  CHECK(palloc_pacer_goal(-1, 10 * MiB, 2 * MiB, 0, 0, 0) == 9 * MiB, "1 MiB minimum headroom");
  CHECK(palloc_pacer_goal(100, 10 * MiB, 2 * MiB, 0, 0, 0) == 4 * MiB, "GOGC goal under the limit");
  CHECK(palloc_pacer_goal(100, 10 * MiB, 20 * MiB, 0, 0, 0) == 20 * MiB, "never below live");
  /* the syntax is alloc/options.c's (tests/alloc/test_options.c has the rest) */
  int64_t g, l;
#define GOGC(s) (palloc_option_parse(PALLOC_OPT_GOGC, s, &g) == PALLOC_OPT_OK)
#define LIMIT(s) (palloc_option_parse(PALLOC_OPT_MEMLIMIT, s, &l) == PALLOC_OPT_OK)
  CHECK(GOGC("off") && g == -1 && GOGC("OFF") && g == -1, "GOGC=off");
  CHECK(GOGC("150") && g == 150, "GOGC=150");
  CHECK(GOGC("-5") && g == -1, "negative GOGC is off");
  CHECK(!GOGC("12x") && !GOGC("") && !GOGC("+5") && !GOGC(" 5"), "bad GOGC");
  CHECK(LIMIT("1GiB") && l == (int64_t)1 << 30, "1GiB");
  CHECK(LIMIT("512MiB") && l == (int64_t)512 << 20, "512MiB");
  CHECK(LIMIT("3TiB") && l == (int64_t)3 << 40, "3TiB");
  CHECK(LIMIT("4096") && l == 4096, "plain bytes");
  CHECK(LIMIT("77B") && l == 77, "B suffix");
  CHECK(LIMIT("2KiB") && l == 2048, "KiB");
  CHECK(LIMIT("off") && l == INT64_MAX, "off");
  CHECK(LIMIT("512M") && l == (int64_t)512 << 20, "palloc also takes K, M, G, T");
  CHECK(!LIMIT("1GB") && !LIMIT("1 MiB") && !LIMIT("-1") && !LIMIT("MiB") && !LIMIT("1mib"),
        "Go rejects GB, spaces, signs, units in another case");
#undef GOGC
#undef LIMIT
  palloc_limiter_t lim;
  palloc_limiter_init(&lim, 1);
  palloc_limiter_account(&lim, 600000000, 500000000);
  CHECK(!palloc_limiter_full(&lim), "55%% GC for a second does not fill the bucket");
  palloc_limiter_account(&lim, 1000000000, 0);
  CHECK(palloc_limiter_full(&lim), "a second more of pure GC fills it");
  palloc_limiter_account(&lim, 0, 10000000);
  CHECK(palloc_limiter_full(&lim), "the 100 ms over the capacity are owed: 10 ms do not drain it");
  palloc_limiter_account(&lim, 0, 90000000);
  CHECK(palloc_limiter_full(&lim), "100 ms of mutator time bring it back to the capacity");
  palloc_limiter_account(&lim, 0, 1000000);
  CHECK(!palloc_limiter_full(&lim), "mutator time drains it");
  /* back-to-back 10 ms cycles against 1 ms of mutator time between them: once full, the
   * limiter lets one cycle through per 10 ms of mutator time (50%), not one per check */
  palloc_limiter_init(&lim, 1);
  int64_t gc = 0, mut = 0;
  for (int i = 0; i < 10000; i++) {
    palloc_limiter_account(&lim, 0, 1000000);
    mut += 1000000;
    if (palloc_limiter_full(&lim)) continue;
    palloc_limiter_account(&lim, 10000000, 0);
    gc += 10000000;
  }
  CHECK(gc <= mut + 1000000000 + 10000000 && gc >= mut + 1000000000 - 20000000,
        "limiter: %lld ms of GC for %lld ms of mutator (want mutator + 1 s, one cycle either way)",
        (long long)(gc / 1000000), (long long)(mut / 1000000));
}

/* A fixed live heap L held by a root; GOGC g; the goals printed are L + L*g/100 (floored). */
static void test_goal_lines(int gogc) {
  int fd = tmpfd();
  palloc_gc_t *g = make(PALLOC_GC_OFF, PALLOC_GC_NO_LIMIT, fd); /* no cycle while building */
  const size_t nlive = 2560; /* 2560 x 8 KiB = 20 MiB */
  void **root = calloc(nlive, sizeof *root);
  palloc_gc_add_root(g, root, nlive * sizeof *root);
  for (size_t i = 0; i < nlive; i++) root[i] = palloc_gc_malloc_atomic(g, 8192);
  palloc_gc_collect(g);
  CHECK(palloc_gc_set_gogc(g, gogc) == -1, "SetGCPercent returns the previous value");
  palloc_gc_stats_t s = stats(g);
  uint64_t L = 20 * MiB;
  CHECK(s.heap_marked == L, "marked %llu, live %llu", (unsigned long long)s.heap_marked,
        (unsigned long long)L);
  CHECK(s.next_gc == expect_goal(gogc, s.heap_marked, s.stack_scanned, s.globals_scanned),
        "NextGC after the forced cycle");
  int bad = churn_until(g, 6, 4096 * MiB, gogc);
  CHECK(bad == 0, "GOGC=%d: %d NextGC mismatches", gogc, bad);
  char lines[64][256];
  int n = trace_read_lines(fd, lines, 64);
  CHECK(n == 7, "GOGC=%d: %d lines", gogc, n);
  uint64_t want = (L + L * (uint64_t)gogc / 100) >> 20;
  for (int i = 0; i < n; i++) {
    trace_line_t t;
    CHECK(trace_strict(lines[i]), "strict pattern: %s", lines[i]);
    CHECK(trace_parse(lines[i], &t, 0), "parse: %s", lines[i]);
    CHECK(t.n == (unsigned long)i + 1, "cycle number: %s", lines[i]);
    CHECK(t.forced == (i == 0), "forced suffix: %s", lines[i]);
    if (i == 0) continue;
    /* stacks are a few KiB and globals 0 here: within the MiB flooring of the goal */
    CHECK(t.goal == want || t.goal == want + 1, "GOGC=%d goal %lu MB, want %llu: %s", gogc,
          t.goal, (unsigned long long)want, lines[i]);
    CHECK(t.marked == L >> 20, "marked %lu MB: %s", t.marked, lines[i]);
    CHECK(t.heap0 >= t.goal && t.heap0 <= t.goal + 1, "collects at the goal: %s", lines[i]);
  }
  free(root);
  palloc_gc_destroy(g);
  close(fd);
}

static void test_minimum(int gogc) {
  int fd = tmpfd();
  palloc_gc_t *g = make(gogc, PALLOC_GC_NO_LIMIT, fd);
  churn_until(g, 5, 1024 * MiB, gogc);
  char lines[16][256];
  int n = trace_read_lines(fd, lines, 16);
  CHECK(n == 5, "%d lines", n);
  for (int i = 0; i < n; i++) {
    trace_line_t t;
    CHECK(trace_parse(lines[i], &t, 0) && t.goal == 4 * (unsigned long)gogc / 100,
          "GOGC=%d minimum heap goal: %s", gogc, lines[i]);
  }
  palloc_gc_destroy(g);
  close(fd);
}

/* With a limit, the heap stays under it while the live data fits. */
static void test_limit(int gogc, uint64_t limit, size_t nlive) {
  int fd = tmpfd();
  palloc_gc_t *g = make(gogc, (int64_t)limit, fd);
  void **root = calloc(nlive, sizeof *root);
  palloc_gc_add_root(g, root, nlive * sizeof *root);
  for (size_t i = 0; i < nlive; i++) root[i] = palloc_gc_malloc_atomic(g, 8192);
  uint64_t max_alloc = 0;
  for (int i = 0; i < 40000; i++) { /* 312 MiB of garbage */
    palloc_gc_malloc_atomic(g, 8192);
    uint64_t h = stats(g).heap_alloc;
    if (h > max_alloc) max_alloc = h;
  }
  palloc_gc_stats_t s = stats(g);
  CHECK(s.num_gc >= 5, "limit %llu MiB: only %llu cycles", (unsigned long long)(limit >> 20),
        (unsigned long long)s.num_gc);
  CHECK(max_alloc <= limit, "heap %llu over the limit %llu", (unsigned long long)max_alloc,
        (unsigned long long)limit);
  CHECK(s.heap_sys <= limit + 4 * MiB, "HeapSys %llu, limit %llu", (unsigned long long)s.heap_sys,
        (unsigned long long)limit);
  char lines[256][256];
  int n = trace_read_lines(fd, lines, 256);
  for (int i = 0; i < n; i++) {
    trace_line_t t;
    CHECK(trace_parse(lines[i], &t, 0) && t.heap0 <= limit >> 20 && t.goal < limit >> 20,
          "limit line: %s", lines[i]);
  }
  free(root);
  palloc_gc_destroy(g);
  close(fd);
}

static void test_off(void) {
  int fd = tmpfd();
  palloc_gc_t *g = make(PALLOC_GC_OFF, PALLOC_GC_NO_LIMIT, fd);
  for (int i = 0; i < 16384; i++) palloc_gc_malloc_atomic(g, 8192); /* 128 MiB */
  palloc_gc_stats_t s = stats(g);
  CHECK(s.num_gc == 0, "GOGC=off collected %llu times", (unsigned long long)s.num_gc);
  CHECK(s.next_gc == UINT64_MAX && s.heap_alloc == 128 * MiB, "no goal, heap %llu",
        (unsigned long long)s.heap_alloc);
  palloc_gc_collect(g);
  s = stats(g);
  CHECK(s.num_gc == 1 && s.num_forced_gc == 1 && s.heap_alloc < MiB, "forced collection");
  char lines[4][256];
  int n = trace_read_lines(fd, lines, 4);
  CHECK(n == 1 && trace_strict(lines[0]) && strstr(lines[0], " (forced)") != NULL &&
        strstr(lines[0], "128->128->0 MB") != NULL,
        "forced line: %s", n ? lines[0] : "(none)");
  /* setting GOGC at run time, as debug.SetGCPercent */
  CHECK(palloc_gc_set_gogc(g, 50) == -1, "previous GOGC");
  CHECK(stats(g).next_gc == 2 * MiB, "goal after SetGCPercent(50): %llu",
        (unsigned long long)stats(g).next_gc);
  CHECK(palloc_gc_set_memory_limit(g, -1) == INT64_MAX, "reading the limit");
  CHECK(palloc_gc_set_memory_limit(g, (int64_t)64 << 20) == INT64_MAX && stats(g).memory_limit == 64 << 20,
        "setting the limit");
  palloc_gc_destroy(g);
  close(fd);
}

/* Run with PALLOC_GOGC=25 PALLOC_MEMLIMIT=1GiB (tests/gcsim/meson.build): the values read at
 * start-up are every arena's, and a later setenv changes nothing (Go reads GOGC once too). */
static void test_env(void) {
  setenv("PALLOC_GOGC", "7", 1);
  palloc_gc_t *g = palloc_gc_create(NULL);
  palloc_gc_stats_t s = stats(g);
  CHECK(s.gogc == 25 && s.memory_limit == (int64_t)1 << 30, "env: GOGC %d limit %lld", s.gogc,
        (long long)s.memory_limit);
  CHECK(s.next_gc == MiB, "env goal %llu", (unsigned long long)s.next_gc);
  palloc_gc_destroy(g);
}

/* Run with PALLOC_GOGC=off PALLOC_MEMLIMIT=off. */
static void test_env_off(void) {
  palloc_gc_t *g = palloc_gc_create(NULL);
  palloc_gc_stats_t s = stats(g);
  CHECK(s.gogc == -1 && s.memory_limit == INT64_MAX && s.next_gc == UINT64_MAX, "env off");
  palloc_gc_destroy(g);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "env") == 0) {
    test_env();
    return CHECK_DONE();
  }
  if (argc == 2 && strcmp(argv[1], "env-off") == 0) {
    test_env_off();
    return CHECK_DONE();
  }
  test_formula_pure();
  test_goal_lines(100);
  test_goal_lines(50);
  test_goal_lines(200);
  test_minimum(100);
  test_minimum(50);
  test_limit(100, 40 * MiB, 3072);          /* GOGC goal 48 MiB > limit: the limit rules */
  test_limit(PALLOC_GC_OFF, 64 * MiB, 2048); /* GOGC=off + limit: grows to it, then collects */
  test_off();
  return CHECK_DONE();
}
