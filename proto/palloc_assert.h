/* palloc_assert.h - checked invariants, for every module (proto/ is the layer all others use).
 *
 * palloc_assert(cond) states an invariant the surrounding comments give; it is compiled only in
 * builds configured with -Dassertions=on or =expensive (PALLOC_ASSERT >= 1), as mimalloc's
 * mi_assert_internal and SQLite's assert() are, and the test suite runs such a build
 * (tests/run-all.sh, build-debug). palloc_assert_expensive(cond) is for checks that cost O(n)
 * (a table walked, a list counted): PALLOC_ASSERT >= 2 only. Elsewhere both compile to nothing:
 * the condition is type-checked (sizeof) but never evaluated, so the malloc/free fast paths of
 * an ordinary build are unchanged.
 *
 * A failed assertion can fire inside malloc, free or a signal handler, so the report uses
 * neither stdio nor the heap: one line, "palloc: assertion failed: FILE:LINE: FUNC: COND",
 * built on the stack and written with one write(2), then abort().
 */
#ifndef PALLOC_ASSERT_H
#define PALLOC_ASSERT_H

#ifndef PALLOC_ASSERT
#define PALLOC_ASSERT 0
#endif

#if PALLOC_ASSERT
/* Not <unistd.h> nor <stdlib.h>: their names (dup, ...) would collide with palloc's statics. */
#include <sys/types.h>
extern ssize_t write(int fd, const void *buf, size_t n);

static inline char *palloc_assert_put(char *d, char *end, const char *s) {
  while (*s && d < end) *d++ = *s++;
  return d;
}

/* Static: each object that asserts has its own copy, so no library or test that compiles a few
 * of palloc's sources needs another one linked. Cold and out of line: the check is one branch. */
__attribute__((cold, noinline, noreturn, unused)) static void
palloc_assert_fail(const char *file, int line, const char *func, const char *cond) {
  char buf[512], num[12], *d = buf, *end = buf + sizeof buf - 1;
  while (file[0] == '.' && file[1] == '.' && file[2] == '/') file += 3; /* meson's "../alloc/" */
  int k = (int)sizeof num;
  num[--k] = 0;
  do num[--k] = (char)('0' + line % 10); while ((line /= 10) > 0 && k > 0);
  d = palloc_assert_put(d, end, "palloc: assertion failed: ");
  d = palloc_assert_put(d, end, file);
  d = palloc_assert_put(d, end, ":");
  d = palloc_assert_put(d, end, num + k);
  d = palloc_assert_put(d, end, ": ");
  d = palloc_assert_put(d, end, func);
  d = palloc_assert_put(d, end, ": ");
  d = palloc_assert_put(d, end, cond);
  *d++ = '\n';
  ssize_t w = write(2, buf, (size_t)(d - buf));
  (void)w;
  __builtin_abort();
}

#define palloc_assert(cond) \
  (__builtin_expect(!!(cond), 1) ? (void)0 : palloc_assert_fail(__FILE__, __LINE__, __func__, #cond))
#else
#define palloc_assert(cond) ((void)sizeof(!(cond)))
#endif

#if PALLOC_ASSERT >= 2
#define palloc_assert_expensive(cond) palloc_assert(cond)
#else
#define palloc_assert_expensive(cond) ((void)sizeof(!(cond)))
#endif

#endif
