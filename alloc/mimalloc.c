/* mimalloc.c - mimalloc as a translation unit of its own, for sanitizer builds only.
 *
 * The other builds compile mimalloc inside entry.c, where its fast paths inline into palloc's.
 * Under ASan/UBSan/TSan it is compiled here instead, without instrumentation (alloc/meson.build
 * adds -fno-sanitize=all), as Debian's libmimalloc.so was: mimalloc's page flags are read by
 * other threads without synchronisation by design (a byte that only the owning thread writes),
 * which TSan reports, and the sanitizer runtimes own malloc in these builds anyway, so the tests
 * there reach mimalloc only through the palloc_* API. */

/* Under TSan, mimalloc's own synchronisation is invisible (uninstrumented): a block one thread
 * frees and another gets back from mimalloc (a cross-thread free collected by the page's owner,
 * a thread cache's flush) looked to TSan like two threads writing the same memory unordered
 * (test_peaklife, 1 run in ~10). The entry points palloc calls are therefore wrapped here: a
 * free releases the block's address and an allocation acquires it, which is the order mimalloc
 * itself guarantees. */
#ifdef PALLOC_TSAN_ANNOTATE
#define mi_malloc mi_malloc_unannotated
#define mi_zalloc mi_zalloc_unannotated
#define mi_realloc mi_realloc_unannotated
#define mi_malloc_aligned mi_malloc_aligned_unannotated
#define mi_zalloc_aligned mi_zalloc_aligned_unannotated
#define mi_free mi_free_unannotated
#endif

#include PALLOC_MIMALLOC_STATIC_C

/* entry.c's page_class, here where mimalloc's types are (patch 0004); p != NULL. */
__attribute__((visibility("hidden"))) uint8_t palloc_mi_page_class(const void *p) {
  return _mi_ptr_page((void *)p)->palloc_class;
}

#ifdef PALLOC_TSAN_ANNOTATE
#undef mi_malloc
#undef mi_zalloc
#undef mi_realloc
#undef mi_malloc_aligned
#undef mi_zalloc_aligned
#undef mi_free
#include <sanitizer/tsan_interface.h>
#define ANNOTATED __attribute__((visibility("hidden")))
static inline void *acquired(void *p) {
  if (p != NULL) __tsan_acquire(p);
  return p;
}
ANNOTATED void *mi_malloc(size_t n) { return acquired(mi_malloc_unannotated(n)); }
ANNOTATED void *mi_zalloc(size_t n) { return acquired(mi_zalloc_unannotated(n)); }
ANNOTATED void *mi_malloc_aligned(size_t n, size_t a) {
  return acquired(mi_malloc_aligned_unannotated(n, a));
}
ANNOTATED void *mi_zalloc_aligned(size_t n, size_t a) {
  return acquired(mi_zalloc_aligned_unannotated(n, a));
}
ANNOTATED void mi_free(void *p) {
  if (p != NULL) __tsan_release(p);
  mi_free_unannotated(p);
}
ANNOTATED void *mi_realloc(void *p, size_t n) {
  if (p != NULL) __tsan_release(p);
  return acquired(mi_realloc_unannotated(p, n));
}
#endif
