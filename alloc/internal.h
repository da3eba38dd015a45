/* internal.h - libpalloc's internal interfaces (not installed).
 *
 * The design in one paragraph. Every thread keeps a byte budget in initial-exec TLS; malloc
 * subtracts the request size and, while the budget lasts, calls mimalloc directly: that is the
 * whole unsampled path. When it goes negative the allocation is sampled: it is an ordinary
 * mimalloc block, entered with its {bucket, size} in the registry of live sampled blocks
 * (registry.c), whose page map gives free() its answer in one load: a zero count for the block's
 * page means "not sampled", with no lock and no table probe. Buckets (bucket.c) are keyed by
 * (stack, size), inserted lock-free and never freed, as in Go's mprof.go. Everything palloc
 * allocates for itself comes from mmap (meta.c, registry.c), never from the profiled heap.
 *
 * Reentrancy: palloc_thread_t.guard > 0 while palloc itself runs (unwinding, writing a profile);
 * any malloc made then is served by mimalloc unsampled, and the countdown is restored after.
 *
 * Signal handlers that allocate (undefined in POSIX, common in practice) interrupt a thread at any
 * instruction, and run palloc again on that thread. Nothing a handler does may wait for palloc
 * state the interrupted code holds, nor see a per-thread structure half-updated:
 *  - every palloc lock a thread can hold (registry stripes, unwinder, metadata, thread-cache
 *    slot arrays, profile writer, fork handlers) is taken only under the guard (the registry's
 *    enters it itself), so a handler's allocations are then unsampled and take no palloc lock;
 *  - a handler's free of a possibly sampled block while its thread is inside the registry is
 *    deferred (registry.c): the block stays allocated and registered until the interrupted
 *    registry call leaves, which then unregisters and frees it;
 *  - the thread cache's bins are changed only with tc_busy set; a handler finding it set goes
 *    to mimalloc directly (palloc_tc_pop / palloc_tc_free);
 *  - the budget is charged with one read-modify-write, and the guard saves and restores it in an
 *    order a nested handler cannot disturb (palloc_guard_enter / palloc_guard_exit).
 * mimalloc itself is not made reentrant by any of this: a handler that allocates while its thread
 * is inside mimalloc can corrupt mimalloc's page (tests/alloc/test_signal.c measured it).
 */
#ifndef PALLOC_INTERNAL_H
#define PALLOC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mimalloc.h>
#include "palloc.h"
#include "palloc_assert.h" /* palloc_assert: proto/palloc_assert.h */

/* Everything declared here is internal to libpalloc: hidden symbols are reached directly, not
 * through the GOT, which matters on the malloc/free fast paths. */
#pragma GCC visibility push(hidden)

#define PALLOC_TEXT __attribute__((section("palloc_text"), noinline))
/* The two fast-path checks (palloc_charge, palloc_maybe_sampled) are x86-64 assembly; another
 * architecture, or -DPALLOC_NO_ASM, compiles their C versions. */
#if defined(__x86_64__) && !defined(PALLOC_NO_ASM)
#define PALLOC_ASM 1
#else
#define PALLOC_ASM 0
#endif
#if defined(__SANITIZE_THREAD__)
#define PALLOC_TSAN 1
#elif defined(__has_feature)
#define PALLOC_TSAN __has_feature(thread_sanitizer)
#else
#define PALLOC_TSAN 0
#endif
#define palloc_likely(x) __builtin_expect(!!(x), 1)
#define palloc_unlikely(x) __builtin_expect(!!(x), 0)

#define PALLOC_MAX_DEPTH 128

/* PALLOC_UNWIND's values (options.c's words). */
enum { PALLOC_UNWIND_CFI = 0, PALLOC_UNWIND_FP = 1, PALLOC_UNWIND_LIBUNWIND = 2 };

/* ---- per-thread state (countdown.c) ------------------------------------------------------ */
enum { PALLOC_T_NEW = 0, PALLOC_T_LIVE = 1, PALLOC_T_DEAD = 2 };

/* The thread cache (tcache.c): free blocks of mimalloc's size classes up to PALLOC_TC_MAX, a
 * stack of pointers per class. A class holds about PALLOC_TC_BIN_BYTES, and between
 * PALLOC_TC_MIN and PALLOC_TC_MAX_COUNT blocks. */
#ifndef PALLOC_TC_MAX /* -D for experiments; the defaults are measured (tests/bench/FINDINGS.md) */
#define PALLOC_TC_MAX 2048
#endif
#define PALLOC_TC_CLASSES 32
#ifndef PALLOC_TC_BIN_BYTES
#define PALLOC_TC_BIN_BYTES 16384
#endif
#define PALLOC_TC_MIN 8
#ifndef PALLOC_TC_MAX_COUNT
#define PALLOC_TC_MAX_COUNT 64
#endif
typedef struct {
  uint32_t n;   /* blocks held: slot[0..n), the newest last */
  uint32_t cap; /* 0: this thread caches nothing (not set up, or exiting) */
  void **slot;
} palloc_tc_bin_t;

