/* trace_parse.h - two independent readers of gctrace lines, for the tests.
 *
 * trace_strict: the strict pattern of docs/gctrace.md, translated to POSIX ERE (\d -> [0-9],
 * (?:...) -> (...)); it accepts exactly what Go's runtime prints, both shapes.
 * trace_parse: a field extractor shaped like the third-party tebeka/gctrace parser (retyped from
 * the documented facts, not copied): loose [0-9.]+ numbers, one capture per field, 1.18+ shape;
 * with legacy = 1 the pre-1.18 shape that davecheney/gcvis reads.
 */
#ifndef GCSIM_TRACE_PARSE_H
#define GCSIM_TRACE_PARSE_H
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TP_N "[0-9]+(\\.[0-9]+)?"
static const char trace_strict_re[] =
  "^gc ([0-9]+) @([0-9]+\\.[0-9]{3})s ([0-9]+)%: (" TP_N ")\\+(" TP_N ")\\+(" TP_N ") ms clock, "
  "(" TP_N ")\\+(" TP_N ")/(" TP_N ")/(" TP_N ")\\+(" TP_N ") ms cpu, "
  "([0-9]+)->([0-9]+)->([0-9]+) MB, ([0-9]+) MB goal, (([0-9]+) MB stacks, ([0-9]+) MB globals, )?"
  "([0-9]+) P( \\(forced\\))?$";

#define TP_F "([0-9.]+)"
static const char trace_tebeka_re[] =
  "gc ([0-9]+) @" TP_F "s ([0-9]+)%: " TP_F "\\+" TP_F "\\+" TP_F " ms clock, " TP_F "\\+" TP_F
  "/" TP_F "/" TP_F "\\+" TP_F " ms cpu, ([0-9]+)->([0-9]+)->([0-9]+) MB, ([0-9]+) MB goal, "
  "([0-9]+) MB stacks, ([0-9]+) MB globals, ([0-9]+) P";
static const char trace_gcvis_re[] =
  "gc ([0-9]+) @" TP_F "s ([0-9]+)%: " TP_F "\\+" TP_F "\\+" TP_F " ms clock, " TP_F "\\+" TP_F
  "/" TP_F "/" TP_F "\\+" TP_F " ms cpu, ([0-9]+)->([0-9]+)->([0-9]+) MB, ([0-9]+) MB goal, "
  "([0-9]+) P";

typedef struct trace_line_s {
  unsigned long n, pct, heap0, heap1, marked, goal, stacks, globals, procs;
  double at, clock[3], cpu[5];
  int forced;
} trace_line_t;

static regex_t *tp_compile(const char *re, regex_t *slot, int *ready) {
  if (!*ready) {
    if (regcomp(slot, re, REG_EXTENDED) != 0) {
      fprintf(stderr, "bad regex %s\n", re);
      abort();
    }
    *ready = 1;
  }
  return slot;
}

static int trace_strict(const char *line) {
  static regex_t r;
  static int ready;
  return regexec(tp_compile(trace_strict_re, &r, &ready), line, 0, NULL, 0) == 0;
}

/* 1 if the line parses; fields filled. */
static int trace_parse(const char *line, trace_line_t *t, int legacy) {
  static regex_t r[2];
  static int ready[2];
  regmatch_t m[20];
  regex_t *re = tp_compile(legacy ? trace_gcvis_re : trace_tebeka_re, &r[legacy], &ready[legacy]);
  if (regexec(re, line, 20, m, 0) != 0) return 0;
  double v[20];
  int groups = legacy ? 16 : 18;
  for (int i = 1; i <= groups; i++) v[i] = strtod(line + m[i].rm_so, NULL);
  memset(t, 0, sizeof *t);
  t->n = (unsigned long)v[1];
  t->at = v[2];
  t->pct = (unsigned long)v[3];
  for (int i = 0; i < 3; i++) t->clock[i] = v[4 + i];
  for (int i = 0; i < 5; i++) t->cpu[i] = v[7 + i];
  t->heap0 = (unsigned long)v[12], t->heap1 = (unsigned long)v[13], t->marked = (unsigned long)v[14];
  t->goal = (unsigned long)v[15];
  if (legacy) {
    t->procs = (unsigned long)v[16];
  } else {
    t->stacks = (unsigned long)v[16], t->globals = (unsigned long)v[17];
    t->procs = (unsigned long)v[18];
  }
  t->forced = strstr(line, " (forced)") != NULL;
  return 1;
}

/* Reads the lines written so far to fd (a regular file) from the start; returns the count. */
static int trace_read_lines(int fd, char lines[][256], int max) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd); /* an independent offset */
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  int n = 0;
  while (n < max && fgets(lines[n], 256, f) != NULL) {
    lines[n][strcspn(lines[n], "\n")] = 0;
    n++;
  }
  fclose(f);
  return n;
}
#endif
