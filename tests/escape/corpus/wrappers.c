// Corpus: allocation wrappers, recognized without --alloc: a function that returns a fresh
// allocation and does nothing else with it that outlives the call is an allocation site at
// each of its callers (as Go treats new), sized by its arguments; a function that only frees
// its parameter is its free() counterpart.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void die(const char *msg);

void *xmalloc(size_t n) {
  void *p = malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
  if (!p) die("out of memory");
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = xmalloc(n * size); // ERROR "xmalloc\(n \* size\) escapes to heap: returned"
  memset(p, 0, n * size);
  return p;
}

void xfree(void *p) { if (p) free(p); }

int wrapper_local(void) {
  char *p = xmalloc(64); // ERROR "xmalloc\(64\) does not escape"
  memset(p, 1, 64);
  int r = p[3];
  xfree(p);
  return r;
}

int wrapper_of_wrapper(void) {
  int *v = xcalloc(16, sizeof(int)); // ERROR "xcalloc\(16, sizeof\(int\)\) does not escape"
  int r = v[2];
  free(v);
  return r;
}

char *gkeep;
void wrapper_escapes(void) {
  char *p = xmalloc(8); // ERROR "xmalloc\(8\) escapes to heap: stored to global gkeep"
  gkeep = p;
}

void wrapper_sizes(size_t n) {
  char *a = xmalloc(n); // ERROR "xmalloc\(n\) escapes to heap: non-constant size"
  char *b = xmalloc(1 << 20); // ERROR "too large for stack \(1048576 bytes"
  xfree(a);
  xfree(b);
}

void wrapper_loop(void) {
  char *keep = NULL;
  for (int i = 0; i < 4; i++) {
    char *p = xmalloc(8); // ERROR "outlives loop iteration \(held by keep\)"
    free(keep);
    keep = p;
  }
  free(keep);
}

/* Not wrappers: the allocation is also kept, or something else may be returned. */
static char *last;
char *alloc_and_keep(size_t n) {
  char *p = malloc(n); // ERROR "escapes to heap: stored to static last"
  last = p;
  return p;
}

static char spare[64];
char *alloc_or_spare(size_t n) {
  if (n <= sizeof spare) return spare;
  return malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
}

char *alloc_or_param(char *buf, size_t n) { // ERROR "leaking param: buf to result"
  return buf ? buf : malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
}

/* A wrapper that changes its size parameter: the callers' sizes are not known. */
void *xmalloc_nonzero(size_t n) {
  if (!n) n = 1;
  return malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
}

/* git's do_xmalloc: two allocations returned (malloc(1) when malloc(0) gave NULL): the size
 * is bounded by the larger. */
void *two_mallocs(size_t size) {
  void *ret = malloc(size); // ERROR "malloc\(size\) escapes to heap: returned"
  if (!ret && !size) ret = malloc(1); // ERROR "malloc\(1\) escapes to heap: returned"
  if (!ret) die("out of memory");
  return ret;
}

/* redis's zmalloc: a minimum size, a prefix, and the size parameter reused after the
 * allocation (which does not change what was allocated). */
#define MIN_SIZE(x) ((x) > 0 ? (x) : 4096)
#define PREFIX (sizeof(long))
extern size_t used_memory;
void *prefixed(size_t size) {
  void *p = malloc(MIN_SIZE(size) + PREFIX); // ERROR "escapes to heap: returned"
  if (!p) return NULL;
  size = 2 * size;
  used_memory += size;
  return p;
}

/* assigned in a loop around the allocation: not the argument any more */
void *grows(size_t n, int tries) {
  void *p = NULL;
  while (!p && tries-- > 0) {
    p = malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
    n = n / 2;
  }
  return p;
}

void bounded_sizes(void) {
  char *a = two_mallocs(16); // ERROR "two_mallocs\(16\) does not escape"
  char *b = prefixed(16); // ERROR "too large for stack \(4104 bytes > 4032\)"
  char *c = grows(16, 3); // ERROR "grows\(16, 3\) escapes to heap: non-constant size"
  a[0] = b[0] = c[0] = 0;
  free(a);
  free(b);
  free(c);
}

void not_wrappers(void) {
  char *a = alloc_and_keep(8);
  char *b = alloc_or_spare(8);
  char *c = alloc_or_param(NULL, 8);
  char *d = xmalloc_nonzero(8); // ERROR "xmalloc_nonzero\(8\) escapes to heap: non-constant size"
  a[0] = b[0] = c[0] = d[0] = 0;
  free(d);
}

/* --realloc names one the analysis cannot see; a realloc wrapper it can see realloc's too.
 * What they return is an allocation site (for the profile), never a stack candidate. */
// ARGS: --realloc ext_realloc
extern void *ext_realloc(void *p, size_t n);
void *xrealloc(void *p, size_t n) { // ERROR "leaking param: p"
  void *q = realloc(p, n); // ERROR "realloc\(p, n\) escapes to heap: returned"
  if (!q) die("out of memory");
  return q;
}

void reallocs(void) {
  char *r = xrealloc(NULL, 8); // ERROR "xrealloc\(NULL, 8\) escapes to heap: resized by realloc"
  free(r);
  char *p = xmalloc(16); // ERROR "escapes to heap: realloc'd by ext_realloc"
  p = ext_realloc(p, 32); // ERROR "ext_realloc\(p, 32\) escapes to heap: realloc'd by ext_realloc"
  char *q = xmalloc(16); // ERROR "escapes to heap: passed to xrealloc: realloc'd by realloc"
  q = xrealloc(q, 32); // ERROR "xrealloc\(q, 32\) escapes to heap: passed to xrealloc: realloc'd by realloc"
  free(p);
  free(q);
}

/* A pass-through (redis's extend_to_usable) returns its argument: a wrapper may use it. */
static void *as_is(void *p, size_t n) { (void)n; return p; } // ERROR "leaking param: p to result"
void *zmalloc_like(size_t size) {
  void *p = malloc(size); // ERROR "malloc\(size\) escapes to heap: returned"
  return as_is(p, size);
}
char *gstr;
void *maybe_global(size_t size, int c) {
  return c ? malloc(size) : as_is(gstr, size); // ERROR "malloc\(size\) escapes to heap: returned"
}
void pass_through(void) {
  char *a = zmalloc_like(16); // ERROR "zmalloc_like\(16\) does not escape"
  char *b = maybe_global(16, 0);
  a[0] = b[0] = 0;
  free(a);
}
