/* stack.c - capturing the return addresses of a sampled allocation.
 *
 * Three unwinders:
 *  - the .eh_frame walk (default, cfi.c): call-frame rules decoded once per return address into
 *    a table that all threads share. A stack it cannot follow exactly goes to libunwind.
 *  - libunwind (PALLOC_UNWIND=libunwind, and the walk's fallback): unw_backtrace, local-only,
 *    with libunwind's per-thread cache (256 KiB per thread). Correct for code without frame
 *    pointers (it reads .eh_frame), at a cost per frame.
 *  - PALLOC_UNWIND=fp: a frame-pointer walk, several times faster, for programs built with
 *    -fno-omit-frame-pointer. Every frame pointer is checked against the thread's stack bounds,
 *    alignment and monotonic growth before it is read, so a frame without a frame pointer ends
 *    the walk early instead of faulting.
 *
 * palloc's own frames are removed by address: every function on the allocation path is placed
 * in the "palloc_text" section (PALLOC_TEXT), whose bounds the linker provides, so the rule holds
 * for the shared library, the static library and any inlining decision. The unwinder's own frames
 * (if any) come before palloc's and are dropped with them.
 *
 * libunwind is not linked: it is loaded (dlopen "libunwind.so.8", which brings liblzma) by the
 * first sampled allocation that needs it (under the default unwinder, the first stack the walk
 * leaves to it; many processes never load it), so that the many short processes of a build or a
 * script, which mostly never sample, do not pay for mapping and relocating both (about a sixth
 * of a preloaded exec's start-up: tests/bench/startup.py). Loading inside malloc is made safe
 * thus:
 *  - nobody waits for it: the one thread that moves unw_state from UNLOADED to LOADING loads;
 *    a thread that samples meanwhile takes that one stack by the frame-pointer walk. So no
 *    thread ever waits on palloc while holding the loader's lock (a thread inside dlopen whose
 *    constructor allocates cannot deadlock against a thread that is loading libunwind), and no
 *    palloc lock is held while loading (take_sample holds none; unwind_lock is not taken);
 *  - never from inside the dynamic loader: an allocation whose caller is ld.so's own code (link
 *    maps, scopes, dynamic TLS, while ld.so is half-way through loading or relocating an object)
 *    does not load; that stack is walked by frame pointers. Loading from a constructor that a
 *    dlopen runs is a nested dlopen, which glibc supports;
 *  - its allocations are palloc's own (the guard is held: unsampled);
 *  - fork: the child of a fork taken while another thread was loading starts UNLOADED again
 *    (the loading thread does not exist there);
 *  - if it cannot be loaded, one palloc: line, and every stack is taken by the walk.
 * The first sample of a process pays for the load once (a few hundred microseconds).
 *
 * Linked unwinders: unw_backtrace and libgcc's _Unwind_Backtrace are weak references, NULL
 * unless the program links them, so libpalloc.so needs neither. The first sample takes, in order:
 *  - unw_backtrace if the program links libunwind (a dynamic program that links libpalloc.a
 *    and -lunwind, or whose own libraries bring libunwind);
 *  - in a statically linked program (no dynamic loader: AT_BASE is 0), where a dlopen would
 *    bring a second libc, _Unwind_Backtrace, which `pkg-config --static --libs palloc` pulls
 *    from libgcc_eh.a (through libpalloc_links.a: links.c). libgcc's unwinder reads .eh_frame
 *    as libunwind does; it is the one a static C++ program has anyway, and libunwind.a cannot
 *    be linked into one: it defines _Unwind_Resume and the rest of that ABI too, which clash
 *    with libgcc_eh.a's. When it may start: gcc_unwinder_ready;
 *  - otherwise the dlopen above (a dynamic program), or, in a static program linked without
 *    either, one palloc: line and the frame-pointer walk.
 *
 * Fork: libunwind guards its caches with mutexes of its own and has no fork handlers, so a fork
 * while another thread is inside unw_backtrace left the child with a lock nobody would release,
 * and the child's first sample hung (seen in test_process: 1 child in ~1,200). Every
 * unw_backtrace runs under the read side of unwind_lock, and palloc's fork handler (lifecycle.c)
 * takes the write side: no thread is inside libunwind when the process forks. The lock prefers writers,
 * so a stream of samples cannot hold a fork off; nothing takes another palloc lock inside it.
 * Both sides are taken under the thread's guard, so a signal handler that allocates on the same
 * thread meanwhile is not sampled and never asks for it again (internal.h).
 */