typedef struct palloc_thread_s {
  /* Bytes this thread may still allocate before its next sample is due. An allocation of n bytes
   * stays unsampled iff n < budget, and charges n either way (so a slow path finds budget - n,
   * wrapped). 0 sends every allocation, even of size 0, to the slow path. Only this thread
   * touches it; the charge is one read-modify-write instruction (palloc_charge), so a signal
   * handler on this thread sees the budget before or after it, never half of it. The slow paths
   * read and write it through palloc_countdown / palloc_set_countdown. */
  _Atomic uint64_t budget;
  palloc_tc_bin_t tc[PALLOC_TC_CLASSES]; /* the thread cache, on the fast paths too */
  /* 1 while this thread changes its bins: a signal handler that interrupts a push or pop must
   * not touch them (nor can it wait), so it bypasses the cache. Set and cleared by this thread
   * only, between compiler barriers (palloc_tc_enter); a handler leaves it as it found it. */
  uint8_t tc_busy;
  uint8_t in_registry;   /* 1 while this thread may hold a registry stripe lock (registry.c) */
  void *_Atomic deferred; /* frees deferred by signal handlers, linked through their blocks */
  uint32_t guard;        /* > 0 while palloc's own code runs on this thread */
  uint8_t state;         /* PALLOC_T_* */
  uint8_t is_main;
  uint32_t rate_epoch;   /* palloc_g.rate_epoch when the countdown was drawn */
  uint64_t saved_budget; /* budget at guard entry, restored at exit */
  uint64_t rng;          /* xorshift64* state */
  uintptr_t stack_lo, stack_hi; /* bounds for the frame-pointer walk */
  int64_t stream_left;    /* stream mode: bytes to next sample (budget 0 forces the slow path) */
  int64_t stream_alloc, stream_free; /* stream mode: unpublished bytes */
  /* The thread cache's drain rule (tcache.c): the low 32 bits of the budget when each bin last
   * overflowed. The same value at its next overflow: the thread allocated nothing between. */
  uint32_t tc_stamp[PALLOC_TC_CLASSES];
  /* The budget's low 32 bits when a bin last began to drain (tc_draining set): the thread has
   * freed without allocating since while they are the budget's still. mimalloc then decommits
   * at once (_mi_palloc_decommit_now, tcache.c). */
  uint32_t tc_drain_stamp;
  uint8_t tc_draining;
} palloc_thread_t;

extern __thread palloc_thread_t palloc_thread __attribute__((tls_model("initial-exec")));

/* The fast paths (palloc_charge, palloc_tc_pop, palloc_tc_free) reach palloc_thread through
 * palloc_self(): on x86-64 a %fs-relative pointer (GCC's __seg_fs), so that a bin's fields are
 * operands `%fs:disp(off,class)` and not an address built from the thread pointer first (three
 * instructions fewer on each path), and malloc loads the offset once for the charge and the
 * pop. Elsewhere, and in sanitizer builds (their checks would see the offset as an address),
 * &palloc_thread. */
#if PALLOC_ASM && defined(__SEG_FS) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && !PALLOC_TSAN
#define PALLOC_SELF_AS __seg_fs
typedef palloc_thread_t __seg_fs palloc_self_t;
static inline __attribute__((always_inline)) palloc_self_t *palloc_self(void) {
  /* palloc_thread's offset from the thread pointer (initial-exec): GCC folds this into the load
   * of the offset from the GOT, and shares it between the paths of one function */
  return (palloc_self_t *)((uintptr_t)&palloc_thread - (uintptr_t)__builtin_thread_pointer());
}
#else
#define PALLOC_SELF_AS
typedef palloc_thread_t palloc_self_t;
static inline __attribute__((always_inline)) palloc_self_t *palloc_self(void) {
  return &palloc_thread;
}
#endif

/* A request size as a countdown charge. The mask keeps an impossible request (n >= 2^63, e.g.
 * malloc(-1)) from wrapping to a negative charge that would *raise* the countdown. */
static inline int64_t palloc_bytes(size_t n) { return (int64_t)(n & INT64_MAX); }

/* The slow paths think in Go's terms: a signed countdown of bytes to the next sample, charged
 * with each request, a sample due once it is negative. budget = countdown + 1 (0 for any
 * negative countdown) makes "countdown - n >= 0" the fast path's "n < budget", and reading
 * the budget back after a charge gives the charged countdown exactly (for n < 2^63). */
static inline int64_t palloc_countdown(const palloc_thread_t *t) {
  return (int64_t)atomic_load_explicit(&t->budget, memory_order_relaxed) - 1;
}
static inline void palloc_set_countdown(palloc_thread_t *t, int64_t c) {
  palloc_assert(c < INT64_MAX);
  atomic_store_explicit(&t->budget, c < 0 ? 0 : (uint64_t)c + 1, memory_order_relaxed);
  palloc_assert(palloc_countdown(t) == (c < 0 ? -1 : c));
}

