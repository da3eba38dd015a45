/* unload_lib.c - a plugin for test_unload.c, built twice (-DLIB=a, -DLIB=b) with the same code
 * and layout under different names, so that the second, loaded where the first was, has its
 * allocation site at the first one's addresses. */
#include <stdlib.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define NAME(s) CAT(CAT(unload_, LIB), s)

/* Allocates n blocks of size bytes and keeps them in the returned array (the caller frees). */
__attribute__((noinline)) void **NAME(_keep)(int n, size_t size) {
  void **v = calloc((size_t)n, sizeof *v);
  for (int i = 0; v != NULL && i < n; i++) v[i] = malloc(size);
  return v;
}