#include <dlfcn.h>
#include <sched.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <unwind.h>
#include "internal.h"

/* Weak: see the top of this file (libunwind-common.h declares unw_backtrace so). */
extern int unw_backtrace(void **buf, int max) __attribute__((weak));
#pragma weak _Unwind_Backtrace
#pragma weak _Unwind_GetIP
/* libgcc's FDE lookup (unwind-dw2-fde.h, exported since GCC 3.0); bases: text, data, function. */
extern const void *_Unwind_Find_FDE(void *pc, void *bases[3]) __attribute__((weak));

#define LIBUNWIND_SONAME "libunwind.so.8"

static pthread_rwlock_t unwind_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

enum { UNW_UNLOADED, UNW_LOADING, UNW_READY, UNW_FAILED };
static _Atomic int unw_state;
static int (*unw_backtrace_fn)(void **buf, int max);  /* set before unw_state = UNW_READY */

/* Set on the thread that loads libunwind, while it loads. */
static __thread bool loading_here __attribute__((tls_model("initial-exec")));

/* A fork while another thread is inside the dlopen of libunwind would give the child the
 * loader's half-updated state (its link-map list not RT_CONSISTENT), and the child's own first
 * sample, which loads libunwind again, then stops on ld.so's assertion in dl_open_worker_begin
 * (tests/gcsim/whatif_fork.c, debug build: about 1 run in 20). So the fork waits for the load
 * to end: the loading thread holds no palloc lock and waits on none (the top of this file). Not
 * when the forking thread is the loading one (a signal handler on it): it would wait for itself,
 * and its child starts UNLOADED as before. */
void palloc_stack_fork_prepare(void) {
  while (!loading_here && atomic_load_explicit(&unw_state, memory_order_acquire) == UNW_LOADING)
    sched_yield();
  pthread_rwlock_wrlock(&unwind_lock);
}
void palloc_stack_fork_parent(void) { pthread_rwlock_unlock(&unwind_lock); }
/* Not an unlock: glibc knows a write-locked rwlock's owner by thread id, which is new in the
 * child, so the unlock would be taken for a reader's. The child has one thread: start afresh. */
void palloc_stack_fork_child(void) {
  pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  unwind_lock = fresh;
  int loading = UNW_LOADING;
  atomic_compare_exchange_strong(&unw_state, &loading, UNW_UNLOADED);
}

static int unwind(uintptr_t *buf, int max) {
  pthread_rwlock_rdlock(&unwind_lock);
  int n = unw_backtrace_fn((void **)buf, max);
  pthread_rwlock_unlock(&unwind_lock);
  return n;
}

extern char __start_palloc_text[] __attribute__((weak));
extern char __stop_palloc_text[] __attribute__((weak));

static inline bool ours(uintptr_t pc) {
  return pc >= (uintptr_t)__start_palloc_text && pc < (uintptr_t)__stop_palloc_text;
}

static void stack_bounds(palloc_thread_t *t) {
  pthread_attr_t attr;
  void *addr;
  size_t size;
  t->stack_hi = 1; /* computed (even if it fails: then the walk stops at once) */
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
    t->stack_lo = (uintptr_t)addr;
    t->stack_hi = (uintptr_t)addr + size;
  }
  pthread_attr_destroy(&attr);
}

