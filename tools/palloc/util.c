/* util.c - allocation that cannot fail silently, and the usage-error convention.
 *
 * The tool is short-lived and reads one or two profiles: running out of memory is reported in
 * one line and exits 1 rather than being threaded through every function.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static void *oom(size_t n) {
  fprintf(stderr, "palloc: out of memory (%zu bytes)\n", n);
  exit(EXIT_CHECK);
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  return p ? p : oom(n * m);
}

void *xrealloc(void *q, size_t n) {
  void *p = realloc(q, n ? n : 1);
  return p ? p : oom(n);
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

int usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "palloc %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see 'palloc %s --help')\n", cmd);
  return EXIT_USAGE;
}

bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) return false;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return true;
  }
  return false;
}
