/* early_lib.c - a shared library whose constructor allocates (see early.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static char *buf;
__attribute__((constructor)) static void lib_init(void) {
  buf = calloc(64, 1);
  strcpy(buf, "library constructor allocated");
}
void early_lib_touch(void) { printf("%s\n", buf); }
