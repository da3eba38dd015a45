/* test_format.c - gctrace lines byte for byte.
 *
 * fmtNSAsMS against the documented examples; the documented example line rebuilt from its
 * values, in both shapes; the strict pattern accepting it and rejecting near misses; two
 * third-party-style parsers (tebeka/gctrace for 1.18+, gcvis for legacy; trace_parse.h) reading
 * back exactly the values printed; and every line a real arena prints (forced and paced cycles,
 * both shapes, through PALLOC_TRACE/PALLOC_TRACE_FILE too) passing all of them.
 * With "emit FILE" it only writes real lines to FILE, for check_gctrace.py (the doc's regex,
 * verbatim, in Python's re).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../check.h"
#include "gcinternal.h"
#include "options.h"
#include "trace_parse.h"

static void test_ns_as_ms(void) {
  static const struct { uint64_t ns; const char *s; } cases[] = {
    {0, "0"}, {999, "0"}, {1000, "0.001"}, {12345, "0.012"}, {100000, "0.10"},
    {1000000, "1.0"}, {1234567, "1.2"}, {9999999, "9.9"}, {10000000, "10"},
    {123456789, "123"}, {99999, "0.099"}, {190000, "0.19"}, {41000, "0.041"},
    {2500000, "2.5"}, {29000000, "29"}, {3600000000000ull, "3600000"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[32];
    size_t n = palloc_fmt_ns_as_ms(buf, cases[i].ns);
    buf[n] = 0;
    CHECK(strcmp(buf, cases[i].s) == 0, "fmtNSAsMS(%llu) = %s, want %s",
          (unsigned long long)cases[i].ns, buf, cases[i].s);
  }
}

static const char doc_line[] =
  "gc 7 @3.812s 4%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, "
  "44 MB goal, 0 MB stacks, 0 MB globals, 8 P";
static const char doc_legacy[] =
  "gc 7 @3.812s 4%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, "
  "44 MB goal, 8 P";

static void test_doc_line(void) {
  const uint64_t M = 1 << 20;
  palloc_gctrace_cycle_t c = {
    .n = 7, .start_ns = 3812999999, .cpu_fraction = 0.0499,
    .clock = {190999, 2599999, 41999}, .cpu = {1599999, 4199999, 11999999, 29999999, 339999},
    .heap0 = 42 * M + M - 1, .heap1 = 43 * M, .marked = 22 * M + 5, .goal = 44 * M + M / 2,
    .stacks = M - 1, .globals = 4096, .procs = 8, .forced = false,
  };
  char buf[256];
  size_t n = palloc_gctrace_format(buf, &c, false);
  CHECK(n > 0 && buf[n - 1] == '\n', "newline");
  buf[n - 1] = 0;
  CHECK(strcmp(buf, doc_line) == 0, "\n got  %s\n want %s", buf, doc_line);
  n = palloc_gctrace_format(buf, &c, true);
  buf[n - 1] = 0;
  CHECK(strcmp(buf, doc_legacy) == 0, "\n got  %s\n want %s", buf, doc_legacy);
  c.forced = true;
  n = palloc_gctrace_format(buf, &c, false);
  buf[n - 1] = 0;
  CHECK(n > 9 && strcmp(buf + strlen(doc_line), " (forced)") == 0 &&
        strncmp(buf, doc_line, strlen(doc_line)) == 0, "forced: %s", buf);

  CHECK(trace_strict(doc_line) && trace_strict(doc_legacy) && trace_strict(buf), "strict accepts");
  static const char *bad[] = {
    "gc 7 @3.81s 4%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 8 P",
    "gc 7 @3.812s 4.5%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 8 P",
    "gc 7 @3.812s 4%: 0.19+2.5 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 8 P",
    "gc 7 @3.812s 4%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 0 MB stacks, 8 P",
    "gc 7 @3.812s 4%: 0.19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 8 P (forced) ",
    "gc 7 @3.812s 4%: .19+2.5+0.041 ms clock, 1.5+4.1/11/29+0.33 ms cpu, 42->43->22 MB, 44 MB goal, 8 P",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(!trace_strict(bad[i]), "strict pattern accepted a near miss: %s", bad[i]);

  trace_line_t t;
  CHECK(trace_parse(doc_line, &t, 0), "tebeka-style parse");
  CHECK(t.n == 7 && t.at == 3.812 && t.pct == 4 && t.clock[0] == 0.19 && t.clock[1] == 2.5 &&
        t.clock[2] == 0.041 && t.cpu[0] == 1.5 && t.cpu[1] == 4.1 && t.cpu[2] == 11 &&
        t.cpu[3] == 29 && t.cpu[4] == 0.33 && t.heap0 == 42 && t.heap1 == 43 && t.marked == 22 &&
        t.goal == 44 && t.stacks == 0 && t.globals == 0 && t.procs == 8 && !t.forced,
        "tebeka-style fields");
  CHECK(!trace_parse(doc_legacy, &t, 0), "the 1.18+ parser needs stacks/globals");
  CHECK(trace_parse(doc_legacy, &t, 1) && t.goal == 44 && t.procs == 8, "gcvis-style parse");
}

typedef struct n { struct n *l, *r; int i, j; } node_t;
static node_t *tree(palloc_gc_t *g, int d) {
  if (d == 0) return NULL;
  node_t *x = palloc_gc_malloc(g, sizeof *x);
  x->l = tree(g, d - 1);
  x->r = tree(g, d - 1);
  return x;
}

/* Real cycles: paced (GOGC=50, so several) and forced; returns the arena's cycle count. */
static uint64_t workload(palloc_gc_t *g) {
  void **root = calloc(1, sizeof *root);
  palloc_gc_add_root(g, root, sizeof *root);
  root[0] = tree(g, 16);
  for (int i = 0; i < 40; i++) tree(g, 14);
  palloc_gc_collect(g);
  for (int i = 0; i < 20; i++) palloc_gc_malloc_atomic(g, 1 << 20);
  palloc_gc_collect(g);
  palloc_gc_stats_t s;
  palloc_gc_read_stats(g, &s);
  palloc_gc_remove_root(g, root);
  free(root);
  return s.num_gc;
}

