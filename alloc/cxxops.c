/* cxxops.c - the C++ global allocation operators: every replaceable operator new and delete.
 *
 * Why palloc has its own. libstdc++'s operator new calls malloc, so it would be profiled through
 * palloc's malloc - but only while no other library that defines operator new comes before
 * libstdc++ in the process's symbol lookup order. libmimalloc.so, tcmalloc and others do define
 * it, and then every C++ allocation bypasses palloc. Defining all of them here makes palloc's
 * the operators the process binds whenever palloc's malloc is the malloc it binds (both come
 * from the same object, first in lookup order), and takes libstdc++'s extra call out of every
 * new and delete.
 *
 * Written in C: a C program linked with -lpalloc or run with LD_PRELOAD must not need
 * libstdc++. The functions carry their Itanium C++ ABI (x86-64) names as assembler names:
 *
 *   new     _Znwm  _ZnwmRKSt9nothrow_t  _ZnwmSt11align_val_t  _ZnwmSt11align_val_tRKSt9nothrow_t
 *   new[]   _Znam  _ZnamRKSt9nothrow_t  _ZnamSt11align_val_t  _ZnamSt11align_val_tRKSt9nothrow_t
 *   delete  _ZdlPv _ZdlPvm _ZdlPvRKSt9nothrow_t _ZdlPvSt11align_val_t _ZdlPvmSt11align_val_t
 *           _ZdlPvSt11align_val_tRKSt9nothrow_t
 *   delete[] the same with _Zda
 *
 * (m is std::size_t, unsigned long; std::align_val_t is an enum of std::size_t, passed as one.)
 * An argument the function does not use (the nothrow_t reference, a delete's alignment) is
 * simply not declared: on x86-64 a callee may ignore trailing register arguments, so each name
 * is an alias of one of a few functions, with no wrapper.
 *
 * Contracts ([new.delete] of the C++ standard). new never returns NULL: on failure it calls
 * the installed new_handler and tries again, for as long as there is one, and throws
 * std::bad_alloc once there is none. A nothrow new returns NULL where the throwing one would
 * throw, handler included (below). Aligned new returns a block aligned exactly as asked
 * (palloc's aligned path, sampled like any other). new(0) returns a unique pointer (mimalloc's
 * malloc(0)). delete(NULL) does nothing. new[] and delete[] are new and delete: libstdc++'s do
 * the same.
 *
 * libstdc++ is reached by name, at the failure only: a weak reference resolves when libpalloc
 * is loaded, which misses a libstdc++ that comes later with a dlopen'ed C++ plugin, so dlsym
 * backs it up. Without libstdc++ in the process there is nothing to throw: palloc then prints
 * one palloc: line and aborts, which only a C program calling _Znwm by hand can meet.
 *
 * Sized delete: see palloc_free_sized (entry.c).
 */
#include <dlfcn.h>
#include <stdlib.h>
#include "internal.h"

typedef void (*palloc_new_handler_t)(void);

/* libstdc++, if it was loaded with the program. */
extern palloc_new_handler_t palloc_get_new_handler(void)
    __asm__("_ZSt15get_new_handlerv") __attribute__((weak));
extern void palloc_throw_bad_alloc(void)
    __asm__("_ZSt17__throw_bad_allocv") __attribute__((weak, noreturn));

static void *cxx_symbol(void *weak, const char *name, const char *version) {
  if (weak != NULL) return weak;
  return version ? dlvsym(RTLD_DEFAULT, name, version) : dlsym(RTLD_DEFAULT, name);
}

static palloc_new_handler_t new_handler(void) {
  palloc_new_handler_t (*get)(void) =
      (palloc_new_handler_t (*)(void))cxx_symbol((void *)palloc_get_new_handler,
                                                 "_ZSt15get_new_handlerv", NULL);
  return get ? get() : NULL;
}

static __attribute__((noreturn)) void throw_bad_alloc(size_t n) {
  void (*thr)(void) = (void (*)(void))cxx_symbol((void *)palloc_throw_bad_alloc,
                                                 "_ZSt17__throw_bad_allocv", NULL);
  if (thr != NULL) thr();
  palloc_warn("operator new(%zu) failed and there is no libstdc++ to throw std::bad_alloc", n);
  abort();
}

/* One try of an allocation of n bytes aligned to align (0: malloc's alignment): entry.c's
 * malloc and aligned paths. NULL if out of memory. */
