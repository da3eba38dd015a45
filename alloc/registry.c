/* registry.c - the registry of live sampled blocks: which addresses were sampled, with what.
 *
 * Why a registry and not a separate heap: a sampled block is an ordinary mimalloc block, from the
 * same heap, size class and page it would have had unsampled. Sampling therefore changes nothing
 * in the program's memory layout or footprint (an earlier design kept sampled blocks in their own
 * arena: its pages could not serve ordinary blocks, which cost up to 15% peak RSS on workloads of
 * 64 KiB buffers). What free() needs instead is a cheap answer to "was p sampled?", and for a
 * sampled p its {bucket, requested size}. Two structures give it:
 *
 * - The page map: one 16-bit count per 1 KiB granule of address space (PALLOC_GRANULE_SHIFT) of
 *   the live registered blocks whose *start* address lies in that granule. free(p) loads one
 *   count; zero - nearly every free - means "not sampled": one load, no lock, no probe. The map
 *   is a MAP_NORESERVE reservation read through the kernel's zero page; only the map pages
 *   covering sampled blocks are written (one 4 KiB map page per 2 MiB of address space). Its
 *   size is whatever the system grants (256 MiB, halving on failure): the index is taken modulo
 *   the map, so distant granules may share a count. Sharing only sends more frees to the table,
 *   never a sampled free past it.
 *   Why 1 KiB: an unsampled block that shares a granule with a sampled one takes the stripe
 *   lock to learn it was not sampled. With 4 KiB granules that was most frees at a 4 KiB rate
 *   (server workload, callgrind: 834 M instructions at 4 KiB granules, 792 M at 1 KiB, 791 M at
 *   256 bytes); the map's memory is at most one map page per 2 MiB holding a sampled block
 *   (longlived's 590 MB heap: +0.8 MB peak RSS).
 * - The address table: open addressing (linear probing, backward-shift deletion, no tombstones)
 *   split into stripes by address hash, each stripe with its own mutex and its own slots (first
 *   16 in .bss, then mmap'd), doubled at 3/4 load. It sees sampled allocations, sampled frees and the rare unsampled free in
 *   a granule that also holds a sampled block (about 1 KiB / 512 KiB of the live heap by default).
 *
 * Invariant (why a zero count is a safe "no"): count[i] == the number of registered blocks p with
 * index(p) == i. A block is registered, and its count raised, before malloc returns it; it is
 * unregistered, and its count lowered, before its memory goes back to mimalloc. A free(p) runs
 * after malloc returned p (the program's own synchronization orders them), so it reads the
 * increment for p or a later value of the same count, which includes p until p itself is
 * unregistered. Relaxed atomics suffice: each count is one memory location.
 *
 * Stream mode (an observer takes every malloc and free, observer.h) needs every free on the slow
 * path: free()'s view of the map is then a single entry pinned at 1 (index mask 0). The registry
 * keeps its own view, the real counts, and checks it before taking a lock, so a streamed free of
 * an unsampled block still costs no lock.
 *
 * The map and mask are set once, before the first sample (palloc_init), and never change: a block
 * registered under one mask and freed under another would be missed.
 *
 * Nothing here calls malloc (tables are mmap'd), so the registry can run inside malloc and free.
 * Fork: the prepare handler takes every stripe lock, so the child never inherits one held by a
 * thread that does not exist there.
 *
 * Signal handlers. A handler that frees a sampled block on a thread interrupted while it holds
 * (or is taking, or releasing) a stripe lock would wait for itself. Every registry call, and the
 * fork handlers' hold of all stripes, therefore runs with the thread's in_registry set and under
 * its guard (so a handler's allocations are unsampled and never reach palloc_registry_add). A
 * free that finds in_registry set (palloc_free_slow, palloc_realloc_slow) does not come here: it
 * pushes its block onto the thread's deferred list, a stack linked through the blocks' first
 * words, pushed by handlers with a CAS (a handler may be interrupted by another) and emptied
 * with one exchange. The interrupted registry call, as it leaves, takes each deferred block out
 * of the registry and frees it to mimalloc. Until then the block is neither reused (mimalloc has
 * not seen it) nor unregistered, so the registry and the profile never see its address twice;
 * the profile counts it live for the rest of that registry call.
 */
#include <sys/mman.h>
#include "internal.h"
#include "lock.h" /* palloc_lock_t: the stripes' locks */

#define MAP_MAX_BYTES ((size_t)256 << 20)
#define MAP_MIN_BYTES ((size_t)64 << 10)
#define COUNT_LIMIT 0xff00 /* leave room for concurrent increments below 0xffff */
#define STRIPES 64
#define SLOTS_FIRST 16     /* per stripe, in .bss: 32 KiB for all stripes, touched as used */

