/* entry.c - the malloc-family entry points: the hot paths.
 *
 * The unsampled malloc is one thread-local subtraction (in memory) and one branch, then a pop
 * from the thread cache (tcache.c) or, if the class is empty, a tail call into mimalloc; the
 * unsampled free is one load from the registry's page map (a zero count: not sampled), one
 * branch, then the class byte of the block's mimalloc page (mimalloc patch 0004) and a push onto
 * the thread cache or, if the block is not cacheable, a tail call into mimalloc. Everything
 * else (sampling, trace accounting, sampled blocks) is in slowpath.c.
 *
 * This file is compiled twice: as the palloc_* API (always), and with PALLOC_OVERRIDE, which
 * also exports the libc names (malloc, free, ..., and glibc's __libc_* aliases) as aliases of the
 * same functions, and C++'s operator delete (cxxops.c has operator new). Sanitizer builds,
 * whose runtime owns malloc, link only the first.
 *
 * Semantics follow glibc where C leaves room: realloc(p, 0) frees p and returns NULL; memalign
 * rounds a non-power-of-two alignment up; aligned_alloc and posix_memalign reject one (EINVAL);
 * calloc, reallocarray and pvalloc report overflow as ENOMEM.
 */
/* mimalloc itself, compiled into this translation unit (alloc/meson.build says from where and
 * with which patches): mi_malloc, mi_free and the rest are static to libpalloc, and their fast
 * paths inline into the functions below, with no call across libraries and one thread-local
 * heap lookup. */
#ifndef PALLOC_MIMALLOC_APART /* sanitizer builds: mimalloc.c */
#include PALLOC_MIMALLOC_STATIC_C
/* The thread-cache class + 1 that mimalloc's page of p carries (patch 0004); p != NULL. The
 * lookup is mimalloc's own (_mi_ptr_page: segment, slice, back to the page's first slice), with
 * the slice's offset in the segment and its distance to the page's first slice subtracted
 * before the load, so that the slices' offset in the segment is the load's displacement. */
static inline __attribute__((always_inline)) unsigned page_class(const void *p) {
  mi_segment_t *segment = _mi_ptr_segment(p);
  size_t idx = ((uintptr_t)p - (uintptr_t)segment) >> MI_SEGMENT_SLICE_SHIFT;
  size_t at = idx * sizeof(mi_slice_t) - segment->slices[idx].slice_offset;
  const mi_page_t *page = (const mi_page_t *)((const uint8_t *)segment->slices + at);
  mi_assert_internal(page == _mi_ptr_page((void *)p));
  return page->palloc_class;
}
uint8_t palloc_mi_page_class(const void *p) { return (uint8_t)page_class(p); } /* for tests */
#else
#define page_class palloc_mi_page_class /* mimalloc.c */
#endif

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

PALLOC_TEXT void *palloc_malloc(size_t n) {
  void *p;
  if (palloc_charge(n)) return palloc_tc_pop(n, &p) ? p : mi_malloc(n);
  return palloc_alloc_slow(n, 0, false);
}

/* No frame pointer here (the rest of libpalloc keeps them): free calls only mimalloc's size
 * lookup and tail-calls the rest, none of which walks the stack, and the frame cost three
 * instructions a call. */
PALLOC_TEXT __attribute__((optimize("omit-frame-pointer"))) void palloc_free(void *p) {
  if (palloc_likely(!palloc_maybe_sampled(p))) {
    if (p != NULL) palloc_tc_free(page_class(p), p);
    return;
  }
  palloc_free_slow(p);
}

