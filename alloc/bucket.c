/* bucket.c - the (stack, size) buckets of sampled allocations, as in Go's mprof.go.
 *
 * A bucket holds the raw sampled counts of one call stack and one size class: allocs, frees,
 * alloc_bytes, free_bytes (exact requested bytes). Buckets are created on the first sample of their key and never freed,
 * which makes lookups lock-free: a chain is only ever prepended to (CAS on the chain head) and a
 * published bucket is immutable except for its counters.
 *
 * Concurrency invariants:
 *  - allocation counters of a block are incremented before the block is returned to the
 *    program, and its free counters only when the program frees it, so allocs >= frees holds
 *    at every instant for each bucket. A reader that loads frees first and allocs second
 *    (seq_cst) therefore never computes a negative in-use value.
 *  - the list of all buckets (allnext) is prepended with CAS after the bucket is fully built;
 *    a writer walking it sees every bucket created before the walk started.
 */
#include <string.h>
#include "internal.h"

/* 4096 chains: 32 KiB of chain heads. Different stacks spread over the whole table, so a table
 * of N pages is resident as soon as the program has ~N stacks: at 65536 chains (512 KiB) a small
 * program with 60 stacks had 256 KiB of it resident, 10% of its peak RSS. A sample's lookup walks
 * one chain, of N/4096 buckets on average (2.5 for a program with 10,000 buckets), against the
 * thousands of instructions of its stack walk. A bucket's chain is its stack's hash plus the
 * ordinal of its size class, so the buckets of one stack (one per size class it allocates) sit in
 * neighbouring heads. */
#define TABLE_BITS 12
/* The table grows in layers, as chains that only grow cannot be rehashed without a lock: layer k
 * has 4^k times the first's chains, and is made once the buckets are more than twice the chains
 * of the newest layer, so chains stay about 2 long in every layer (a fixed table of 4096 chains
 * made a sample's lookup walk 244 buckets at a million, and the program 170 times slower at 1M
 * buckets than at 100k: tests/bench scale, distinct stacks). A lookup searches the layers from
 * the newest down, about 2 buckets in each of at most LAYERS; a new bucket goes into the newest
 * layer its search began in. Two threads that make the same new bucket while a layer is being
 * added may put it in two layers: the profile then has two samples with the same stack and
 * size, which pprof's readers add together, as the bucket's counts would have been. */
#define LAYERS 7 /* 4 Ki .. 16 Mi chains (128 MiB of heads, mapped and touched only as used) */

static palloc_bucket_t *_Atomic *_Atomic layer[LAYERS];
static _Atomic unsigned nlayers;     /* layers published: layer[0 .. nlayers) */
static _Atomic uint64_t nbuckets;
static _Atomic bool growing;         /* a thread is making the next layer */
static _Atomic(palloc_bucket_t *) all_buckets;
/* palloc_once: its waiters spin, and meta.c's lock is taken to make the table and buckets; both
 * only under the guard (take_sample), so a signal handler on the same thread never waits here. */
static _Atomic int table_state;

/* The size part of a bucket's key: the request size rounded up to a size class, 8 classes per
 * power of two (multiples of 8 up to 64). Go keys by its size classes too; keying by the exact
 * size let a program with random sizes make a bucket of nearly every sample (61k buckets, 6 MB
 * and a 500 KB profile for the realloc benchmark). Byte counts stay exact: the bucket sums the
 * requested sizes, and scaleHeapSample uses their average. */
size_t palloc_size_class(size_t n) {
  if (n <= 64) return (n + 7) & ~(size_t)7;
  int b = 63 - __builtin_clzl(n);                /* 2^b <= n < 2^(b+1), b >= 6 */
  size_t step = (size_t)1 << (b - 3);
  return n > SIZE_MAX - step ? SIZE_MAX : (n + step - 1) & ~(step - 1);
}

/* A 64-bit mix per word (the finalizer of MurmurHash3) folded over the stack and the size. */
static inline uint64_t mix(uint64_t h, uint64_t v) {
  v *= 0xff51afd7ed558ccdull;
  v ^= v >> 33;
  h ^= v;
  h = (h << 27) | (h >> 37);
  return h * 5 + 0x52dce729;
}

static inline uint64_t finish(uint64_t h) {
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

static inline uint64_t stack_fold(const uintptr_t *stk, int n) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < n; i++) h = mix(h, stk[i]);
  return h;
}

uint64_t palloc_bucket_hash(const uintptr_t *stk, int n, size_t size) {
  return finish(mix(stack_fold(stk, n), size));
}