static _Atomic uint16_t zero_map[1];                 /* before init: every count is 0 */
static _Atomic uint16_t pinned_map[1] = {1};          /* stream mode: every free is slow */
/* free()'s view (map and mask share a cache line: free() reads both), and the registry's own:
 * the same map, except in stream mode. */
palloc_page_map_t palloc_page_map = {.counts = zero_map, .mask = 0};
static palloc_page_map_t counts_map = {.counts = zero_map, .mask = 0};

typedef struct {
  uintptr_t addr; /* 0 = empty */
  palloc_bucket_t *bucket;
  size_t size;
  uint64_t born; /* lifetime.c's clock at its allocation; 0 = not timed */
} slot_t;

typedef struct {
  palloc_lock_t lock; /* zeroed: free */
  slot_t *slots; /* cap slots: first_slots, then mmap'd; NULL until the first registration */
  size_t cap, used;
} __attribute__((aligned(64))) stripe_t;

static stripe_t stripes[STRIPES];
/* The first table of every stripe. Separate mmaps would cost a page per stripe in use (64
 * pages for as few as 64 live samples); these pack 2-3 stripes' first tables per page. */
static slot_t first_slots[STRIPES][SLOTS_FIRST];
static _Atomic uint64_t table_bytes;
static bool map_ready; /* set by palloc_registry_init, before the first sample can happen */
/* While in_registry is set: the stripe whose lock this thread takes, holds or releases (NULL
 * before the lock call and after the unlock; ALL_STRIPES for the fork handlers' hold of every
 * stripe). palloc_registry_each, run by a handler that interrupted this thread there (exit()
 * from a handler, whose destructor writes the lifetime profile), must not wait for it. */
static __thread stripe_t *entered __attribute__((tls_model("initial-exec")));
#define ALL_STRIPES (&stripes[STRIPES])
static inline void entered_set(stripe_t *s) {
  atomic_signal_fence(memory_order_seq_cst);
  entered = s;
  atomic_signal_fence(memory_order_seq_cst);
}

static inline uint64_t addr_hash(uintptr_t a) {
  uint64_t h = (uint64_t)(a >> 4) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}
static inline stripe_t *stripe_of(uint64_t h) { return &stripes[h >> 58]; }

bool palloc_registry_init(bool stream) {
  palloc_assert(!map_ready); /* once, by palloc_init: the map never changes */
  for (size_t bytes = MAP_MAX_BYTES; bytes >= MAP_MIN_BYTES && !map_ready; bytes /= 2) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) continue;
    atomic_store(&counts_map.mask, bytes / sizeof(uint16_t) - 1);
    atomic_store(&counts_map.counts, (_Atomic uint16_t *)m);
    map_ready = true;
  }
  /* free()'s view. Stream mode pins it even without a map: its free accounting needs the slow
   * path whether or not anything can be sampled. */
  _Atomic uint16_t *view = stream ? pinned_map : atomic_load(&counts_map.counts);
  atomic_store(&palloc_page_map.mask, stream ? 0 : atomic_load(&counts_map.mask));
  atomic_store(&palloc_page_map.counts, view);
  return map_ready;
}

static inline _Atomic uint16_t *count_of(uintptr_t a) {
  _Atomic uint16_t *map = atomic_load_explicit(&counts_map.counts, memory_order_relaxed);
  uintptr_t mask = atomic_load_explicit(&counts_map.mask, memory_order_relaxed);
  return &map[(a >> PALLOC_GRANULE_SHIFT) & mask];
}

/* Probe-run check (O(cap)): every entry lies in the run of its home slot, with no empty slot
 * between (what lookups and backward-shift deletion rely on), and used counts the entries. */
static bool __attribute__((unused)) stripe_valid(const stripe_t *s) {
  size_t n = 0, mask = s->cap - 1;
  for (size_t i = 0; i < s->cap; i++) {
    if (s->slots[i].addr == 0) continue;
    n++;
    for (size_t j = (size_t)addr_hash(s->slots[i].addr) & mask; j != i; j = (j + 1) & mask)
      if (s->slots[j].addr == 0) return false;
  }
  return n == s->used;
}

/* Inserts without growth checks (the caller made room). */
static void slot_put(stripe_t *s, uint64_t h, const slot_t *v) {
  palloc_assert(v->addr != 0 && s->used < s->cap); /* room: the probe below ends */
  size_t i = (size_t)h & (s->cap - 1);
  while (s->slots[i].addr != 0) i = (i + 1) & (s->cap - 1);
  s->slots[i] = *v;
  s->used++;
  palloc_assert(s->used * 4 <= s->cap * 3); /* stripes double at 3/4 load */
}

/* Out of line: the insert that needs it is rare, and inlined it made palloc_registry_add_at save
 * and reload registers on every call. */