static void check_lines(int fd, uint64_t cycles, int legacy) {
  char lines[256][256];
  int n = trace_read_lines(fd, lines, 256);
  CHECK((uint64_t)n == cycles && n >= 5, "%d lines for %llu cycles", n, (unsigned long long)cycles);
  int forced = 0;
  for (int i = 0; i < n; i++) {
    trace_line_t t;
    CHECK(trace_strict(lines[i]), "strict: %s", lines[i]);
    CHECK(trace_parse(lines[i], &t, legacy), "parser (legacy %d): %s", legacy, lines[i]);
    CHECK(legacy || !trace_parse(lines[i], &t, 1) || strstr(lines[i], "stacks") != NULL,
          "shape: %s", lines[i]);
    CHECK(t.n == (unsigned long)i + 1 && t.procs == 1 && t.heap0 == t.heap1 && t.marked <= t.heap1,
          "fields: %s", lines[i]);
    CHECK(t.cpu[1] == 0 && t.cpu[3] == 0, "no assist or idle workers: %s", lines[i]);
    forced += t.forced;
  }
  CHECK(forced == 2, "%d forced lines", forced);
}

static palloc_gc_t *make(int trace, int fd) {
  palloc_gc_options_t o;
  palloc_gc_options_init(&o);
  o.gogc = 50;
  o.memory_limit = PALLOC_GC_NO_LIMIT;
  o.trace = trace;
  o.trace_fd = fd;
  return palloc_gc_create(&o);
}

static void test_real_lines(void) {
  for (int legacy = 0; legacy < 2; legacy++) {
    char path[] = "/tmp/gcsim-format-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    palloc_gc_t *g = make(legacy ? PALLOC_TRACE_LEGACY : PALLOC_TRACE_ON, fd);
    uint64_t cycles = workload(g);
    check_lines(fd, cycles, legacy);
    palloc_gc_destroy(g);
    close(fd);
  }
}

/* Run with PALLOC_TRACE=legacy and PALLOC_TRACE_FILE=<pattern with %p> (meson.build): an arena
 * that takes its settings from the environment traces there. */
static void test_env(const char *pattern) {
  char real[4096];
  const char *p = strstr(pattern, "%p");
  CHECK(p != NULL, "no %%p in %s", pattern);
  if (p == NULL) return;
  snprintf(real, sizeof real, "%.*s%d%s", (int)(p - pattern), pattern, (int)getpid(), p + 2);
  palloc_gc_t *g = make(PALLOC_GC_FROM_ENV, -1);
  uint64_t cycles = workload(g);
  palloc_gc_destroy(g);
  int rfd = open(real, O_RDONLY);
  CHECK(rfd >= 0, "PALLOC_TRACE_FILE %s not written", real);
  if (rfd >= 0) check_lines(rfd, cycles, 1);
  close(rfd);
  unlink(real);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "emit") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int legacy = 0; legacy < 2; legacy++) {
      palloc_gc_t *g = make(legacy ? PALLOC_TRACE_LEGACY : PALLOC_TRACE_ON, fd);
      workload(g);
      palloc_gc_destroy(g);
    }
    return close(fd);
  }
  if (argc == 3 && strcmp(argv[1], "env") == 0) {
    test_env(argv[2]);
    return CHECK_DONE();
  }
  test_ns_as_ms();
  test_doc_line();
  test_real_lines();
  return CHECK_DONE();
}
