/* static_prog.c - a statically linked program that allocates: `palloc run` must say that
 * LD_PRELOAD cannot reach it (run_static.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  size_t total = 0;
  for (int i = 0; i < 1000; i++) {
    char *p = malloc(4096);
    if (p == NULL) return 1;
    memset(p, i, 4096);
    total += (unsigned char)p[i];
    free(p);
  }
  printf("static: %zu\n", total);
  return 0;
}
