/* mallinfo.c - glibc's malloc extensions, answered by mimalloc.
 *
 * Why palloc defines them. In glibc they live in malloc.o beside malloc itself; a statically
 * linked program that calls one of them pulls libc.a's malloc.o, whose malloc, free, ... then
 * clash with libpalloc.a's ("multiple definition of `malloc'"). Nothing else in Debian 12's
 * libc.a refers to malloc.o except weakly (fork's and thread exit's hooks), so with these the
 * static link never takes it. libpalloc.so exports them too: glibc's would report on, trim or
 * tune glibc's own heap, which holds nothing once palloc's malloc is the one in use.
 *
 * What each does:
 *  - malloc_trim(pad): mi_collect(true): frees the calling thread's empty pages, and the memory
 *    of threads that have exited, back to mimalloc's segments and decommits what is free (the
 *    blocks in palloc's thread caches stay cached). Returns 1 if the memory committed from the
 *    system went down, 0 if not, as glibc says whether memory was released. pad is unused.
 *  - mallinfo2(), mallinfo(): mimalloc in palloc's build keeps no count of the bytes in use (no
 *    statistics on the fast path), only of the memory it has committed from the system: that
 *    is arena, and uordblks too (the free space inside it is not counted either, so fordblks is
 *    0); usmblks is its peak; the rest 0. mallinfo truncates to int, as glibc's does.
 *  - malloc_stats(): those figures on stderr, in glibc's layout.
 *  - malloc_info(0, fp): the same as XML, <malloc version="1"> as glibc's; options != 0 is
 *    EINVAL.
 *  - mallopt(param, value): glibc's parameters (M_MXFAST .. M_ARENA_MAX) tune ptmalloc and have
 *    no meaning for mimalloc (which reads MIMALLOC_* environment variables): accepted and
 *    ignored, returning 1 (success); any other param returns 0, as glibc's does.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include "internal.h"

/* mimalloc's counts of the memory committed from the system (its "rss" on Linux is the same
 * figure, so it is not reported apart). */
typedef struct { size_t commit, peak_commit; } heap_figures_t;

static heap_figures_t figures(void) {
  heap_figures_t f = { 0, 0 };
  mi_process_info(NULL, NULL, NULL, NULL, NULL, &f.commit, &f.peak_commit, NULL);
  return f;
}

int palloc_malloc_trim(size_t pad) {
  (void)pad;
  size_t before = figures().commit;
  mi_collect(true);
  return figures().commit < before;
}

struct mallinfo2 palloc_mallinfo2(void) {
  heap_figures_t f = figures();
  struct mallinfo2 m = { 0 };
  m.arena = f.commit;
  m.uordblks = f.commit;
  m.usmblks = f.peak_commit;
  return m;
}

struct mallinfo palloc_mallinfo(void) {
  struct mallinfo2 m2 = palloc_mallinfo2();
  struct mallinfo m = { 0 };
  m.arena = (int)m2.arena;
  m.uordblks = (int)m2.uordblks;
  m.usmblks = (int)m2.usmblks;
  return m;
}

void palloc_malloc_stats(void) {
  heap_figures_t f = figures();
  fprintf(stderr, "Arena 0 (mimalloc, in palloc):\nsystem bytes     = %10zu\n"
          "in use bytes     = %10zu\nTotal (incl. mmap):\nsystem bytes     = %10zu\n"
          "in use bytes     = %10zu\nmax system bytes = %10zu\n",
          f.commit, f.commit, f.commit, f.commit, f.peak_commit);
}

int palloc_malloc_info(int options, FILE *fp) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  heap_figures_t f = figures();
  fprintf(fp, "<malloc version=\"1\">\n<heap nr=\"0\">\n<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n</heap>\n<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n<aspace type=\"total\" size=\"%zu\"/>\n"
          "</malloc>\n", f.commit, f.peak_commit, f.commit, f.peak_commit, f.commit);
  return 0;
}

int palloc_mallopt(int param, int value) {
  (void)value;
  switch (param) {
  case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD: case M_MMAP_MAX:
  case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
    return 1;
  default:
    return 0;
  }
}

#ifdef PALLOC_OVERRIDE
#define ALIAS(name) __attribute__((alias(#name), visibility("default")))
int malloc_trim(size_t pad) ALIAS(palloc_malloc_trim);
struct mallinfo2 mallinfo2(void) ALIAS(palloc_mallinfo2);
struct mallinfo mallinfo(void) ALIAS(palloc_mallinfo);
void malloc_stats(void) ALIAS(palloc_malloc_stats);
int malloc_info(int options, FILE *fp) ALIAS(palloc_malloc_info);
int mallopt(int param, int value) ALIAS(palloc_mallopt);
#endif
