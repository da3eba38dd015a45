// Corpus: the basic escape rules (returns, globals, stores through pointers, integer casts,
// sizes). Each line with verdicts carries an ERROR annotation listing one regex per verdict;
// every other line must have none.
// A trailing SAFE marks an allocation that truly never escapes but that the tool, being
// conservative, reports as escaping (it counts against recall, never against soundness).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *g;
static char *s_cache;
__thread char *t_slot;
struct node { struct node *next; char *data; };

int local_only(void) {
  int *a = malloc(16 * sizeof(int)); // ERROR "malloc\(16 \* sizeof\(int\)\) does not escape"
  memset(a, 0, 16 * sizeof(int));
  int s = a[3];
  free(a);
  return s;
}

char *returned(void) {
  char *p = malloc(32); // ERROR "malloc\(32\) escapes to heap: returned"
  return p;
}

char *returned_derived(int k) {
  char *p = malloc(32); // ERROR "malloc\(32\) escapes to heap: returned"
  char *q = p + 4;
  return k ? q : NULL;
}

char *returned_direct(void) {
  return malloc(8); // ERROR "malloc\(8\) escapes to heap: returned"
}

void to_global(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) escapes to heap: stored to global g"
  g = p;
}

void to_static(void) {
  s_cache = malloc(8); // ERROR "escapes to heap: stored to static s_cache"
}

void to_static_local(void) {
  static char *keep;
  char *p = calloc(4, 4); // ERROR "calloc\(4, 4\) escapes to heap: stored to static keep"
  keep = p;
}

void to_tls(void) {
  t_slot = malloc(8); // ERROR "escapes to heap: stored to thread-local t_slot"
}

void out_param(char **out) {
  char *p = malloc(8); // ERROR "escapes to heap: stored through parameter out"
  *out = p;
}

void through_field(struct node *n) {
  char *p = malloc(8); // ERROR "escapes to heap: stored through parameter n"
  n->data = p;
}

void through_local_pointer(void) {
  struct node *n = malloc(sizeof *n); // ERROR "malloc\(sizeof \*n\) does not escape"
  char *d = malloc(8); // ERROR "malloc\(8\) escapes to heap: stored through pointer" SAFE
  n->data = d;
  free(d);
  free(n);
}

uintptr_t int_cast(void) {
  char *p = malloc(8); // ERROR "escapes to heap: cast to integer"
  uintptr_t u = (uintptr_t)p;
  free(p);
  return u;
}

long implicit_int(void) {
  char *p = malloc(8); // ERROR "escapes to heap: cast to integer"
  long v = (long)(p + 1);
  free(p);
  return v;
}

int bool_is_fine(void) {
  char *p = malloc(8); // ERROR "malloc\(8\) does not escape"
  _Bool b = p;
  int r = p != NULL && b;
  if (p) r++;
  free(p);
  return r;
}

void sizes(int n) {
  char *a = malloc(4032); // ERROR "malloc\(4032\) does not escape"
  char *b = malloc(4033); // ERROR "too large for stack \(4033 bytes > 4032\)"
  char *c = malloc(n); // ERROR "malloc\(n\) escapes to heap: non-constant size"
  char *d = calloc(n, 8); // ERROR "calloc\(n, 8\) escapes to heap: non-constant size"
  char *e = calloc(1000, 8); // ERROR "too large for stack \(8000 bytes > 4032\)"
  char *f = malloc(100000); // ERROR "too large for stack"
  char *h = aligned_alloc(64, 128); // ERROR "aligned_alloc\(64, 128\) does not escape"
  free(a); free(b); free(c); free(d); free(e); free(f); free(h);
}

void vla_size(int n) {
  int vla[n];
  vla[0] = 1;
  char *p = malloc(sizeof vla); // ERROR "malloc\(sizeof vla\) escapes to heap: non-constant size"
  free(p);
}

enum { BUFSZ = 256 };
#define NITEMS 10
void folded(void) {
  char *p = malloc(BUFSZ * 2); // ERROR "malloc\(BUFSZ \* 2\) does not escape"
  long *q = calloc(NITEMS, sizeof(long)); // ERROR "calloc\(NITEMS, sizeof\(long\)\) does not escape"
  free(p);
  free(q);
}

void leaked_but_local(void) {
  char *p = malloc(64); // ERROR "malloc\(64\) does not escape"
  p[0] = 1;
}

void inline_asm(void) {
  char *p = malloc(16); // ERROR "escapes to heap: used by inline asm"
  __asm__ volatile("" : : "r"(p) : "memory");
  free(p);
}