/* 0, 1, 2, ... for the size classes in increasing order (8 per power of two). */
static inline size_t class_ordinal(size_t c) {
  if (c <= 64) return c >> 3;
  int b = 63 - __builtin_clzl(c - 1); /* 2^b < c <= 2^(b+1), b >= 6 */
  return 8 * (size_t)(b - 5) + ((c - ((size_t)1 << b)) >> (b - 3));
}

size_t palloc_bucket_chain(const uintptr_t *stk, int n, size_t size) {
  return (size_t)(finish(stack_fold(stk, n)) + class_ordinal(size)) & ((1u << TABLE_BITS) - 1);
}

static bool make_table(void) {
  palloc_bucket_t *_Atomic *t = palloc_meta_alloc(sizeof(*t) << TABLE_BITS);
  if (t == NULL) return false;
  atomic_store_explicit(&layer[0], t, memory_order_relaxed);
  atomic_store_explicit(&nlayers, 1, memory_order_release);
  return true;
}

static inline unsigned layer_bits(unsigned k) { return TABLE_BITS + 2 * k; }

/* After a bucket was added: the next layer, if the buckets outgrew the newest. Only one thread
 * makes it (the others go on in the layers there are); memory that cannot be had leaves the
 * table as it is. */
static void maybe_grow(uint64_t count) {
  unsigned k = atomic_load_explicit(&nlayers, memory_order_acquire);
  if (k >= LAYERS || count <= (uint64_t)2 << layer_bits(k - 1)) return;
  if (atomic_exchange_explicit(&growing, true, memory_order_acquire)) return;
  if (atomic_load_explicit(&nlayers, memory_order_relaxed) == k) {
    palloc_bucket_t *_Atomic *t = palloc_meta_alloc(sizeof(*t) << layer_bits(k));
    if (t != NULL) {
      atomic_store_explicit(&layer[k], t, memory_order_relaxed);
      atomic_store_explicit(&nlayers, k + 1, memory_order_release); /* t's zeroes first */
    }
  }
  atomic_store_explicit(&growing, false, memory_order_release);
}

/* A bucket whose frames include an unloaded library's (gone set) is never found again: the
 * same stack now is the code mapped there since, and starts a bucket of its own. */
static inline bool same(const palloc_bucket_t *b, uint64_t h, const uintptr_t *stk, int n,
                        size_t size) {
  if (b->hash != h || b->size != size || b->nstk != (uint32_t)n) return false;
  /* A word loop, not memcmp: a stack is a few dozen words, and the call into libc's memcmp
   * cost more than the compare (tens of instructions a sample). */
  for (int i = 0; i < n; i++)
    if (b->stk[i] != stk[i]) return false;
  return atomic_load_explicit(&b->gone, memory_order_acquire) == NULL;
}

/* A new bucket at the head of *slot, whose chain from head on holds no bucket of the key (a
 * thread that adds the same key meanwhile wins: its bucket is returned). Out of line: a sample
 * finds its bucket nearly always, and inlined this made every lookup save registers for it. */
static __attribute__((noinline)) palloc_bucket_t *insert(palloc_bucket_t *_Atomic *slot,
                                                         palloc_bucket_t *head, uint64_t h,
                                                         const uintptr_t *stk, int n,
                                                         size_t size) {
  palloc_bucket_t *fresh = palloc_meta_alloc(sizeof *fresh + (size_t)n * sizeof *stk);
  if (fresh == NULL) return NULL;
  fresh->hash = h;
  fresh->size = size;
  fresh->nstk = (uint32_t)n;
  fresh->gen = atomic_load_explicit(&palloc_unload_gen, memory_order_acquire);
  memcpy(fresh->stk, stk, (size_t)n * sizeof *stk);
  palloc_bucket_t *seen_until = head; /* chain suffix already compared */
  for (;;) {
    atomic_store_explicit(&fresh->next, head, memory_order_relaxed);
    if (atomic_compare_exchange_weak_explicit(slot, &head, fresh, memory_order_release,
                                              memory_order_acquire))
      break;
    for (palloc_bucket_t *b = head; b != seen_until; b = atomic_load_explicit(&b->next, memory_order_acquire))
      if (same(b, h, stk, n, size)) return b; /* a lost race leaves `fresh` unused (rare) */
    seen_until = head;
  }
  palloc_bucket_t *all = atomic_load_explicit(&all_buckets, memory_order_relaxed);
  do {
    fresh->allnext = all;
  } while (!atomic_compare_exchange_weak_explicit(&all_buckets, &all, fresh,
                                                  memory_order_release, memory_order_relaxed));
  maybe_grow(atomic_fetch_add_explicit(&nbuckets, 1, memory_order_relaxed) + 1);
  return fresh;
}