/* free(p) for a block of operator new(n) (C++ sized delete): the same as palloc_free, but the
 * thread cache takes the block under the class malloc(n) is served from, with no size lookup
 * (mimalloc's usable size reads the block's page header: a likely cache miss, and the only
 * memory palloc_free touches besides the page map and the bin). The page-map check comes
 * first, so a sampled block still goes to the registry.
 *
 * Why the class of n is safe. The cache's invariant is that a block in class c has a usable
 * size >= the class size S_c, since palloc_tc_pop(m) hands it to any request m with class c,
 * m <= S_c. A block of operator new(n) has usable size >= S_class(n): it came from class(n)'s
 * bin (usable >= S_class(n) by the invariant), or from mimalloc's malloc(n) (whose class sizes
 * are the cache's: palloc_tc_init reads them from mi_good_size), or from the sampled path, which
 * the page map sends to the slow path anyway. Pushing it into class(n) keeps the invariant;
 * a block cached under a class smaller than its own only wastes the difference until it is
 * freed. Aligned new is excluded (its deletes are palloc_free): an aligned block can be the
 * inside of a larger one, with a usable size that is no class size at all. The size must be the
 * one given to new, which C++ requires of a sized delete; like tcmalloc and jemalloc, palloc
 * trusts it. (C23's free_sized makes no such promise palloc could rely on - a realloc'ed aligned
 * block also qualifies - so it is plain free, below.) */
PALLOC_TEXT __attribute__((optimize("omit-frame-pointer"))) void palloc_free_sized(void *p, size_t n) {
  if (palloc_likely(!palloc_maybe_sampled(p))) {
    palloc_tc_free_sized(p, n);
    return;
  }
  palloc_free_slow(p);
}

/* palloc_malloc for palloc's own callers (cxxops.c): hidden, so they reach it directly. */
void *palloc_malloc_hidden(size_t n) __attribute__((alias("palloc_malloc"), visibility("hidden")));

PALLOC_TEXT void *palloc_calloc(size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p;
  if (palloc_charge(n)) return palloc_tc_pop(n, &p) ? memset(p, 0, n) : mi_zalloc(n);
  return palloc_alloc_slow(n, 0, true);
}

PALLOC_TEXT void *palloc_realloc(void *p, size_t n) {
  if (p == NULL) return palloc_malloc(n);
  if (n == 0) {
    palloc_free(p);
    return NULL;
  }
  bool charged = palloc_charge(n);
  if (palloc_likely(charged && !palloc_maybe_sampled(p))) return mi_realloc(p, n);
  return palloc_realloc_slow(p, n, !charged);
}

PALLOC_TEXT void *palloc_reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return palloc_realloc(p, n);
}