static inline __attribute__((always_inline)) void *try_alloc(size_t n, size_t align) {
  return align == 0 ? palloc_malloc_hidden(n) : palloc_aligned(align, n);
}

/* The throwing new after a failed first try: the new_handler loop. */
static PALLOC_TEXT __attribute__((cold)) void *new_retry(size_t n, size_t align) {
  for (;;) {
    palloc_new_handler_t h = new_handler();
    if (h == NULL) throw_bad_alloc(n);
    h();
    void *p = try_alloc(n, align);
    if (p != NULL) return p;
  }
}

/* A nothrow new after a failed first try. The standard defines it as the throwing new inside a
 * try block, so a handler that throws std::bad_alloc (a common one does) must end in NULL, and
 * C cannot catch. With a handler installed the request therefore goes to libstdc++'s own nothrow
 * operator (dlvsym by version: that one, not palloc's, which has no version), which calls the
 * throwing operator new - palloc's, the one the process binds - inside a try block. Only if
 * that cannot be found (libstdc++ linked statically) is the handler called from here, where an
 * exception it throws would escape a noexcept function. */
static PALLOC_TEXT __attribute__((cold)) void *nothrow_retry(size_t n, size_t align) {
  if (new_handler() == NULL) return NULL;
  static void *_Atomic via[2];
  int k = align != 0;
  void *f = atomic_load_explicit(&via[k], memory_order_relaxed);
  if (f == NULL) {
    f = k ? dlvsym(RTLD_DEFAULT, "_ZnwmSt11align_val_tRKSt9nothrow_t", "CXXABI_1.3.11")
          : dlvsym(RTLD_DEFAULT, "_ZnwmRKSt9nothrow_t", "GLIBCXX_3.4");
    atomic_store_explicit(&via[k], f, memory_order_relaxed);
  }
  static const char nothrow_tag = 0; /* std::nothrow_t is empty; its reference is unused */
  if (f != NULL) {
    if (k) return ((void *(*)(size_t, size_t, const void *))f)(n, align, &nothrow_tag);
    return ((void *(*)(size_t, const void *))f)(n, &nothrow_tag);
  }
  for (;;) {
    palloc_new_handler_t h = new_handler();
    if (h == NULL) return NULL;
    h();
    void *p = try_alloc(n, align);
    if (p != NULL) return p;
  }
}

PALLOC_TEXT void *palloc_new(size_t n) {
  void *p = try_alloc(n, 0);
  return palloc_likely(p != NULL) ? p : new_retry(n, 0);
}

PALLOC_TEXT void *palloc_new_nothrow(size_t n) {
  void *p = try_alloc(n, 0);
  return palloc_likely(p != NULL) ? p : nothrow_retry(n, 0);
}

PALLOC_TEXT void *palloc_new_aligned(size_t n, size_t align) {
  void *p = try_alloc(n, align);
  return palloc_likely(p != NULL) ? p : new_retry(n, align);
}

PALLOC_TEXT void *palloc_new_aligned_nothrow(size_t n, size_t align) {
  void *p = try_alloc(n, align);
  return palloc_likely(p != NULL) ? p : nothrow_retry(n, align);
}

#ifdef PALLOC_OVERRIDE
/* The deletes are aliases of palloc_free and palloc_free_sized, so they are exported next to
 * them, in entry.c. */
#define CXXOP(mangled, target) __asm__(#mangled) __attribute__((alias(#target), visibility("default")))
void *palloc_op_new(size_t n) CXXOP(_Znwm, palloc_new);
void *palloc_op_new_array(size_t n) CXXOP(_Znam, palloc_new);
void *palloc_op_new_nt(size_t n) CXXOP(_ZnwmRKSt9nothrow_t, palloc_new_nothrow);
void *palloc_op_new_array_nt(size_t n) CXXOP(_ZnamRKSt9nothrow_t, palloc_new_nothrow);
void *palloc_op_new_al(size_t n, size_t a) CXXOP(_ZnwmSt11align_val_t, palloc_new_aligned);
void *palloc_op_new_array_al(size_t n, size_t a) CXXOP(_ZnamSt11align_val_t, palloc_new_aligned);
void *palloc_op_new_al_nt(size_t n, size_t a)
    CXXOP(_ZnwmSt11align_val_tRKSt9nothrow_t, palloc_new_aligned_nothrow);
void *palloc_op_new_array_al_nt(size_t n, size_t a)
    CXXOP(_ZnamSt11align_val_tRKSt9nothrow_t, palloc_new_aligned_nothrow);
#endif