palloc_bucket_t *palloc_bucket_get(const uintptr_t *stk, int n, size_t request) {
  palloc_assert(n >= 0 && n <= PALLOC_MAX_DEPTH);
  if (!palloc_once(&table_state, make_table)) return NULL;
  size_t size = palloc_size_class(request);
  palloc_assert(size >= request);
  /* The stack is folded once for both: the key's hash and the chain (palloc_bucket_hash's and
   * palloc_bucket_chain's values). */
  uint64_t fold = stack_fold(stk, n);
  uint64_t h = finish(mix(fold, size));
  size_t chain = (size_t)(finish(fold) + class_ordinal(size));
  palloc_assert(h == palloc_bucket_hash(stk, n, size) &&
                (chain & ((1u << TABLE_BITS) - 1)) == palloc_bucket_chain(stk, n, size));
  unsigned top = atomic_load_explicit(&nlayers, memory_order_acquire);
  palloc_assert(top >= 1 && top <= LAYERS);
  for (unsigned k = top - 1; k > 0; k--) { /* the older layers: searched, never added to */
    palloc_bucket_t *_Atomic *t = atomic_load_explicit(&layer[k], memory_order_relaxed);
    size_t i = chain & (((size_t)1 << layer_bits(k)) - 1);
    for (palloc_bucket_t *b = atomic_load_explicit(&t[i], memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire))
      if (same(b, h, stk, n, size)) return b;
  }
  if (top > 1) { /* search layer 0 below, then add to the newest */
    palloc_bucket_t *_Atomic *t0 = atomic_load_explicit(&layer[0], memory_order_relaxed);
    for (palloc_bucket_t *b = atomic_load_explicit(&t0[chain & ((1u << TABLE_BITS) - 1)],
                                                   memory_order_acquire);
         b; b = atomic_load_explicit(&b->next, memory_order_acquire))
      if (same(b, h, stk, n, size)) return b;
  }
  palloc_bucket_t *_Atomic *tt = atomic_load_explicit(&layer[top - 1], memory_order_relaxed);
  palloc_bucket_t *_Atomic *slot = &tt[chain & (((size_t)1 << layer_bits(top - 1)) - 1)];
  palloc_bucket_t *head = atomic_load_explicit(slot, memory_order_acquire);
  for (palloc_bucket_t *b = head; b; b = atomic_load_explicit(&b->next, memory_order_acquire))
    if (same(b, h, stk, n, size)) return b;
  return insert(slot, head, h, stk, n, size);
}

/* The fork child, its locks released: a thread that was making the table when the process
 * forked does not exist here, and would have left table_state at 1 (running) for good, every
 * later sample spinning on it (tests/gcsim/whatif_fork.c caught one in ~30 runs). The fork
 * handler held meta.c's lock across the fork, so the thread was either before its
 * palloc_meta_alloc or past it: the table is either made (layer 0 published) or not begun. */
void palloc_bucket_fork_child(void) {
  if (atomic_load_explicit(&table_state, memory_order_relaxed) == 1)
    atomic_store_explicit(&table_state,
                          atomic_load_explicit(&nlayers, memory_order_relaxed) > 0 ? 2 : 0,
                          memory_order_release);
  /* A thread that was adding a layer: the child may add it again (a layer it made but did not
   * publish is lost, as memory the child never uses). */
  atomic_store_explicit(&growing, false, memory_order_relaxed);
}

palloc_bucket_t *palloc_bucket_list(void) {
  return atomic_load_explicit(&all_buckets, memory_order_acquire);
}

void palloc_bucket_record_alloc(palloc_bucket_t *b, size_t size) {
  atomic_fetch_add(&b->alloc_bytes, size);
  atomic_fetch_add(&b->allocs, 1);
}

void palloc_bucket_record_free(palloc_bucket_t *b, size_t size) {
  atomic_fetch_add(&b->free_bytes, size);
  atomic_fetch_add(&b->frees, 1);
  /* allocs >= frees, bytes likewise (the invariant at the top): the allocation of every free
   * counted so far happened before it, so these later loads see it. */
  palloc_assert(atomic_load(&b->frees) <= atomic_load(&b->allocs));
  palloc_assert(atomic_load(&b->free_bytes) <= atomic_load(&b->alloc_bytes));
}

/* Frees are read first (see the invariant above). */
void palloc_bucket_read(const palloc_bucket_t *b, palloc_bucket_counts_t *c) {
  c->frees = atomic_load(&b->frees);
  c->free_bytes = atomic_load(&b->free_bytes);
  c->allocs = atomic_load(&b->allocs);
  c->alloc_bytes = atomic_load(&b->alloc_bytes);
  palloc_assert(c->frees <= c->allocs && c->free_bytes <= c->alloc_bytes);
  if (c->frees > c->allocs) c->frees = c->allocs;
  if (c->free_bytes > c->alloc_bytes) c->free_bytes = c->alloc_bytes;
}
