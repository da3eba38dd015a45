/* sites.c - a program with three allocation sites of known volume, for the reader tests.
 *   A: 256 MiB in 1 KiB objects, all freed       (site_a)
 *   B:  64 MiB in 64 KiB objects, all freed      (site_b)
 *   C:  32 MiB in 512-byte objects, never freed  (site_c: the leak)
 * The sites are interleaved so that no site benefits from another's countdown. Built twice:
 * linked with -lpalloc, and plain (for LD_PRELOAD). The profile is written at exit by
 * PALLOC_PROFILE. noipa keeps each site a real, uncloned function for the readers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NA (256 * 1024)
#define NB 1024
#define NC (64 * 1024)

void *keep[NC]; /* global: the compiler may not drop the leak */

__attribute__((noipa)) static void site_a(void) {
  void *p = malloc(1024);
  memset(p, 1, 16);
  free(p);
}

__attribute__((noipa)) static void site_b(void) {
  void *p = malloc(65536);
  memset(p, 2, 16);
  free(p);
}

__attribute__((noipa)) static void site_c(int i) {
  keep[i] = malloc(512);
  memset(keep[i], 3, 16);
}

int main(void) {
  int a = 0, b = 0, c = 0;
  for (int round = 0; round < 1024; round++) {
    for (int k = 0; k < NA / 1024; k++, a++) site_a();
    site_b(), b++;
    for (int k = 0; k < NC / 1024; k++, c++) site_c(c);
  }
  printf("sites: A=%d B=%d C=%d\n", a, b, c);
  return 0;
}
