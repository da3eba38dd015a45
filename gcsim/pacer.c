/* pacer.c - the heap goal, Go's GOGC / GOMEMLIMIT syntax, and the GC CPU limiter.
 *
 * The formulas are Go 1.18+'s (runtime/mgcpacer.go, proposals 44167 and 48409):
 *   GOGC goal   = live + (live + stacks + globals) * GOGC/100, at least 4 MiB * GOGC/100;
 *   limit goal  = limit - nonheap - headroom, headroom = max(3% of (limit - nonheap), 1 MiB);
 *   goal        = min(GOGC goal, limit goal), never below the live heap.
 * Our collector stops the world, so it triggers at the goal itself (Go's concurrent collector
 * triggers earlier to finish marking by the goal).
 *
 * PALLOC_GOGC and PALLOC_MEMLIMIT are read by alloc/options.c with the other variables: gcsim
 * reads their values through its accessors.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "pacer.h"
#include "palloc_assert.h"

uint64_t palloc_pacer_goal(int gogc, int64_t limit, uint64_t live, uint64_t stacks,
                           uint64_t globals, uint64_t nonheap) {
  uint64_t goal = PALLOC_GC_NO_GOAL;
  if (gogc >= 0) {
    goal = live + (live + stacks + globals) * (uint64_t)gogc / 100;
    uint64_t minimum = PALLOC_GC_HEAP_MINIMUM * (uint64_t)gogc / 100;
    if (goal < minimum) goal = minimum;
  }
  if (limit >= 0 && limit != INT64_MAX) {
    uint64_t room = (uint64_t)limit > nonheap ? (uint64_t)limit - nonheap : 0;
    uint64_t headroom = room / 100 * 3;
    if (headroom < ((uint64_t)1 << 20)) headroom = (uint64_t)1 << 20;
    uint64_t lgoal = room > headroom ? room - headroom : 0;
    if (lgoal < goal) goal = lgoal;
  }
  if (goal < live) goal = live;
  /* never below the live heap; with no memory limit, never below the heap minimum */
  palloc_assert(goal >= live);
  palloc_assert(gogc < 0 || (limit >= 0 && limit != INT64_MAX) ||
                goal >= PALLOC_GC_HEAP_MINIMUM * (uint64_t)gogc / 100);
  return goal;
}

/* Go's limiter fills its bucket with GC CPU time and drains it with mutator time, so that it
 * stays level at a 50% GC share; above that share it fills, and once full GC work is refused
 * (in Go, assists stop; here, a collection that is due is postponed and the heap overshoots).
 * The capacity (1 CPU-second per P) lets short bursts of GC through.
 *
 * Go meters GC work finely (an assist stops as soon as the bucket is full), so its fill never
 * exceeds the capacity. A stop-the-world cycle is one indivisible piece of GC time: the fill
 * keeps what the last cycle put over the capacity, and the mutator pays it back before the next
 * cycle may run. Clamping it instead would let a cycle run after any mutator time at all, i.e.
 * back to back, since a limit below the live heap makes every allocation due. Invariant: GC
 * time <= mutator time + capacity + the last cycle. */
void palloc_limiter_init(palloc_limiter_t *l, int procs) {
  l->fill = 0;
  l->capacity = (int64_t)(procs > 0 ? procs : 1) * 1000000000;
}

void palloc_limiter_account(palloc_limiter_t *l, int64_t gc_ns, int64_t mutator_ns) {
  int64_t f = l->fill + gc_ns - mutator_ns;
  l->fill = f < 0 ? 0 : f;
  palloc_assert(gc_ns >= 0 && mutator_ns >= 0 && l->fill >= 0);
}

bool palloc_limiter_full(const palloc_limiter_t *l) { return l->fill >= l->capacity; }