/* Charges n bytes to this thread's budget; true while no sample is due. This is the whole
 * sampling cost of an unsampled allocation. On x86-64 it is `sub %n, %fs:budget; jbe`: the
 * borrow (n > budget) and the zero flag (n == budget) together are "n >= budget", so no
 * compare and no separate store (compilers do not fuse the C version into one instruction). */
static inline __attribute__((always_inline)) bool palloc_charge(size_t n) {
  palloc_self_t *t = palloc_self();
#if PALLOC_ASM
  __asm__ goto("subq %1, %0\n\tjbe %l[due]" : : "m"(t->budget), "r"(n) : "cc", "memory" : due);
  return true;
due:
  return false;
#else
  uint64_t b = atomic_load_explicit(&t->budget, memory_order_relaxed);
  atomic_store_explicit(&t->budget, b - n, memory_order_relaxed);
  return palloc_likely(n < b);
#endif
}

/* Runs init() exactly once across threads. *state: 0 not run, 1 running, 2 done, 3 failed.
 * Callers that arrive while another thread runs init() wait for it (init never allocates
 * through a path that could come back here). Returns true once init() has succeeded. */
static inline bool palloc_once(_Atomic int *state, bool (*init)(void)) {
  int s = atomic_load_explicit(state, memory_order_acquire);
  if (palloc_likely(s >= 2)) return s == 2;
  int expected = 0;
  if (atomic_compare_exchange_strong(state, &expected, 1)) {
    s = init() ? 2 : 3;
    atomic_store_explicit(state, s, memory_order_release);
    return s == 2;
  }
  while ((s = atomic_load_explicit(state, memory_order_acquire)) == 1) { /* another thread */ }
  return s == 2;
}

/* ---- global configuration and state ---------------------------------------------------- */
typedef struct palloc_global_s {
  _Atomic int64_t rate;          /* mean sampling interval; 0 = off */
  _Atomic uint32_t rate_epoch;   /* bumped by palloc_set_sample_rate */
  _Atomic int initialized;       /* 0 no, 1 in progress, 2 done */
  bool stream;                   /* an observer takes the allocation stream (observer.h) */
  bool seeded;
  uint64_t seed;
  int depth;                     /* stack depth */
  uint8_t unwind;                /* PALLOC_UNWIND: PALLOC_UNWIND_CFI, _FP or _LIBUNWIND */
  bool symbolize;                /* PALLOC_SYMBOLIZE != none */
  bool tcache;                   /* PALLOC_TCACHE != 0 */
  _Atomic uint64_t samples_dropped;
  _Atomic uint64_t threads;
  int64_t peak_growth;           /* PALLOC_PEAK_GROWTH in thousandths; -1 = no peak tracking */
  bool lifetimes;                /* PALLOC_LIFETIMES: sampled blocks carry their birth time */
  uint64_t temp_ns;              /* PALLOC_TEMP_THRESHOLD */
} palloc_global_t;

extern palloc_global_t palloc_g;

/* ---- lifecycle.c: process start, thread start and exit, fork, exit ---------------------- */
void palloc_init(void);                        /* idempotent, safe from inside malloc */
/* A thread's first slow-path visit, or a visit before palloc is initialized: sets the thread up
 * and gives its first interval in *first; false if it cannot sample (initialization in progress
 * on another thread, or the thread is exiting). */
bool palloc_thread_ready(palloc_thread_t *t, int64_t *first);
void palloc_thread_watch_exit(palloc_thread_t *t);
/* Starts fn on a detached thread of palloc's own (the writer, the endpoint's server), with every
 * signal blocked so that none of the program's is delivered there; false if it could not. */
bool palloc_thread_spawn(void *(*fn)(void *));
void palloc_fork_prepare(void);
void palloc_fork_parent(void);
void palloc_fork_child(void);
extern uint64_t palloc_start_ns;   /* monotonic time of palloc's start */

/* ---- countdown.c: the sampling countdown, its intervals and the rate --------------------- */
int64_t palloc_draw_interval(palloc_thread_t *t, int64_t rate);
void palloc_thread_start(palloc_thread_t *t);  /* first slow-path visit of a thread */
/* The budget is read before the guard is raised, and saved_budget read before it is lowered: a
 * signal handler that runs while the guard is 0 may sample, and its own guard_enter overwrites
 * saved_budget with the budget of that moment (under a guard: wrapped, huge), which restored
 * would stop this thread's sampling. A handler's allocations between the read and the raise are
 * forgotten with the budget of entry; they are charged to nothing, which biases nothing.
 * Inline: every sample enters it three or four times (take_sample, the registry's calls). */