/* The walk reads only the 16 bytes [fp, fp + 16) of frames that lie inside [lo, hi), and each
 * frame must be above the one before it. The first frame is the caller's own, on the stack this
 * code runs on, and a stack's pages between a live frame and its top stay mapped, so every read
 * is of mapped memory whatever the frame pointers hold (a program's rbp may be any value: -16
 * was seen in python3's Py_FinalizeEx). Every bound is a comparison of values that cannot wrap:
 * top = hi - 16 is computed once, after checking hi - lo >= 16, and fp + 16 is formed only for
 * fp <= top. A first frame outside [lo, hi) (a signal handler on an alternate stack, a coroutine
 * on a stack of its own) or unknown bounds (lo = hi) end the walk before any read. */
PALLOC_TEXT int palloc_fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *buf, int max) {
  if (hi < lo || hi - lo < 2 * sizeof(uintptr_t)) return 0;
  const uintptr_t top = hi - 2 * sizeof(uintptr_t); /* the highest frame whose 16 bytes fit */
  int n = 0;
  while (n < max) {
    if (fp < lo || fp > top || (fp & (sizeof(uintptr_t) - 1)) != 0) break;
    uintptr_t next = ((const uintptr_t *)fp)[0];
    uintptr_t ret = ((const uintptr_t *)fp)[1];
    if (ret < 4096) break;
    buf[n++] = ret;
    if (next < fp + 2 * sizeof(uintptr_t)) break; /* a frame lies above the one it called */
    fp = next;
  }
  return n;
}

__attribute__((optimize("no-omit-frame-pointer"))) PALLOC_TEXT static int
fp_walk(uintptr_t *buf, int max) {
  palloc_thread_t *t = &palloc_thread;
  if (t->stack_hi == 0) stack_bounds(t);
  return palloc_fp_walk((uintptr_t)__builtin_frame_address(0), t->stack_lo, t->stack_hi, buf, max);
}

/* buf[0..n) without the unwinder's and palloc's frames, at most max, into pcs. */
PALLOC_TEXT static int strip_ours(const uintptr_t *buf, int n, uintptr_t *pcs, int max) {
  int i = 0;
  while (i < n && !ours(buf[i])) i++;
  if (i == n) i = 0; /* no palloc frame found (cannot happen on the allocation path) */
  while (i < n && ours(buf[i])) i++;
  int k = 0;
  for (; i < n && k < max; i++) pcs[k++] = buf[i];
  return k;
}

/* Whether pc is in the dynamic loader's code (the executable PT_LOAD of the object at AT_BASE;
 * none in a static program). */
static bool in_ldso(uintptr_t pc) {
  uintptr_t base = (uintptr_t)getauxval(AT_BASE);
  if (base == 0) return false;
  const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
  const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
  for (int i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X)) continue;
    if (pc >= base + ph[i].p_vaddr && pc < base + ph[i].p_vaddr + ph[i].p_memsz) return true;
  }
  return false;
}

/* _Unwind_Backtrace with unw_backtrace's contract: the return addresses from its caller's frame
 * outwards, at most max. */
struct gcc_trace { void **buf; int n, max; };

static _Unwind_Reason_Code gcc_trace_frame(struct _Unwind_Context *ctx, void *arg) {
  struct gcc_trace *t = arg;
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0 || t->n >= t->max) return _URC_END_OF_STACK;
  t->buf[t->n++] = (void *)ip;
  return _URC_NO_REASON;
}

static int gcc_backtrace(void **buf, int max) {
  struct gcc_trace t = { buf, 0, max };
  _Unwind_Backtrace(gcc_trace_frame, &t);
  return t.n;
}

/* Whether libgcc's unwinder can run in this static program yet. glibc allocates inside
 * __libc_start_main, before any constructor, while it sets up what the unwinder reads
 * (_dl_non_dynamic_init, _dl_find_object_init: a lookup from there faults), so not before the
 * constructors run; and _Unwind_Backtrace aborts the process if it finds no FDE for its own
 * frame: the program's FDEs are found through PT_GNU_EH_FRAME (`pkg-config --static` passes
 * --eh-frame-hdr, which gcc does only for dynamic links) or once crtbeginT.o's constructor has
 * registered .eh_frame. Until then the frame-pointer walk, and the next sample asks again.
 *
 * libgcc sorts a registered .eh_frame at its first lookup, with malloc, holding its
 * object_mutex. Were that lookup a C++ exception's, a sample of that malloc would unwind and
 * take object_mutex again: a deadlock. So palloc's constructor makes the first lookup itself
 * (crtbeginT.o's registration comes before it in the link, so it has run), before it lets
 * samples use the unwinder; later lookups allocate nothing. */
