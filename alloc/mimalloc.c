/* mimalloc.c - mimalloc as a translation unit of its own, for sanitizer builds only.
 *
 * The other builds compile mimalloc inside entry.c, where its fast paths inline into palloc's.
 * Under ASan/UBSan/TSan it is compiled here instead, without instrumentation (alloc/meson.build
 * adds -fno-sanitize=all), as Debian's libmimalloc.so was: mimalloc's page flags are read by
 * other threads without synchronisation by design (a byte that only the owning thread writes),
 * which TSan reports, and the sanitizer runtimes own malloc in these builds anyway, so the tests
 * there reach mimalloc only through the palloc_* API. */
#include PALLOC_MIMALLOC_STATIC_C