static inline void palloc_guard_enter(palloc_thread_t *t) {
  uint64_t budget = atomic_load_explicit(&t->budget, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
  palloc_assert(t->guard < UINT32_MAX / 2); /* far deeper than palloc nests: unbalanced */
  if (t->guard++ == 0) t->saved_budget = budget;
  atomic_signal_fence(memory_order_seq_cst);
}

static inline void palloc_guard_exit(palloc_thread_t *t) {
  uint64_t budget = t->saved_budget;
  atomic_signal_fence(memory_order_seq_cst);
  palloc_assert(t->guard > 0); /* an exit without its enter */
  if (--t->guard == 0) atomic_store_explicit(&t->budget, budget, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst);
}
/* Decides whether an allocation of n bytes that drove its countdown negative is sampled, and
 * gives the countdown's next value in *next (the caller stores it in whichever countdown it
 * runs: t->countdown, or t->stream_left in stream mode). Returns true if it is to be sampled. */
bool palloc_countdown_expired(palloc_thread_t *t, size_t n, int64_t *next);

/* ---- config.c --------------------------------------------------------------------------- */
void palloc_config_load(void);
#include "options.h" /* palloc_option_*, palloc_parse_size, palloc_parse_signal */
void palloc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- registry.c: the live sampled blocks ---------------------------------------------- */
typedef struct palloc_bucket_s palloc_bucket_t;
/* The page map's granule: one count per 2^PALLOC_GRANULE_SHIFT bytes of address space
 * (registry.c says why 1 KiB). */
#ifndef PALLOC_GRANULE_SHIFT
#define PALLOC_GRANULE_SHIFT 10
#endif
#define PALLOC_STR_(x) #x
#define PALLOC_STR(x) PALLOC_STR_(x)
typedef struct {
  _Atomic(_Atomic uint16_t *) counts; /* live sampled blocks per granule, index masked */
  _Atomic uintptr_t mask;
} __attribute__((aligned(64))) palloc_page_map_t;
extern palloc_page_map_t palloc_page_map;
/* Sets up the page map (before the first sample; stream mode pins every free to the slow path).
 * False if no memory could be had for it: sampling must then stay off. */
bool palloc_registry_init(bool stream);
/* Enters a sampled block; false (the block stays unsampled) if the registry is out of memory. */
bool palloc_registry_add(const void *p, palloc_bucket_t *bucket, size_t size);
/* Removes p if it is registered and gives its bucket and size; false if p was not sampled. */
bool palloc_registry_take(const void *p, palloc_bucket_t **bucket, size_t *size);
/* The same, with the block's birth time (lifetime.c's clock; 0 = not timed). */
bool palloc_registry_add_at(const void *p, palloc_bucket_t *bucket, size_t size, uint64_t born);
bool palloc_registry_take_at(const void *p, palloc_bucket_t **bucket, size_t *size,
                             uint64_t *born);
/* Calls fn on every registered block, stripe by stripe under its lock (fn must take no lock and
 * allocate nothing but scratch memory); under the caller's guard. */
void palloc_registry_each(void (*fn)(void *arg, palloc_bucket_t *b, size_t size, uint64_t born),
                          void *arg);
/* Frees p, possibly sampled, later: this thread is inside the registry (t->in_registry; a signal
 * handler interrupted it), which then takes p out and frees it when that registry call ends. */
void palloc_registry_defer_free(palloc_thread_t *t, void *p);
uint64_t palloc_registry_bytes(void);
void palloc_registry_lock(void);   /* fork handlers */
void palloc_registry_unlock(void);

/* free()'s question, on every call: might p be a sampled block? One load from the page map;
 * false is definite (registry.c states why), true sends p to palloc_registry_take. On x86-64
 * the mask is an operand of the `and` and the count of the `cmp`, which compilers do not do for
 * atomic loads: 6 instructions instead of 8. A 16-bit aligned load is atomic there anyway; under
 * ThreadSanitizer the C version runs, so that the tool sees the loads. */
static inline __attribute__((always_inline)) bool palloc_maybe_sampled(const void *p) {
#if PALLOC_ASM && !PALLOC_TSAN
  __asm__ goto("movq %0, %%rax\n\t"
               "shrq $" PALLOC_STR(PALLOC_GRANULE_SHIFT) ", %%rax\n\t"
               "andq %1, %%rax\n\t"
               "movq %2, %%rdx\n\t"
               "cmpw $0, (%%rdx,%%rax,2)\n\t"
               "jne %l[maybe]"
               : : "r"(p), "m"(palloc_page_map.mask), "m"(palloc_page_map.counts)
               : "rax", "rdx", "cc", "memory" : maybe);
  return false;
maybe:
  return true;
#else
  _Atomic uint16_t *map = atomic_load_explicit(&palloc_page_map.counts, memory_order_relaxed);
  uintptr_t mask = atomic_load_explicit(&palloc_page_map.mask, memory_order_relaxed);
  return atomic_load_explicit(&map[((uintptr_t)p >> PALLOC_GRANULE_SHIFT) & mask], memory_order_relaxed) != 0;
#endif
}

/* ---- tcache.c: the thread cache ---------------------------------------------------------- */
/* Request (n + 7) / 8 -> the class that serves it; usable size / 8 -> the class of exactly that
 * size, or PALLOC_TC_NONE, a bin whose cap is always 0. */
#define PALLOC_TC_NONE (PALLOC_TC_CLASSES - 1)
extern _Atomic uint8_t palloc_tc_class[PALLOC_TC_MAX / 8 + 1];
extern _Atomic uint8_t palloc_tc_exact[PALLOC_TC_MAX / 8 + 1];
/* Request n -> the byte offset in palloc_thread_t.tc of the bin of palloc_tc_class[(n + 7) >> 3]:
 * malloc's pop indexes it by n itself (no rounding, no scaling of the class). */
extern _Atomic uint16_t palloc_tc_bin_at[PALLOC_TC_MAX + 1];
extern _Atomic bool palloc_tc_on; /* set once by palloc_tc_init, if the cache is in use */
uint8_t _mi_palloc_page_class(size_t usable);     /* a mimalloc page's class + 1 (patch 0004) */
uint8_t palloc_mi_page_class(const void *p);      /* the class + 1 p's page carries (p != NULL) */
void palloc_tc_init(bool enabled);                /* by palloc_init, before any thread set-up */
void palloc_tc_thread_start(palloc_thread_t *t);  /* gives the thread's bins their slots */
void palloc_tc_thread_exit(palloc_thread_t *t);   /* returns every block; caches no more */
void palloc_tc_lock(void);                       /* fork handlers (lifecycle.c) */
void palloc_tc_unlock(void);
/* A free into a full bin (or one with cap 0); called with tc_busy set, and clears it. */
bool palloc_tc_overflow(palloc_tc_bin_t *b, void *p);
void palloc_tc_overflow_free(size_t at, void *p); /* the same for the bin at `at`, else mi_free */
size_t palloc_tc_held_max(void);
/* mimalloc's question (its patch 0003): decommit what this thread frees now? (tcache.c) */
bool _mi_palloc_decommit_now(void);

/* A bin's operations are bracketed by tc_busy = 1 ... tc_busy = 0, with compiler barriers (a
 * signal handler runs on the same thread: no fence instruction is needed), so that a handler
 * sees every bin either untouched or done. No order of the plain loads and stores alone would
 * do: a handler that runs between the load of n and its store, and pops the same block, would
 * be handed the block the interrupted pop returns. A handler that arrives between the test of
 * tc_busy and its store finishes before the interrupted operation reads anything. */
static inline __attribute__((always_inline)) void palloc_tc_enter(palloc_thread_t *t) {
  palloc_assert(t->tc_busy == 0); /* every caller tested it: bin operations never nest */
  t->tc_busy = 1;
  atomic_signal_fence(memory_order_seq_cst);
}
static inline __attribute__((always_inline)) void palloc_tc_leave(palloc_thread_t *t) {
  atomic_signal_fence(memory_order_seq_cst);
  palloc_assert(t->tc_busy == 1);
  t->tc_busy = 0;
}

/* Takes a cached block for malloc(n) on this thread into *p; false if there is none. (A bool
 * and not a NULL return: the caller then needs no test of the pointer.) tc_busy brackets the
 * bin's change as palloc_tc_enter / palloc_tc_leave do. */
static inline __attribute__((always_inline)) bool palloc_tc_pop(size_t n, void **p) {
  if (n > PALLOC_TC_MAX) return false;
  palloc_self_t *t = palloc_self();
  if (t->tc_busy) return false;
  size_t at = atomic_load_explicit(&palloc_tc_bin_at[n], memory_order_relaxed);
  palloc_tc_bin_t PALLOC_SELF_AS *b = (palloc_tc_bin_t PALLOC_SELF_AS *)((char PALLOC_SELF_AS *)t->tc + at);
  palloc_assert(at % sizeof(palloc_tc_bin_t) == 0 && at / sizeof(palloc_tc_bin_t) < PALLOC_TC_CLASSES);
  t->tc_busy = 1;
  atomic_signal_fence(memory_order_seq_cst);
  uint32_t k = b->n;
  palloc_assert(k <= b->cap);
  bool hit = k != 0;
  if (palloc_likely(hit)) {
    *p = b->slot[k - 1];
    b->n = k - 1;
  }
  atomic_signal_fence(memory_order_seq_cst);
  t->tc_busy = 0;
  return hit;
}

/* Pushes p onto this thread's bin at byte offset `at` in palloc_thread_t.tc (tc_busy tested
 * clear by the caller), or, if the bin is full or has cap 0, hands it to palloc_tc_overflow_free
 * (out of line: free's fast path then keeps p in no callee-saved register), which clears
 * tc_busy and frees p to mimalloc if the bin does not keep it. */
static inline __attribute__((always_inline)) void palloc_tc_put(palloc_self_t *t, size_t at,
                                                                void *p) {
  palloc_assert(at % sizeof(palloc_tc_bin_t) == 0 && at / sizeof(palloc_tc_bin_t) < PALLOC_TC_CLASSES);
  palloc_tc_bin_t PALLOC_SELF_AS *b = (palloc_tc_bin_t PALLOC_SELF_AS *)((char PALLOC_SELF_AS *)t->tc + at);
  t->tc_busy = 1; /* palloc_tc_enter */
  atomic_signal_fence(memory_order_seq_cst);
  size_t k = b->n;
  palloc_assert(k <= b->cap);
  if (palloc_unlikely(k >= b->cap)) { /* PALLOC_TC_NONE too */
    palloc_tc_overflow_free(at, p);
    return;
  }
  b->slot[k] = p;
  b->n = (uint32_t)k + 1;
  atomic_signal_fence(memory_order_seq_cst); /* palloc_tc_leave */
  t->tc_busy = 0;
}

/* free()'s end for the unsampled block p (not NULL): into this thread's cache, or to mimalloc
 * if it is not cacheable (cls1 0: too large, not of a class size, an aligned block's page, or
 * the cache is off) or the thread caches nothing. cls1 is the class + 1 that mimalloc's page
 * of p carries (its patch 0004, from _mi_palloc_page_class): one byte of the page header, read
 * in place of a usable-size lookup and a table. */
static inline __attribute__((always_inline)) void palloc_tc_free(size_t cls1, void *p) {
  palloc_self_t *t = palloc_self();
  if (cls1 == 0 || t->tc_busy) {
    mi_free(p);
    return;
  }
  palloc_assert(cls1 <= PALLOC_TC_CLASSES);
  palloc_tc_put(t, (cls1 - 1) * sizeof(palloc_tc_bin_t), p);
}

/* palloc_tc_free for a block of operator new(n) (p may be NULL): cached under the class malloc(n)
 * is served from, without the page's class (palloc_free_sized, entry.c, states why that is
 * safe). With the cache off every bin has cap 0, and the block goes to mimalloc. */
static inline __attribute__((always_inline)) void palloc_tc_free_sized(void *p, size_t n) {
  if (p == NULL) return; /* the cache must never hold it */
  palloc_self_t *t = palloc_self();
  if (n > PALLOC_TC_MAX || t->tc_busy) {
    mi_free(p);
    return;
  }
  palloc_tc_put(t, atomic_load_explicit(&palloc_tc_bin_at[n], memory_order_relaxed), p);
}

/* ---- entry.c, cxxops.c: sized free and the C++ operators (libpalloc exports them as
 * operator new and delete) ----------------------------------------------------------------- */
void palloc_free_sized(void *p, size_t n);
void *palloc_malloc_hidden(size_t n);                /* palloc_malloc, reached directly */
void *palloc_aligned(size_t align, size_t n);        /* align a power of two */
void *palloc_new(size_t n);
void *palloc_new_nothrow(size_t n);
void *palloc_new_aligned(size_t n, size_t align);
void *palloc_new_aligned_nothrow(size_t n, size_t align);

/* ---- stack.c ---------------------------------------------------------------------------- */
/* Fills pcs with the caller's return addresses, palloc's own frames removed. */
int palloc_stack_capture(uintptr_t *pcs, int max);
/* The frame-pointer walk from the frame at fp: at most max return addresses into buf, reading
 * only inside [lo, hi), whatever the frame pointers hold (any value of fp, lo and hi is safe). */
int palloc_fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *buf, int max);
/* cfi.c: the .eh_frame walk (the default unwinder) and its shared rule cache. */
int palloc_cfi_walk_from(uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t skip_lo,
                         uintptr_t skip_hi, uintptr_t *buf, int max);