static __attribute__((noinline)) bool grow(stripe_t *s) {
  slot_t *old = s->slots;
  if (old == NULL) {
    s->slots = first_slots[s - stripes];
    s->cap = SLOTS_FIRST;
    return true;
  }
  size_t cap = s->cap * 2;
  slot_t *slots = mmap(NULL, cap * sizeof(slot_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (slots == MAP_FAILED) return false;
  size_t oldcap = s->cap;
  s->slots = slots;
  s->cap = cap;
  s->used = 0;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].addr != 0) slot_put(s, addr_hash(old[i].addr), &old[i]);
  palloc_assert_expensive(stripe_valid(s));
  if (oldcap > SLOTS_FIRST) {
    munmap(old, oldcap * sizeof(slot_t));
    atomic_fetch_sub(&table_bytes, oldcap * sizeof(slot_t));
  }
  atomic_fetch_add(&table_bytes, cap * sizeof(slot_t));
  return true;
}

/* in_registry is 1 from just before a stripe lock is taken until just after it is released:
 * the whole stretch in which a handler's registry call could wait for this thread. */
static inline void flag_on(palloc_thread_t *t) {
  palloc_assert(t->in_registry == 0 && t->guard > 0); /* never nested; under the guard */
  t->in_registry = 1;
  atomic_signal_fence(memory_order_seq_cst);
}
static inline void flag_off(palloc_thread_t *t) {
  palloc_assert(t->in_registry == 1);
  atomic_signal_fence(memory_order_seq_cst);
  t->in_registry = 0;
  atomic_signal_fence(memory_order_seq_cst);
}

static bool take(palloc_thread_t *t, uintptr_t a, palloc_bucket_t **bucket, size_t *size,
                 uint64_t *born);

/* Frees the blocks that handlers deferred while this thread was in the registry. Runs under the
 * guard with the flag down; a handler that interrupts one of its own take() calls defers onto
 * the list again, and the loop picks that up. */
static void drain(palloc_thread_t *t) {
  palloc_assert(t->in_registry == 0 && t->guard > 0);
  void *p;
  while ((p = atomic_exchange_explicit(&t->deferred, NULL, memory_order_relaxed)) != NULL) {
    while (p != NULL) {
      void *next = *(void **)p;
      palloc_bucket_t *b;
      size_t size;
      uint64_t born;
      if (take(t, (uintptr_t)p, &b, &size, &born)) palloc_sample_freed(b, size, born);
      mi_free(p);
      p = next;
    }
  }
}

/* Every registry call runs under the guard, so that a handler's allocations meanwhile are
 * unsampled and never reach palloc_registry_add. On the way out, after the flag is down, it
 * frees what handlers deferred: a handler that arrives after that look finds the flag down and
 * frees by itself. */
static inline void enter(palloc_thread_t *t) { palloc_guard_enter(t); }
static inline void leave(palloc_thread_t *t) {
  if (palloc_unlikely(atomic_load_explicit(&t->deferred, memory_order_relaxed) != NULL)) drain(t);
  palloc_guard_exit(t);
}

void palloc_registry_defer_free(palloc_thread_t *t, void *p) {
  palloc_assert(t->in_registry == 1 && p != NULL);
  void *head = atomic_load_explicit(&t->deferred, memory_order_relaxed);
  do {
    *(void **)p = head;
  } while (!atomic_compare_exchange_weak_explicit(&t->deferred, &head, p, memory_order_relaxed,
                                                  memory_order_relaxed));
}

bool palloc_registry_add(const void *p, palloc_bucket_t *bucket, size_t size) {
  return palloc_registry_add_at(p, bucket, size, 0);
}

bool palloc_registry_add_at(const void *p, palloc_bucket_t *bucket, size_t size, uint64_t born) {
  uintptr_t a = (uintptr_t)p;
  if (!map_ready) return false; /* no map: a registered block could not be found again */
  _Atomic uint16_t *count = count_of(a);
  if (atomic_load_explicit(count, memory_order_relaxed) >= COUNT_LIMIT) return false;
  uint64_t h = addr_hash(a);
  stripe_t *s = stripe_of(h);
  palloc_thread_t *t = &palloc_thread;
  enter(t);
  flag_on(t);
  entered_set(s);
  palloc_lock(&s->lock);
  bool ok = (s->used + 1) * 4 <= s->cap * 3 || grow(s);
  if (ok) {
    slot_t v = {a, bucket, size, born};
    slot_put(s, h, &v);
    palloc_assert_expensive(stripe_valid(s));
    /* below 0xffff: no count wraps to 0, which would hide its blocks from free() */
    palloc_assert(atomic_load_explicit(count, memory_order_relaxed) < 0xffff);
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
  }
  palloc_unlock(&s->lock);
  entered_set(NULL);
  flag_off(t);
  leave(t);
  return ok;
}

