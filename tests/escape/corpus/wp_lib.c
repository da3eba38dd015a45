// Corpus: the other file of the whole-program case (wp_main.c analyzes it with itself). Its
// functions have external linkage: calls from wp_main.c resolve to their summaries.
#include <stdlib.h>
#include <string.h>

char *wp_kept;

size_t wp_measure(const char *s) { return strlen(s); }

void wp_keep(char *p) { wp_kept = p; } // ERROR "leaking param: p"

void *wp_alloc(size_t n) {
  char *p = malloc(n); // ERROR "malloc\(n\) escapes to heap: returned"
  if (p) memset(p, 0, n);
  return p;
}

void wp_release(void *p) { free(p); }

/* defined twice (also in wp_main.c, static there): the static one is called there */
int wp_twice(const char *p) { wp_keep((char *)p); return 0; } // ERROR "leaking param: p"
