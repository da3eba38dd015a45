/* peaklife_supp.c - an allocation site in a file of its own, for a suppression by file name. */
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void *other_file_site(size_t n) {
  void *p = malloc(n);
  if (p) memset(p, 4, n);
  return p;
}
