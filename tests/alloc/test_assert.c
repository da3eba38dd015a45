/* test_assert.c - palloc_assert fires (assertion builds only: -Dassertions=on|expensive).
 *
 * Each case breaks one invariant in a forked child and expects it to die of SIGABRT after
 * writing exactly one line, "palloc: assertion failed: FILE:LINE: FUNC: COND", on stderr:
 *  - through the API: a custom allocator's sample freed twice (palloc_sample_free) makes its
 *    bucket's frees exceed its allocs (bucket.c);
 *  - a guard exit without its enter (countdown.c), as an unbalanced palloc path would do.
 * Nothing real is corrupted: the child's own counters, then it dies. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "internal.h"
#include "../check.h"

static void double_sample_free(void) {
  palloc_set_sample_rate(1);
  palloc_sample_t *tok = palloc_sample_alloc(32);
  if (tok == NULL) _exit(3);
  palloc_sample_free(tok, 32);
  palloc_sample_free(tok, 32);
}

static void unbalanced_guard(void) {
  palloc_free(palloc_malloc(1)); /* sets palloc and this thread up */
  palloc_guard_exit(&palloc_thread);
}

static void expect_assert(const char *name, void (*breaker)(void), const char *where,
                          const char *cond) {
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    breaker();
    _exit(0); /* not reached if the assertion fired */
  }
  close(fds[1]);
  char buf[1024];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  buf[n] = 0;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: the child did not abort (status %#x)",
        name, st);
  char *nl = strchr(buf, '\n');
  CHECK(strncmp(buf, "palloc: assertion failed: ", 26) == 0 && nl != NULL && nl[1] == 0,
        "%s: not one 'palloc: assertion failed' line: [%s]", name, buf);
  CHECK(strstr(buf, where) != NULL && strstr(buf, cond) != NULL,
        "%s: the line does not name %s and %s: [%s]", name, where, cond, buf);
  printf("%s: %s", name, buf);
}

int main(void) {
  expect_assert("double-sample-free", double_sample_free, "alloc/bucket.c:",
                "palloc_bucket_record_free: atomic_load(&b->frees) <= atomic_load(&b->allocs)");
  expect_assert("unbalanced-guard", unbalanced_guard, "alloc/internal.h:",
                "palloc_guard_exit: t->guard > 0");
  return CHECK_DONE();
}
