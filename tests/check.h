/* check.h - the assertion macros of palloc's C tests.
 * CHECK(cond, fmt, ...) records a failure with file:line and a message and keeps going;
 * CHECK_DONE() prints a summary and returns the exit status (0 only if every check held). */
#ifndef PALLOC_TEST_CHECK_H
#define PALLOC_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>

static int check_failures_, check_count_;

#define CHECK(cond, ...)                                                            \
  do {                                                                              \
    check_count_++;                                                                 \
    if (!(cond)) {                                                                  \
      check_failures_++;                                                            \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fputc('\n', stderr);                                                          \
    }                                                                               \
  } while (0)

#define CHECK_DONE()                                                                \
  (fprintf(stderr, "%d checks, %d failed\n", check_count_, check_failures_),        \
   check_failures_ ? 1 : 0)

/* A forked child's end, for tests whose children run under alarm(): CHILD_HUNG if SIGALRM
 * killed it (it hung), CHILD_OK if it exited 0, else CHILD_FAILED. */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
enum { CHILD_OK, CHILD_FAILED, CHILD_HUNG };
static inline int check_child(pid_t pid) {
  int st;
  if (waitpid(pid, &st, 0) != pid) return CHILD_FAILED;
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) return CHILD_HUNG;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? CHILD_OK : CHILD_FAILED;
}
#endif
