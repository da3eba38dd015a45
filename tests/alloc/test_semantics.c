/* test_semantics.c - every malloc-family function behaves as glibc's, on the sampled and the
 * unsampled path (the checks run at rate 1, where every block is sampled, at rate 0, and at the
 * default rate). Built twice: through the libc names with libpalloc linked (the override), and
 * through the palloc_* API (also under ASan+UBSan). */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "palloc.h"
#include "../check.h"

#ifdef USE_PALLOC_API
#define MALLOC palloc_malloc
#define FREE palloc_free
#define CALLOC palloc_calloc
#define REALLOC palloc_realloc
#define REALLOCARRAY palloc_reallocarray
#define POSIX_MEMALIGN palloc_posix_memalign
#define ALIGNED_ALLOC palloc_aligned_alloc
#define MEMALIGN palloc_memalign
#define VALLOC palloc_valloc
#define PVALLOC palloc_pvalloc
#define USABLE palloc_malloc_usable_size
#else
#define MALLOC malloc
#define FREE free
#define CALLOC calloc
#define REALLOC realloc
#define REALLOCARRAY reallocarray
#define POSIX_MEMALIGN posix_memalign
#define ALIGNED_ALLOC aligned_alloc
#define MEMALIGN memalign
#define VALLOC valloc
#define PVALLOC pvalloc
#define USABLE malloc_usable_size
#endif