static _Atomic bool constructors_started;
__attribute__((constructor)) static void note_constructors_started(void) {
  if (getauxval(AT_BASE) == 0 && unw_backtrace == NULL && _Unwind_Backtrace != NULL &&
      _Unwind_Find_FDE != NULL) {
    void *bases[3];
    _Unwind_Find_FDE((char *)(uintptr_t)_Unwind_Backtrace + 1, bases);
  }
  atomic_store_explicit(&constructors_started, true, memory_order_release);
}

static bool gcc_unwinder_ready(void) {
  if (!atomic_load_explicit(&constructors_started, memory_order_acquire)) return false;
  void *bases[3];
  return _Unwind_Find_FDE((char *)(uintptr_t)_Unwind_Backtrace + 1, bases) != NULL;
}

/* UNW_READY (unw_backtrace_fn is set), UNW_FAILED, or UNW_UNLOADED: not yet, try again. */
static int load_libunwind(void) {
  if (unw_backtrace != NULL) { /* linked */
    unw_backtrace_fn = unw_backtrace;
    return UNW_READY;
  }
  if (getauxval(AT_BASE) == 0) { /* static: no dlopen (top of this file) */
    if (_Unwind_Backtrace != NULL && _Unwind_GetIP != NULL && _Unwind_Find_FDE != NULL) {
      if (!gcc_unwinder_ready()) return UNW_UNLOADED;
      unw_backtrace_fn = gcc_backtrace;
      return UNW_READY;
    }
    palloc_warn("this static program links no unwinder; stacks are taken by the frame-pointer "
                "walk (link libpalloc.a with `pkg-config --static --libs palloc`)");
    return UNW_FAILED;
  }
  void *h = dlopen(LIBUNWIND_SONAME, RTLD_NOW | RTLD_LOCAL);
  void *f = h ? dlsym(h, "unw_backtrace") : NULL;
  if (f == NULL) {
    const char *why = dlerror();
    palloc_warn("cannot load libunwind (%s); stacks are taken by the frame-pointer walk",
                why ? why : LIBUNWIND_SONAME);
    return UNW_FAILED;
  }
  unw_backtrace_fn = (int (*)(void **, int))f;
  return UNW_READY;
}

/* The stack of a sample taken before libunwind is loaded: loads it (see the top of this file)
 * unless another thread is loading it or the allocation comes from the dynamic loader; until
 * then the frame-pointer walk. Its frames are palloc's (dropped by the caller). */
PALLOC_TEXT static int unwind_first(uintptr_t *buf, int want) {
  int n = fp_walk(buf, want);
  int i = 0;
  while (i < n && !ours(buf[i])) i++;
  while (i < n && ours(buf[i])) i++;
  if (i >= n || in_ldso(buf[i])) return n; /* the caller is ld.so (or unknown): not now */
  int expected = UNW_UNLOADED;
  if (!atomic_compare_exchange_strong(&unw_state, &expected, UNW_LOADING))
    return expected == UNW_READY ? unwind(buf, want) : n;
  loading_here = true;
  int st = load_libunwind();
  loading_here = false;
  atomic_store_explicit(&unw_state, st, memory_order_release);
  return st == UNW_READY ? unwind(buf, want) : n;
}

/* PALLOC_UNWIND=fp in a program built without frame pointers gives one-frame stacks: the walk
 * stops at the first frame of the program, whose saved frame pointer is some other value. That
 * is detected once, cheaply: of the first FP_CHECK fp stacks, if most were at most one frame
 * deep, the last of them is also unwound by libunwind, and if libunwind finds FP_MORE frames more,
 * one palloc: line says so. The sampling goes on with fp, as asked. */
