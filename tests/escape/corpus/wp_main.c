// Corpus: whole program. Functions defined in another file of the program (wp_lib.c) are not
// unknown: their summaries, allocation wrappers and free counterparts are used here.
// WITH: wp_lib.c
#include <stdlib.h>
#include <string.h>

size_t wp_measure(const char *s);
void wp_keep(char *p);
void *wp_alloc(size_t n);
void wp_release(void *p);
void wp_nowhere(char *p); /* defined in no file: unknown */
static int wp_twice(const char *p) { return p[0]; }

size_t wp_reads(void) {
  char *p = malloc(16); // ERROR "malloc\(16\) does not escape"
  strcpy(p, "abc");
  size_t n = wp_measure(p) + (size_t)wp_twice(p);
  free(p);
  return n;
}

void wp_keeps(void) {
  char *p = malloc(16); // ERROR "escapes to heap: passed to wp_keep: stored to global wp_kept"
  wp_keep(p);
}

int wp_wrapper(void) {
  char *p = wp_alloc(32); // ERROR "wp_alloc\(32\) does not escape"
  int r = p[0];
  wp_release(p);
  return r;
}

void wp_unknown(void) {
  char *p = malloc(16); // ERROR "escapes to heap: passed to unknown function wp_nowhere"
  wp_nowhere(p);
  free(p);
}
