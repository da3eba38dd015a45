/* test_aligned.c - every aligned entry point returns what it promises, for every power-of-two
 * alignment from 8 bytes to 64 KiB and sizes from 0 to 64 KiB, around the sizes where mimalloc
 * changes its layout (multiples of the alignment, 1 KiB, 4 KiB pages, 64 KiB): aligned to the
 * alignment, at least the size usable, writable to the end. Blocks are kept by the hundred so that
 * fresh mimalloc pages are opened (the first block of a fresh page is where mimalloc 2.0.9 went
 * wrong: alloc/mimalloc/patches/0001), then half are freed and allocated again (reused pages and
 * the thread cache), on four threads at once that free each other's blocks. The meson test runs it
 * at rate 1 (every block sampled), at the default rate, and without the thread cache.
 *
 * Built twice: through the libc names with libpalloc linked (the override), and through the
 * palloc_* API (also under ASan+UBSan). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "palloc.h"
#include "../check.h"

#ifdef USE_PALLOC_API
#define FREE palloc_free
#define POSIX_MEMALIGN palloc_posix_memalign
#define ALIGNED_ALLOC palloc_aligned_alloc
#define MEMALIGN palloc_memalign
#define USABLE palloc_malloc_usable_size
#else
#define FREE free
#define POSIX_MEMALIGN posix_memalign
#define ALIGNED_ALLOC aligned_alloc
#define MEMALIGN memalign
#define USABLE malloc_usable_size
#endif

enum { THREADS = 4, MAX_SIZES = 96, BUDGET = 2 << 20 /* bytes kept per (alignment, size) */ };

static size_t sizes[MAX_SIZES];
static int nsizes;
static _Atomic long bad_align, bad_usable, failed_alloc, blocks;

static void add_size(size_t n) {
  if (n > 65536 + 1) return;
  for (int i = 0; i < nsizes; i++)
    if (sizes[i] == n) return;
  if (nsizes < MAX_SIZES) sizes[nsizes++] = n;
}

/* Sizes 0..64 KiB where layouts change: small ones, every power of two and its neighbours
 * (mimalloc's 1 KiB small-size limit among them), and 4 KiB page multiples and their
 * neighbours. Multiples of the alignment are added per alignment (k * align, below). */
static void make_sizes(void) {
  for (size_t n = 0; n <= 17; n++) add_size(n);
  for (size_t p = 32; p <= 65536; p *= 2) {
    add_size(p - 1);
    add_size(p);
    add_size(p + 1);
  }
  for (size_t k = 2; k <= 15; k += 3) {
    add_size(4096 * k - 1);
    add_size(4096 * k);
    add_size(4096 * k + 1);
  }
}

typedef void *(*alloc_fn)(size_t align, size_t n);
static void *via_aligned_alloc(size_t a, size_t n) { return ALIGNED_ALLOC(a, n); }
static void *via_memalign(size_t a, size_t n) { return MEMALIGN(a, n); }
static void *via_posix_memalign(size_t a, size_t n) {
  void *p = NULL;
  return POSIX_MEMALIGN(&p, a, n) == 0 ? p : NULL;
}
static const struct { const char *name; alloc_fn fn; } entries[] = {
  {"aligned_alloc", via_aligned_alloc},
  {"memalign", via_memalign},
  {"posix_memalign", via_posix_memalign},
};

static void check_block(const char *entry, void *p, size_t align, size_t n) {
  atomic_fetch_add(&blocks, 1);
  if (p == NULL) {
    if (atomic_fetch_add(&failed_alloc, 1) < 5)
      fprintf(stderr, "%s(%zu, %zu) returned NULL\n", entry, align, n);
    return;
  }
  if (((uintptr_t)p & (align - 1)) != 0 && atomic_fetch_add(&bad_align, 1) < 10)
    fprintf(stderr, "%s(%zu, %zu) = %p: misaligned (page offset 0x%lx)\n", entry, align, n, p,
            (unsigned long)((uintptr_t)p & 0xffff));
  if (USABLE(p) < n && atomic_fetch_add(&bad_usable, 1) < 10)
    fprintf(stderr, "%s(%zu, %zu): usable size %zu\n", entry, align, n, USABLE(p));
  if (n > 0) {
    memset(p, 0xa5, n);
    ((volatile unsigned char *)p)[n - 1] = 0x5a;
  }
}

/* Blocks handed from one thread to the next, freed there (cross-thread frees). */
static void *_Atomic handoff[THREADS][64];

static void run_one(int self, const char *entry, alloc_fn fn, size_t align, size_t n) {
  enum { KEEP = 160 };
  void *kept[KEEP];
  int count = (int)(BUDGET / (n + align + 16));
  if (count > KEEP) count = KEEP;
  if (count < 4) count = 4;
  for (int i = 0; i < count; i++) check_block(entry, kept[i] = fn(align, n), align, n);
  for (int i = 0; i < count; i += 2) {  /* reuse: free every other block, allocate again */
    FREE(kept[i]);
    check_block(entry, kept[i] = fn(align, n), align, n);
  }
  /* Give one block to the next thread, free the one the previous thread left for us. */
  int slot = (int)((align ^ n) % 64);
  void *old = atomic_exchange(&handoff[(self + 1) % THREADS][slot], kept[0]);
  FREE(old);
  kept[0] = NULL;
  for (int i = 0; i < count; i++) FREE(kept[i]);
}

static void *worker(void *arg) {
  int self = (int)(intptr_t)arg;
  for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) {
    /* Threads walk the alignments in different orders, so that they open pages at once. */
    for (int k = 0; k < 14; k++) {
      size_t align = (size_t)8 << ((k + self * 3) % 14);
      for (int s = 0; s < nsizes; s++) run_one(self, entries[e].name, entries[e].fn, align, sizes[s]);
      for (size_t m = 1; m <= 3; m++)
        for (int d = -1; d <= 1; d++)
          if (m * align + (size_t)d <= 65537) run_one(self, entries[e].name, entries[e].fn, align, m * align + (size_t)d);
    }
  }
  return NULL;
}

int main(void) {
  make_sizes();
  pthread_t t[THREADS];
  for (int i = 1; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  worker((void *)0);
  for (int i = 1; i < THREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < THREADS; i++)
    for (int s = 0; s < 64; s++) FREE(atomic_exchange(&handoff[i][s], NULL));
  /* memalign's non-power-of-two alignments round up; the result must hold the rounded one. */
  for (size_t a = 3; a <= 70000; a = a * 3 + 1) {
    size_t up = 1;
    while (up < a) up *= 2;
    void *p = MEMALIGN(a, 100);
    CHECK(p != NULL && ((uintptr_t)p & (up - 1)) == 0, "memalign(%zu) aligned to %zu", a, up);
    FREE(p);
  }
  fprintf(stderr, "%ld blocks, %d sizes x 14 alignments x 3 entry points x %d threads\n",
          (long)blocks, nsizes, THREADS);
  CHECK(bad_align == 0, "%ld misaligned blocks", (long)bad_align);
  CHECK(bad_usable == 0, "%ld blocks smaller than asked", (long)bad_usable);
  CHECK(failed_alloc == 0, "%ld allocations failed", (long)failed_alloc);
  CHECK(blocks > 100000, "only %ld blocks: the test covered too little", (long)blocks);
  return CHECK_DONE();
}