enum { FP_CHECK = 16, FP_MORE = 3 };
static _Atomic int fp_seen, fp_shallow;

__attribute__((noinline)) PALLOC_TEXT static void fp_check(int depth) {
  if (depth <= 1) atomic_fetch_add_explicit(&fp_shallow, 1, memory_order_relaxed);
  if (atomic_fetch_add_explicit(&fp_seen, 1, memory_order_relaxed) + 1 != FP_CHECK) return;
  int shallow = atomic_load_explicit(&fp_shallow, memory_order_relaxed);
  if (shallow < FP_CHECK * 3 / 4) return;
  uintptr_t buf[PALLOC_MAX_DEPTH + 24], pcs[PALLOC_MAX_DEPTH];
  int want = PALLOC_MAX_DEPTH + 24;
  int st = atomic_load_explicit(&unw_state, memory_order_acquire);
  int lu = st == UNW_FAILED ? 0 : st == UNW_READY ? unwind(buf, want) : unwind_first(buf, want);
  lu = strip_ours(buf, lu, pcs, PALLOC_MAX_DEPTH);
  if (lu >= depth + FP_MORE)
    palloc_warn("PALLOC_UNWIND=fp: %d of the first %d stacks were at most 1 frame deep, where "
                "libunwind finds %d: the program has no frame pointers (build it with "
                "-fno-omit-frame-pointer, or use PALLOC_UNWIND=libunwind)",
                shallow, FP_CHECK, lu);
}

/* The .eh_frame walk from this function's caller (cfi.c), without palloc's frames: the
 * program's return addresses straight into pcs; -1: libunwind must take the stack. */
__attribute__((optimize("no-omit-frame-pointer"))) PALLOC_TEXT static int
cfi_walk(uintptr_t *pcs, int max) {
  palloc_thread_t *t = &palloc_thread;
  if (t->stack_hi == 0) stack_bounds(t);
  return palloc_cfi_walk_from((uintptr_t)__builtin_frame_address(0), t->stack_lo, t->stack_hi,
                              (uintptr_t)__start_palloc_text, (uintptr_t)__stop_palloc_text,
                              pcs, max);
}

/* Whether the .eh_frame walk may run now. It looks objects up with _dl_find_object, whose
 * tables the dynamic loader builds while it relocates (an allocation from ld.so's own code may
 * come before that: such a sample is walked by frame pointers, as unwind_first does) and which a
 * static program's libc builds in __libc_start_main (there the walk waits for the constructors,
 * as libgcc's unwinder does). */
PALLOC_TEXT static bool cfi_ready(uintptr_t *buf, int want) {
  if (atomic_load_explicit(&constructors_started, memory_order_acquire))
    return palloc_cfi_available();
  if (getauxval(AT_BASE) == 0 || !palloc_cfi_available()) return false;
  int n = fp_walk(buf, want), i = 0;
  while (i < n && !ours(buf[i])) i++;
  while (i < n && ours(buf[i])) i++;
  return i < n && !in_ldso(buf[i]);
}

PALLOC_TEXT int palloc_stack_capture(uintptr_t *pcs, int max) {
  uintptr_t buf[PALLOC_MAX_DEPTH + 24];
  int want = max + 24;
  if (palloc_likely(palloc_g.unwind == PALLOC_UNWIND_CFI) && cfi_ready(buf, want)) {
    int k = cfi_walk(pcs, max);
    if (palloc_likely(k >= 0)) return k;
  }
  int st = atomic_load_explicit(&unw_state, memory_order_acquire);
  int n = palloc_g.unwind == PALLOC_UNWIND_FP || st == UNW_FAILED ? fp_walk(buf, want)
          : st == UNW_READY                                       ? unwind(buf, want)
                                                                  : unwind_first(buf, want);
  int k = strip_ours(buf, n, pcs, max);
  if (palloc_g.unwind == PALLOC_UNWIND_FP &&
      atomic_load_explicit(&fp_seen, memory_order_relaxed) < FP_CHECK)
    fp_check(k);
  return k;
}