bool palloc_cfi_available(void);                 /* _dl_find_object exists (glibc 2.35+) */
void palloc_cfi_forget(uintptr_t lo, uintptr_t hi); /* code unloaded there (unload.c) */
void palloc_cfi_counts(uint64_t *decoded, uint64_t *to_libunwind, uint64_t *table_slots);
/* The rule at pc, decoded afresh (tests): 0 CFA = rsp + cfa_off, 1 CFA = rbp + cfa_off (then
 * rbp_off: where rbp was saved below the CFA, 0 if not), 2 the outermost frame, 3 unknown. */
unsigned palloc_cfi_rule(uintptr_t pc, uint32_t *cfa_off, uint32_t *rbp_off);
void palloc_stack_fork_prepare(void); /* fork handlers (lifecycle.c): nobody in libunwind */
void palloc_stack_fork_parent(void);
void palloc_stack_fork_child(void);

/* ---- bucket.c --------------------------------------------------------------------------- */
struct palloc_bucket_s {
  struct palloc_bucket_s *_Atomic next;     /* hash chain */
  struct palloc_bucket_s *allnext;          /* list of all buckets (immutable once linked) */
  uint64_t hash;
  size_t size;                              /* size class (the "bytes" label) */
  uint32_t nstk;
  uint32_t gen;                             /* palloc_unload_gen when it was made */
  /* NULL while every frame's library is loaded. Once one is unloaded (unload.c), an array of
   * nstk frame ids: gone[k] > 0 names frame k as it was before the unload. A bucket with gone
   * set takes no new samples: the same addresses may now be another library's code. */
  const uint32_t *_Atomic gone;
  _Atomic uint64_t allocs, frees, alloc_bytes, free_bytes;
  /* lifetime.c: the lifetimes (ns) of the freed sampled blocks: count, sum, sum of squares (a
   * double's bits), min (kept as UINT64_MAX - min, so that 0 is "none"), max; and the blocks
   * freed within PALLOC_TEMP_THRESHOLD, and their bytes. */
  _Atomic uint64_t life_n, life_sum, life_sumsq, life_min_inv, life_max, temp_n, temp_bytes;
  /* peak.c: the list of buckets that may hold live samples (under peak.c's lock). */
  struct palloc_bucket_s *live_next;
  _Atomic uint8_t live_listed;
  /* leak.c: in a fork child, the bucket's raw live objects and bytes at the fork (inherited) */
  uint64_t fork_live, fork_live_bytes;
  uintptr_t stk[];
};
/* Bumped by every dlclose (unload.c), before the library goes: buckets made before it may hold
 * the library's frames, buckets made after hold only what was loaded then. */
