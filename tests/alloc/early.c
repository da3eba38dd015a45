/* early.c - allocates before any ordinary constructor runs (priority 101 runs first, and the
 * dynamic loader and libc allocate before that), from a constructor of a shared library too
 * (early_lib.c), from threads started in a constructor, and after main in destructors and
 * atexit handlers. Under LD_PRELOAD=libpalloc.so with PALLOC_SAMPLE_RATE=1 every one of those
 * allocations is sampled and unwound: nothing may deadlock or crash, and the output must match
 * a plain run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void early_lib_touch(void);
static char *early;
static pthread_t th;

static void *thread_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) free(strdup("thread started by a constructor"));
  return NULL;
}

__attribute__((constructor(101))) static void first(void) {
  early = malloc(100);
  strcpy(early, "allocated in a priority-101 constructor");
  pthread_create(&th, NULL, thread_main, NULL);
}

static void at_exit(void) {
  char *p = malloc(1 << 20);
  memset(p, 1, 1 << 20);
  free(p);
}

__attribute__((destructor)) static void last(void) { free(realloc(malloc(10), 1000)); }

int main(void) {
  atexit(at_exit);
  pthread_join(th, NULL);
  early_lib_touch();
  printf("%s\n", early);
  free(early);
  return 0;
}