static int aligned_to(void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Counts successful allocations: at rate 1 each one must be sampled. */
static size_t allocations;
static void *A(void *p) {
  allocations += p != NULL;
  return p;
}
static int AI(int rc) {
  allocations += rc == 0;
  return rc;
}

static void run(const char *mode) {
  size_t page = (size_t)getpagesize();
  void *p = A(MALLOC(0));
  CHECK(p != NULL, "[%s] malloc(0) returns a unique pointer", mode);
  FREE(p);
  FREE(NULL);
  for (size_t n = 1; n <= (1u << 22); n = n * 3 + 1) {
    unsigned char *b = A(MALLOC(n));
    CHECK(b != NULL && aligned_to(b, n >= 16 ? 16 : 8), "[%s] malloc(%zu) aligned", mode, n);
    memset(b, 0xab, n);
    CHECK(USABLE(b) >= n, "[%s] usable %zu >= %zu", mode, (size_t)USABLE(b), n);
    unsigned char *c = A(REALLOC(b, n * 2));
    CHECK(c != NULL && c[0] == 0xab && c[n - 1] == 0xab, "[%s] realloc grow keeps data", mode);
    c = A(REALLOC(c, n / 2 + 1));
    CHECK(c != NULL && c[n / 2] == 0xab, "[%s] realloc shrink keeps data", mode);
    FREE(c);
  }
  unsigned char *z = A(CALLOC(1000, 7));
  int zero = 1;
  for (int i = 0; i < 7000; i++) zero &= z[i] == 0;
  CHECK(zero, "[%s] calloc zero-fills", mode);
  FREE(z);
  z = A(CALLOC(1, 1 << 20));
  zero = 1;
  for (int i = 0; i < (1 << 20); i += 97) zero &= z[i] == 0;
  CHECK(zero, "[%s] large calloc zero-fills", mode);
  FREE(z);
  errno = 0;
  CHECK(A(CALLOC(SIZE_MAX / 2, 3)) == NULL && errno == ENOMEM, "[%s] calloc overflow", mode);
  errno = 0;
  CHECK(A(MALLOC(SIZE_MAX - 4096)) == NULL && errno == ENOMEM, "[%s] impossible malloc", mode);
  p = A(REALLOC(NULL, 100));
  CHECK(p != NULL, "[%s] realloc(NULL) allocates", mode);
  CHECK(A(REALLOC(p, 0)) == NULL, "[%s] realloc(p, 0) frees and returns NULL", mode);
  p = A(MALLOC(10));
  errno = 0;
  CHECK(A(REALLOCARRAY(p, SIZE_MAX / 4, 8)) == NULL && errno == ENOMEM,
        "[%s] reallocarray overflow", mode);
  void *q = A(REALLOCARRAY(p, 10, 10));
  CHECK(q != NULL && USABLE(q) >= 100, "[%s] reallocarray", mode);
  FREE(q);
  for (size_t a = sizeof(void *); a <= (1u << 20); a *= 2) {
    void *m = NULL;
    CHECK(AI(POSIX_MEMALIGN(&m, a, 100)) == 0 && aligned_to(m, a), "[%s] posix_memalign %zu", mode,
          a);
    memset(m, 1, 100);
    FREE(m);
    m = A(ALIGNED_ALLOC(a, 3 * a));
    CHECK(m != NULL && aligned_to(m, a) && USABLE(m) >= 3 * a, "[%s] aligned_alloc %zu", mode, a);
    FREE(m);
    m = A(MEMALIGN(a, 33));
    CHECK(m != NULL && aligned_to(m, a), "[%s] memalign %zu", mode, a);
    FREE(m);
    /* Power-of-two sizes of at least the alignment: mimalloc 2.0.9's mi_malloc_aligned serves
     * them as plain small blocks, which are not so aligned from 256 on. */
    for (size_t n = a; n <= 4 * a && n <= 8192; n *= 2) {
      m = A(ALIGNED_ALLOC(a, n));
      CHECK(m != NULL && aligned_to(m, a), "[%s] aligned_alloc(%zu, %zu)", mode, a, n);
      FREE(m);
      m = NULL;
      CHECK(AI(POSIX_MEMALIGN(&m, a, n)) == 0 && aligned_to(m, a), "[%s] posix_memalign(%zu, %zu)",
            mode, a, n);
      FREE(m);
      m = A(MEMALIGN(a, n));
      CHECK(m != NULL && aligned_to(m, a), "[%s] memalign(%zu, %zu)", mode, a, n);
      FREE(m);
    }
  }
  void *m = (void *)1;
  CHECK(POSIX_MEMALIGN(&m, 24, 10) == EINVAL && m == (void *)1,
        "[%s] posix_memalign rejects 24 and leaves *out", mode);
  CHECK(POSIX_MEMALIGN(&m, 4, 10) == EINVAL, "[%s] posix_memalign rejects 4", mode);
  errno = 0;
  CHECK(A(ALIGNED_ALLOC(3, 9)) == NULL && errno == EINVAL, "[%s] aligned_alloc rejects 3", mode);
  m = A(MEMALIGN(24, 10));
  CHECK(m != NULL && aligned_to(m, 32), "[%s] memalign rounds 24 up to 32", mode);
  FREE(m);
  m = A(VALLOC(10));
  CHECK(m != NULL && aligned_to(m, page), "[%s] valloc is page aligned", mode);
  FREE(m);
  m = A(PVALLOC(page + 1));
  CHECK(m != NULL && aligned_to(m, page) && USABLE(m) >= 2 * page, "[%s] pvalloc rounds up",
        mode);
  FREE(m);
  m = A(PVALLOC(0));
  CHECK(m != NULL && USABLE(m) >= page, "[%s] pvalloc(0) gives a page", mode);
  FREE(m);
  CHECK(USABLE(NULL) == 0, "[%s] usable size of NULL", mode);
#ifndef USE_PALLOC_API
  char *s = A(strdup("palloc"));
  CHECK(s && strcmp(s, "palloc") == 0, "[%s] strdup", mode);
  char *t = A(strndup("palloc-long", 6));
  CHECK(t && strcmp(t, "palloc") == 0, "[%s] strndup", mode);
  free(s);
  free(t);
#endif
}

int main(void) {
  palloc_stats_t st, st0;
  palloc_set_sample_rate(1);
  palloc_read_stats(&st0);
  allocations = 0;
  run("rate 1");
  palloc_read_stats(&st);
  CHECK(st.sampled_allocs - st0.sampled_allocs == allocations,
        "rate 1 samples every allocation: %llu sampled, %zu made",
        (unsigned long long)(st.sampled_allocs - st0.sampled_allocs), allocations);
  uint64_t live1 = st.live_sampled_blocks;
  palloc_set_sample_rate(0);
  run("rate 0");
  palloc_set_sample_rate(4096);
  run("rate 4096");
  palloc_set_sample_rate(PALLOC_DEFAULT_SAMPLE_RATE);
  run("default rate");
  palloc_read_stats(&st);
  CHECK(st.live_sampled_blocks <= live1 + 16, "no sampled block leaks: %llu live",
        (unsigned long long)st.live_sampled_blocks);

  /* A sampled block realloc'ed within its usable size stays in place, and the profile follows:
   * at rate 1 the old size is freed and the new one allocated (and sampled). */
  palloc_set_sample_rate(1);
  char *b = MALLOC(1000);
  memset(b, 7, 1000);
  palloc_read_stats(&st0);
  char *c = REALLOC(b, 600);
  palloc_read_stats(&st);
  CHECK(c == b && c[599] == 7, "shrink of a sampled block is in place");
  CHECK(st.live_sampled_blocks == st0.live_sampled_blocks &&
        st0.live_sampled_bytes - st.live_sampled_bytes == 400 &&
        st.sampled_allocs == st0.sampled_allocs + 1, "in-place realloc re-accounted: %llu -> %llu",
        (unsigned long long)st0.live_sampled_bytes, (unsigned long long)st.live_sampled_bytes);
  palloc_set_sample_rate(0);
  c = REALLOC(c, 520); /* now unsampled in place (mimalloc keeps a block that stays over half
                         * full): it leaves the profile */
  palloc_read_stats(&st);
  CHECK(c == b && st.live_sampled_blocks == st0.live_sampled_blocks - 1,
        "unsampled in-place realloc leaves the profile");
  FREE(c);
  palloc_read_stats(&st0);
  CHECK(st0.live_sampled_blocks == st.live_sampled_blocks, "its free is not counted twice");
  palloc_set_sample_rate(PALLOC_DEFAULT_SAMPLE_RATE);
  return CHECK_DONE();
}