static inline bool pow2(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* An allocation of n bytes aligned to align, a power of two: the aligned entry points' common
 * path (inline), and C++'s aligned operator new's (palloc_aligned, for cxxops.c). */
static inline void *aligned(size_t align, size_t n) {
  if (palloc_charge(n)) return align <= 8 ? mi_malloc(n) : mi_malloc_aligned(n, align);
  return palloc_alloc_slow(n, align, false);
}

PALLOC_TEXT int palloc_posix_memalign(void **out, size_t align, size_t n) {
  if (!pow2(align) || align % sizeof(void *) != 0) return EINVAL;
  void *p = aligned(align, n);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

PALLOC_TEXT void *palloc_aligned_alloc(size_t align, size_t n) {
  if (!pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return aligned(align, n);
}

PALLOC_TEXT void *palloc_memalign(size_t align, size_t n) {
  if (align > ((size_t)1 << 62)) {
    errno = EINVAL;
    return NULL;
  }
  if (!pow2(align)) align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(align - 1));
  return aligned(align, n);
}

PALLOC_TEXT void *palloc_aligned(size_t align, size_t n) { return aligned(align, n); }

PALLOC_TEXT void *palloc_valloc(size_t n) { return aligned((size_t)getpagesize(), n); }

PALLOC_TEXT void *palloc_pvalloc(size_t n) {
  size_t page = (size_t)getpagesize();
  size_t rounded;
  if (__builtin_add_overflow(n, page - 1, &rounded)) {
    errno = ENOMEM;
    return NULL;
  }
  rounded &= ~(page - 1);
  return aligned(page, rounded ? rounded : page);
}


/* Sampled blocks are ordinary mimalloc blocks: one answer for every block. */
size_t palloc_malloc_usable_size(const void *p) { return p == NULL ? 0 : mi_usable_size(p); }

#ifdef PALLOC_OVERRIDE
#define ALIAS(name) __attribute__((alias(#name), visibility("default")))
void *malloc(size_t n) ALIAS(palloc_malloc);
void free(void *p) ALIAS(palloc_free);
void *calloc(size_t c, size_t n) ALIAS(palloc_calloc);
void *realloc(void *p, size_t n) ALIAS(palloc_realloc);
void *reallocarray(void *p, size_t c, size_t n) ALIAS(palloc_reallocarray);
int posix_memalign(void **out, size_t a, size_t n) ALIAS(palloc_posix_memalign);
void *aligned_alloc(size_t a, size_t n) ALIAS(palloc_aligned_alloc);
void *memalign(size_t a, size_t n) ALIAS(palloc_memalign);
void *valloc(size_t n) ALIAS(palloc_valloc);
void *pvalloc(size_t n) ALIAS(palloc_pvalloc);
size_t malloc_usable_size(void *p) ALIAS(palloc_malloc_usable_size);
void cfree(void *p) ALIAS(palloc_free);
/* glibc's internal names: a few programs and libraries call these directly. */
void *__libc_malloc(size_t n) ALIAS(palloc_malloc);
void __libc_free(void *p) ALIAS(palloc_free);
void *__libc_calloc(size_t c, size_t n) ALIAS(palloc_calloc);
void *__libc_realloc(void *p, size_t n) ALIAS(palloc_realloc);
void *__libc_memalign(size_t a, size_t n) ALIAS(palloc_memalign);
void *__libc_valloc(size_t n) ALIAS(palloc_valloc);
void *__libc_pvalloc(size_t n) ALIAS(palloc_pvalloc);
int __posix_memalign(void **out, size_t a, size_t n) ALIAS(palloc_posix_memalign);
/* C23's sized frees. glibc's, where it has them, free with glibc's own free, which would be
 * handed palloc's blocks: whoever replaces free must define them too. They are free here (see
 * palloc_free_sized for why the size is not used); the unused arguments are left undeclared, as
 * for the operators below. */
void palloc_c23_free_sized(void *p) __asm__("free_sized") ALIAS(palloc_free);
void palloc_c23_free_aligned_sized(void *p) __asm__("free_aligned_sized") ALIAS(palloc_free);

/* C++'s operator delete, all ten (the news are in cxxops.c, which says why palloc defines them):
 * the Itanium ABI names, with the arguments the functions do not use left undeclared. */
#define CXXDELETE(mangled, target) __asm__(#mangled) ALIAS(target)
void palloc_op_delete(void *p) CXXDELETE(_ZdlPv, palloc_free);
void palloc_op_delete_array(void *p) CXXDELETE(_ZdaPv, palloc_free);
void palloc_op_delete_sized(void *p, size_t n) CXXDELETE(_ZdlPvm, palloc_free_sized);
void palloc_op_delete_array_sized(void *p, size_t n) CXXDELETE(_ZdaPvm, palloc_free_sized);
void palloc_op_delete_nt(void *p) CXXDELETE(_ZdlPvRKSt9nothrow_t, palloc_free);
void palloc_op_delete_array_nt(void *p) CXXDELETE(_ZdaPvRKSt9nothrow_t, palloc_free);
/* Aligned: palloc_free's size lookup, sized or not (palloc_free_sized says why). */
void palloc_op_delete_al(void *p) CXXDELETE(_ZdlPvSt11align_val_t, palloc_free);
void palloc_op_delete_array_al(void *p) CXXDELETE(_ZdaPvSt11align_val_t, palloc_free);
void palloc_op_delete_sized_al(void *p) CXXDELETE(_ZdlPvmSt11align_val_t, palloc_free);
void palloc_op_delete_array_sized_al(void *p) CXXDELETE(_ZdaPvmSt11align_val_t, palloc_free);
void palloc_op_delete_al_nt(void *p) CXXDELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, palloc_free);
void palloc_op_delete_array_al_nt(void *p)
    CXXDELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, palloc_free);
#endif
