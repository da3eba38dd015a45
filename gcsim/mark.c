/* mark.c - conservative marking from the roots, with an explicit mark stack.
 *
 * Every aligned word of a root or of a reached scanned object is a candidate pointer. It is
 * resolved in O(1) (gcinternal.h): outside [base, bump) or on a page without a span it is
 * ignored; otherwise the slot it falls in (interior pointers included) is marked if it holds an
 * object, and pushed as a range if it is scannable. Atomic (noscan) objects are marked, never
 * pushed.
 *
 * The mark stack is an mmap'd array of ranges that grows with mremap, so deep structures (a
 * long list is a chain of pushes and pops) never recurse on the C stack. If it cannot grow, we
 * drop the push, note the overflow, and afterwards rescan every marked scannable object until a
 * pass overflows no more (marking is idempotent, so rescanning only costs time).
 *
 * Roots: (1) the collecting thread's registers, spilled to its stack by __builtin_unwind_init in
 * a frame above the scan start, and its stack from there to the top given by
 * pthread_getattr_np; (2) the main executable's writable PT_LOAD segments (data, bss), found
 * once per arena with dl_iterate_phdr; (3) the registered ranges. Scanning reads stack slots and
 * globals' redzones that AddressSanitizer poisons, so the scanning functions are not
 * instrumented.
 */
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include "gcinternal.h"

#define NO_ASAN __attribute__((no_sanitize_address))

bool palloc_gc_stack_reserve(palloc_gc_t *a) {
  size_t cap = (size_t)1 << 16;
  void *p = mmap(NULL, cap * sizeof(gc_range_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  a->stack = p;
  a->stack_cap = cap;
  a->stack_len = 0;
  return true;
}

static bool stack_grow(palloc_gc_t *a) {
  size_t old = a->stack_cap * sizeof(gc_range_t);
  void *p = mremap(a->stack, old, old * 2, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return false;
  a->stack = p;
  a->stack_cap *= 2;
  return true;
}

static inline void push(palloc_gc_t *a, uintptr_t lo, uintptr_t hi) {
  if (a->stack_len == a->stack_cap && !stack_grow(a)) {
    a->overflowed = true;
    return;
  }
  palloc_assert(a->stack_len < a->stack_cap && lo < hi);
  a->stack[a->stack_len].lo = lo;
  a->stack[a->stack_len].hi = hi;
  a->stack_len++;
}

static inline void mark_word(palloc_gc_t *a, uintptr_t w) {
  gc_span_t *s = palloc_gc_span_of(a, w);
  if (s == NULL) return;
  uint32_t idx = palloc_gc_index(s, w);
  if (idx >= s->nobjs) return;
  uint64_t bit = (uint64_t)1 << (idx & 63);
  uint32_t wi = idx >> 6;
  if ((s->alloc[wi] & bit) == 0 || (s->mark[wi] & bit) != 0) return;
  s->mark[wi] |= bit;
  palloc_assert(a->marked_objs < a->mallocs - a->frees); /* allocated objects only, once */
  a->marked_bytes += s->size;
  a->marked_objs++;
  if (!s->noscan) {
    uintptr_t lo = s->start + (uintptr_t)idx * s->size;
    push(a, lo, lo + s->size);
  }
}

NO_ASAN static void scan_range(palloc_gc_t *a, uintptr_t lo, uintptr_t hi) {
  lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
  for (uintptr_t p = lo; p + sizeof(uintptr_t) <= hi; p += sizeof(uintptr_t))
    mark_word(a, *(volatile uintptr_t *)p);
}

/* Marking is bound by cache misses on the objects being scanned (pointer chasing). Ranges
 * popped from the stack pass through a small FIFO and are prefetched on entry, so each is in
 * cache by the time it leaves the FIFO to be scanned (Boehm GC and others do the same). */
#define PREFETCH_DEPTH 16

static void drain(palloc_gc_t *a) {
  gc_range_t q[PREFETCH_DEPTH];
  unsigned head = 0, count = 0;
  for (;;) {
    while (count < PREFETCH_DEPTH && a->stack_len > 0) {
      gc_range_t r = a->stack[--a->stack_len];
      __builtin_prefetch((const void *)r.lo);
      q[(head + count++) % PREFETCH_DEPTH] = r;
    }
    if (count == 0) return;
    gc_range_t r = q[head];
    head = (head + 1) % PREFETCH_DEPTH;
    count--;
    const uintptr_t *p = (const uintptr_t *)r.lo, *end = (const uintptr_t *)r.hi;
    for (; p < end; p++) mark_word(a, *p);
  }
}

static void rescan_overflow(palloc_gc_t *a) {
  while (a->overflowed) {
    a->overflowed = false;
    for (gc_span_t *s = a->inuse; s != NULL; s = s->next) {
      if (s->noscan) continue;
      for (uint32_t i = 0; i < s->nobjs; i++) {
        if ((s->mark[i >> 6] >> (i & 63)) & 1) {
          uintptr_t lo = s->start + (uintptr_t)i * s->size;
          scan_range(a, lo, lo + s->size);
          drain(a);
        }
      }
    }
  }
}

static __thread uintptr_t stack_top;

static uintptr_t thread_stack_top(void) {
  if (stack_top == 0) {
    pthread_attr_t at;
    if (pthread_getattr_np(pthread_self(), &at) == 0) {
      void *addr;
      size_t size;
      if (pthread_attr_getstack(&at, &addr, &size) == 0) stack_top = (uintptr_t)addr + size;
      pthread_attr_destroy(&at);
    }
  }
  return stack_top;
}

NO_ASAN __attribute__((noinline)) static void scan_stack(palloc_gc_t *a) {
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  uintptr_t top = thread_stack_top();
  if (top > sp) {
    scan_range(a, sp, top);
    a->scanned_stack = top - sp;
  }
}

/* The callee-saved registers are spilled into this frame, which lies between scan_stack's frame
 * (the scan start) and the top of the stack; caller-saved ones are already on the stack. */
__attribute__((noinline)) static void scan_registers_and_stack(palloc_gc_t *a) {
  __builtin_unwind_init();
  scan_stack(a);
  __asm__ volatile("" ::: "memory");
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  palloc_gc_t *a = arg;
  for (int i = 0; i < info->dlpi_phnum && a->ndata < 8; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) == 0) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    a->data[a->ndata].lo = lo;
    a->data[a->ndata].hi = lo + ph->p_memsz;
    a->ndata++;
  }
  return 1; /* the first object is the main executable: stop there */
}

void palloc_gc_find_data(palloc_gc_t *a) {
  a->ndata = 0;
  dl_iterate_phdr(phdr_cb, a);
}

void palloc_gc_mark(palloc_gc_t *a) {
  a->marked_bytes = a->marked_objs = 0;
  a->scanned_stack = a->scanned_globals = 0;
  a->stack_len = 0;
  a->overflowed = false;
  scan_registers_and_stack(a);
  drain(a);
  if (a->scan_data) {
    for (int i = 0; i < a->ndata; i++) {
      scan_range(a, a->data[i].lo, a->data[i].hi);
      a->scanned_globals += a->data[i].hi - a->data[i].lo;
      drain(a);
    }
  }
  for (int i = 0; i < a->nroots; i++) {
    scan_range(a, a->roots[i].lo, a->roots[i].hi);
    a->scanned_globals += a->roots[i].hi - a->roots[i].lo;
    drain(a);
  }
  rescan_overflow(a);
}
