/* prog.c - the program behind the profile-join test: a few allocation sites called a known
 * number of times with known sizes. Built with libpalloc, run with PALLOC_SAMPLE_RATE=1 (every
 * allocation sampled), then palloc-escape --profile must rank the stack candidates by the
 * bytes they really allocated. The counts are repeated in check_profile.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static NOINLINE int hot(int i) {
  char *p = malloc(64); /* candidate: 1000 x 64 */
  memset(p, i, 64);
  int r = p[1];
  free(p);
  return r;
}

static NOINLINE int warm(int i) {
  int *a = calloc(16, sizeof(int)); /* candidate: 100 x 64 */
  a[0] = i;
  int r = a[0];
  free(a);
  return r;
}

static NOINLINE int rare(void) {
  char *p = malloc(2000); /* candidate: 3 x 2000 */
  p[0] = 1;
  int r = p[0];
  free(p);
  return r;
}

/* An allocation wrapper: its malloc escapes (returned), and its call in main is the site,
 * a candidate: 500 x 256, the biggest. */
static NOINLINE char *escaping(int i) {
  char *p = malloc(256);
  p[0] = (char)i;
  return p;
}

/* Escapes (stored to a static): 20 x 1024, the second escaping site. */
static char *slot;
static NOINLINE void swap_slot(void) {
  free(slot);
  slot = malloc(1024);
}

/* Escapes (stored to a static): 200 x 512, the hot escaping site. */
static char *ring[4];
static NOINLINE void stored(int i) {
  free(ring[i % 4]);
  ring[i % 4] = malloc(512);
}

static NOINLINE int never(void) {
  char *p = malloc(32); /* candidate, never called */
  p[0] = 2;
  int r = p[0];
  free(p);
  return r;
}

int main(int argc, char **argv) {
  long sum = 0;
  for (int i = 0; i < 1000; i++) sum += hot(i);
  for (int i = 0; i < 100; i++) sum += warm(i);
  for (int i = 0; i < 3; i++) sum += rare();
  for (int i = 0; i < 500; i++) {
    char *p = escaping(i);
    sum += p[0];
    free(p);
  }
  for (int i = 0; i < 200; i++) stored(i);
  for (int i = 0; i < 20; i++) swap_slot();
  if (argc > 5) sum += never();
  printf("%ld\n", sum);
  (void)argv;
  return 0;
}