extern _Atomic uint32_t palloc_unload_gen;

uint64_t palloc_bucket_hash(const uintptr_t *stk, int n, size_t size);
size_t palloc_size_class(size_t request);  /* the size part of a bucket's key */
/* The hash chain of the key (stack, size class): near the chains of the stack's other classes. */
size_t palloc_bucket_chain(const uintptr_t *stk, int n, size_t size_class);
/* The bucket of (stack, size class of request), made on first use; NULL if out of memory. */
palloc_bucket_t *palloc_bucket_get(const uintptr_t *stk, int n, size_t request);
palloc_bucket_t *palloc_bucket_list(void);  /* head of the all-buckets list */
void palloc_bucket_fork_child(void);        /* finishes a table set-up the fork cut short */
void palloc_bucket_record_alloc(palloc_bucket_t *b, size_t size);
void palloc_bucket_record_free(palloc_bucket_t *b, size_t size);
/* A bucket's raw sampled counts (not yet scaled by the sampling rate): objects and requested
 * bytes allocated, and of those, freed. In use = allocated - freed. */
typedef struct palloc_bucket_counts_s {
  uint64_t allocs, alloc_bytes;
  uint64_t frees, free_bytes;
} palloc_bucket_counts_t;
/* A consistent read of one bucket: frees are read before allocs, so inuse is never negative. */
void palloc_bucket_read(const palloc_bucket_t *b, palloc_bucket_counts_t *c);

