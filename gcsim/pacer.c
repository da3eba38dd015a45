/* pacer.c - the heap goal, Go's GOGC / GOMEMLIMIT syntax, and the GC CPU limiter.
 *
 * The formulas are Go 1.18+'s (runtime/mgcpacer.go, proposals 44167 and 48409):
 *   GOGC goal   = live + (live + stacks + globals) * GOGC/100, at least 4 MiB * GOGC/100;
 *   limit goal  = limit - nonheap - headroom, headroom = max(3% of (limit - nonheap), 1 MiB);
 *   goal        = min(GOGC goal, limit goal), never below the live heap.
 * Our collector stops the world, so it triggers at the goal itself (Go's concurrent collector
 * triggers earlier to finish marking by the goal).
 *
 * Everything here may run inside palloc's first malloc (the what-if mode reads the environment
 * at initialization): getenv and hand-written parsing only, no stdio, no allocation.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "pacer.h"

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
  return goal;
}

static bool ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
    char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
    if (x != y) return false;
  }
  return *a == *b;
}

bool palloc_pacer_parse_gogc(const char *s, int *out) {
  if (s == NULL || *s == 0) return false;
  if (ieq(s, "off")) {
    *out = -1;
    return true;
  }
  bool neg = *s == '-';
  if (neg || *s == '+') s++;
  if (*s == 0) return false;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000) return false;
    v = v * 10 + (*s - '0');
  }
  *out = neg ? -1 : (int)v;
  return true;
}

bool palloc_pacer_parse_limit(const char *s, int64_t *out) {
  if (s == NULL || *s == 0) return false;
  if (ieq(s, "off")) {
    *out = INT64_MAX;
    return true;
  }
  if (*s < '0' || *s > '9') return false;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (uint64_t)INT64_MAX / 10) return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  /* Go accepts exactly these suffixes (case-sensitive), as runtime/debug.SetMemoryLimit's doc */
  static const struct { const char *suffix; int shift; } units[] = {
    {"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(s, units[i].suffix) != 0) continue;
    if (v > ((uint64_t)INT64_MAX >> units[i].shift)) return false;
    *out = (int64_t)(v << units[i].shift);
    return true;
  }
  return false;
}

/* One line in one write(2), and each variable reported once per process however often it is
 * read (at start-up, and again by every arena that takes its settings from the environment). */
void palloc_pacer_warn_env(atomic_bool *once, const char *name, const char *value) {
  if (atomic_exchange(once, true)) return;
  char line[384];
  const char *parts[] = {"palloc: ignoring ", name, "=", value, " (not understood)\n"};
  size_t n = 0;
  const size_t count = sizeof parts / sizeof parts[0], tail = strlen(parts[count - 1]);
  for (size_t i = 0; i < count; i++) {
    size_t k = strlen(parts[i]), room = sizeof line - n - (i + 1 < count ? tail : 0);
    if (k > room) k = room; /* a long value is cut; the end of the line stays */
    memcpy(line + n, parts[i], k);
    n += k;
  }
  ssize_t r = write(2, line, n);
  (void)r;
}

int palloc_pacer_env_gogc(void) {
  const char *s = getenv("PALLOC_GOGC");
  int v = 100;
  if (s != NULL && *s != 0 && !palloc_pacer_parse_gogc(s, &v)) {
    static atomic_bool once;
    palloc_pacer_warn_env(&once, "PALLOC_GOGC", s);
    v = 100;
  }
  return v;
}

int64_t palloc_pacer_env_limit(void) {
  const char *s = getenv("PALLOC_MEMLIMIT");
  int64_t v = INT64_MAX;
  if (s != NULL && *s != 0 && !palloc_pacer_parse_limit(s, &v)) {
    static atomic_bool once;
    palloc_pacer_warn_env(&once, "PALLOC_MEMLIMIT", s);
    v = INT64_MAX;
  }
  return v;
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
}

bool palloc_limiter_full(const palloc_limiter_t *l) { return l->fill >= l->capacity; }