bool palloc_registry_take(const void *p, palloc_bucket_t **bucket, size_t *size) {
  uint64_t born;
  return palloc_registry_take_at(p, bucket, size, &born);
}

bool palloc_registry_take_at(const void *p, palloc_bucket_t **bucket, size_t *size,
                             uint64_t *born) {
  uintptr_t a = (uintptr_t)p;
  if (atomic_load_explicit(count_of(a), memory_order_relaxed) == 0) return false; /* see top */
  palloc_thread_t *t = &palloc_thread;
  enter(t);
  bool found = take(t, a, bucket, size, born);
  leave(t);
  return found;
}

/* palloc_registry_take's work, inside enter/leave. */
static bool take(palloc_thread_t *t, uintptr_t a, palloc_bucket_t **bucket, size_t *size,
                 uint64_t *born) {
  _Atomic uint16_t *count = count_of(a);
  if (atomic_load_explicit(count, memory_order_relaxed) == 0) return false;
  uint64_t h = addr_hash(a);
  stripe_t *s = stripe_of(h);
  bool found = false;
  flag_on(t);
  entered_set(s);
  palloc_lock(&s->lock);
  if (s->used != 0) {
    size_t mask = s->cap - 1, i = (size_t)h & mask;
    for (; s->slots[i].addr != 0; i = (i + 1) & mask) {
      if (s->slots[i].addr != a) continue;
      found = true;
      *bucket = s->slots[i].bucket;
      *size = s->slots[i].size;
      *born = s->slots[i].born;
      /* Backward-shift deletion: pull later members of the probe run into the hole when the
       * hole lies between their home slot and their current slot. */
      size_t hole = i;
      for (size_t j = (i + 1) & mask; s->slots[j].addr != 0; j = (j + 1) & mask) {
        size_t home = (size_t)addr_hash(s->slots[j].addr) & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
          s->slots[hole] = s->slots[j];
          hole = j;
        }
      }
      s->slots[hole].addr = 0;
      palloc_assert(s->used > 0);
      s->used--;
      palloc_assert_expensive(stripe_valid(s));
      /* never negative: a's registration raised it, and only a's removal lowers it for a */
      palloc_assert(atomic_load_explicit(count, memory_order_relaxed) > 0);
      atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
      break;
    }
  }
  palloc_unlock(&s->lock);
  entered_set(NULL);
  flag_off(t);
  return found;
}

uint64_t palloc_registry_bytes(void) { return atomic_load(&table_bytes); }

/* One stripe at a time: a stripe's blocks are seen as of its lock, the stripes at different
 * instants (a profile is a snapshot per stripe, not of the whole heap at once).
 * On a thread already inside the registry (a signal handler interrupted a registry call there,
 * and calls exit(), whose destructor writes the lifetime profile), the stripe that call may
 * hold is left out, and the flag is left as that call set it (so that a further handler's free
 * is deferred, not blocked): the other stripes are taken as usual. */
void palloc_registry_each(void (*fn)(void *arg, palloc_bucket_t *b, size_t size, uint64_t born),
                          void *arg) {
  palloc_thread_t *t = &palloc_thread;
  if (palloc_unlikely(t->in_registry)) {
    stripe_t *held = entered;
    for (int k = 0; k < STRIPES && held != ALL_STRIPES; k++) {
      stripe_t *s = &stripes[k];
      if (s == held) continue;
      palloc_guard_enter(t);
      palloc_lock(&s->lock);
      for (size_t i = 0; s->slots != NULL && i < s->cap; i++)
        if (s->slots[i].addr != 0) fn(arg, s->slots[i].bucket, s->slots[i].size, s->slots[i].born);
      palloc_unlock(&s->lock);
      palloc_guard_exit(t);
    }
    return;
  }
  for (int k = 0; k < STRIPES; k++) {
    stripe_t *s = &stripes[k];
    enter(t);
    flag_on(t);
    palloc_lock(&s->lock);
    for (size_t i = 0; s->slots != NULL && i < s->cap; i++)
      if (s->slots[i].addr != 0) fn(arg, s->slots[i].bucket, s->slots[i].size, s->slots[i].born);
    palloc_unlock(&s->lock);
    flag_off(t);
    leave(t);
  }
}

/* Fork handlers: the forking thread holds every stripe from prepare to parent/child. */
void palloc_registry_lock(void) {
  enter(&palloc_thread);
  flag_on(&palloc_thread);
  entered_set(ALL_STRIPES);
  for (int i = 0; i < STRIPES; i++) palloc_lock(&stripes[i].lock);
}
void palloc_registry_unlock(void) {
  for (int i = STRIPES - 1; i >= 0; i--) palloc_unlock(&stripes[i].lock);
  entered_set(NULL);
  flag_off(&palloc_thread);
  leave(&palloc_thread);
}