/* ---- unload.c ---------------------------------------------------------------------------- */
/* dlclose(handle), keeping the names of the sampled frames of every library it unloads. */
int palloc_dlclose(void *handle);

/* ---- meta.c: palloc's own memory -------------------------------------------------------- */
void *palloc_meta_alloc(size_t size);          /* zeroed, 16-aligned, never freed */
uint64_t palloc_meta_bytes(void);
void palloc_meta_lock(void);                   /* fork handlers */
void palloc_meta_unlock(void);

/* A scratch arena for one profile write: bump allocation in mmap'd chunks, all released at
 * once. Exposed as a ProtobufCAllocator-compatible pair. */
typedef struct palloc_scratch_s palloc_scratch_t;
palloc_scratch_t *palloc_scratch_new(void);
void *palloc_scratch_alloc(void *scratch, size_t size);
void palloc_scratch_free(void *scratch, void *p);
void palloc_scratch_destroy(palloc_scratch_t *s);
uint64_t palloc_scratch_peak(const palloc_scratch_t *s);

/* ---- lifetime.c: the allocation clock and the lifetimes of sampled blocks ---------------- */
/* The clock of birth and death of sampled blocks, in ns (never 0), or 0 if lifetimes are off. */
uint64_t palloc_lifetime_now(void);
/* A sampled block of size bytes in bucket b, born at born (0: not timed), is freed: its bucket's
 * free counters, the peak's live estimate, its lifetime. */
void palloc_sample_freed(palloc_bucket_t *b, size_t size, uint64_t born);

/* ---- peak.c: the peak-heap profile ------------------------------------------------------- */
/* A sampled allocation of size bytes was counted in b: the live estimate grows, and a new peak
 * is snapshot if it passed the last one by PALLOC_PEAK_GROWTH. Under the guard. */
void palloc_peak_on_alloc(palloc_bucket_t *b, int64_t weight); /* weight: size / p(size) */
void palloc_peak_on_free(palloc_bucket_t *b, size_t size);
void palloc_peak_lock(void);    /* fork handlers */
void palloc_peak_unlock(void);

/* ---- slowpath.c: the sampled allocation and free ----------------------------------------- */
void *palloc_alloc_slow(size_t n, size_t align, bool zero);
void palloc_free_slow(void *p);
/* due: palloc_charge(n) failed (else p may be sampled and the charge stands). */
void *palloc_realloc_slow(void *p, size_t n, bool due);
/* After palloc_charge failed: should this allocation be sampled? (redraws the countdown) */
bool palloc_sample_due(palloc_thread_t *t, size_t n);

/* ---- writer.c --------------------------------------------------------------------------- */
struct palloc_proto_sink_s; /* proto/palloc_proto.h: where a profile's bytes go */
extern _Atomic uint64_t palloc_profiles_written, palloc_profile_errors;
extern _Atomic uint64_t palloc_last_write_ns, palloc_last_write_bytes;
void palloc_writer_start(void);      /* at palloc's start: snapshot signal, writer thread */
void palloc_writer_fork_child(void); /* restarts the writer thread in a fork child */
void palloc_writer_stop(void);       /* at exit: snapshots stop, the exit profile is written */
/* Writes a heap profile to sink under the writer lock and the guard, as palloc_profile_write_fd
 * does to an fd (an HTTP endpoint's socket): 0, or -1 after one palloc: line. */
int palloc_writer_write_sink(const struct palloc_proto_sink_s *sink);
void palloc_writer_lock(void);   /* the lock every profile write holds (unload.c) */
void palloc_writer_unlock(void);

/* ---- profile.c -------------------------------------------------------------------------- */
struct palloc_scratch_s;
/* Builds the heap profile and writes it to path (temporary name + rename, proto's
 * palloc_proto_write_path) or, if path is NULL, to fd. Returns compressed size or -1 with err. */
long palloc_profile_emit(const char *path, int fd, char *err, size_t errlen);
/* The other profiles built from the buckets (profinternal.h's palloc_profile_kind_t): the peak
 * heap (peak.c) and the lifetimes (lifetime.c). */
enum { PALLOC_PROFILE_HEAP, PALLOC_PROFILE_PEAK, PALLOC_PROFILE_LIFETIME };
long palloc_profile_emit_kind(int kind, const char *path, int fd, char *err, size_t errlen);
/* writer.c's writes of the other kinds: at exit, with each snapshot (seq > 0), on demand. */
int palloc_write_kind(int kind, const char *path, int fd, unsigned seq);
/* writer.c: snapshot seq's name for base (an expanded path): "x.pb.gz" -> "x.000N.pb.gz", else
 * "x.000N"; base itself for seq 0, or when base is a FIFO or a character device (a stream). */
void palloc_snapshot_name(const char *base, unsigned seq, char *name, size_t size);
/* After the exit profile: the peak and lifetime profiles' exit writes, then the leak check. */
void palloc_extra_profiles_exit(void);
void palloc_extra_profiles_snapshot(unsigned seq);
/* leak.c: the leak gate at exit; may end the process with PALLOC_LEAK_EXIT_CODE. */
void palloc_leak_check_exit(void);
void palloc_leak_start(void); /* at start: keeps a descriptor of stderr for the report */
void palloc_leak_fork_child(void); /* a fork child: what it inherits live is not its leak */
/* The same, to a sink (proto's palloc_proto_sink_t: a write callback, e.g. a socket's). */
long palloc_profile_emit_sink(const struct palloc_proto_sink_s *sink, char *err, size_t errlen);
/* The same with options (the PALLOC_HTTP endpoint, http.c): Go's default_sample_type, and a
 * delta profile, Go's ?seconds=N: base(arg, b, c) gives bucket b's counts at the start of the
 * window (zero for a bucket made since); each sample is then the scaled counts now less the
 * scaled counts then (in use may be negative), and buckets without change are left out. */
typedef struct palloc_profile_opts_s {
  const char *default_sample_type; /* NULL: none (pprof takes the last type) */
  void (*base)(void *arg, const palloc_bucket_t *b, palloc_bucket_counts_t *c);
  void *arg;
  int64_t duration_ns;             /* the window's; 0: since palloc's start */
} palloc_profile_opts_t;
long palloc_profile_emit_opts(const char *path, int fd, const palloc_profile_opts_t *o,
                              char *err, size_t errlen);

/* ---- observer.c: the allocation stream, to the observers that want it (observer.h) ------- */
#include "observer.h"
/* At init: asks every observer whether it wants the stream; sets palloc_g.stream. */
void palloc_observers_init(void);
/* Every observer's lifecycle hooks (observer.h says when each runs). */
void palloc_observers_start(void);
void palloc_observers_fork_prepare(void);
void palloc_observers_fork_parent(void);
void palloc_observers_fork_child(void);
void palloc_observers_exit(void);
/* Every observer's /metrics figures (http.c). */
void palloc_observers_metrics(palloc_metric_emit_t emit, void *ctx);
/* Publishes this thread's accumulated bytes to the observers (every PALLOC_STREAM_BATCH). */
void palloc_stream_flush(palloc_thread_t *t);

/* Adds this thread's allocated/freed bytes; publishes them in batches. */
static inline void palloc_stream_account(palloc_thread_t *t, int64_t alloc, int64_t freed) {
  palloc_assert(alloc >= 0 && freed >= 0);
  t->stream_alloc += alloc;
  t->stream_free += freed;
  if (palloc_unlikely(t->stream_alloc + t->stream_free >= PALLOC_STREAM_BATCH))
    palloc_stream_flush(t);
}

#pragma GCC visibility pop
#endif
