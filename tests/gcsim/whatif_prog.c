/* whatif_prog.c LIVE_MIB CHURN_MIB BLOCK - a known malloc/free stream for the what-if test.
 *
 * Keeps LIVE_MIB of BLOCK-byte blocks, then allocates and frees CHURN_MIB more, one block at a
 * time. Linked with libpalloc; run with PALLOC_TRACE=1 by check_whatif.py. Prints the number of
 * cycles the documented pacer formula predicts for this stream (under the same PALLOC_GOGC and
 * PALLOC_MEMLIMIT), computed here independently of gcsim:
 *   goal = max(M + M*GOGC/100, 4 MiB*GOGC/100), or, with a limit, at most
 *   limit - max(3% of limit, 1 MiB), never below M; a cycle runs when the heap reaches the goal.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int64_t heap, live, goal; int gogc; int64_t limit; long cycles; } sim_t;

static int64_t goal_of(const sim_t *s, int64_t m) {
  int64_t goal = INT64_MAX;
  if (s->gogc >= 0) {
    goal = m + m * s->gogc / 100;
    int64_t minimum = ((int64_t)4 << 20) * s->gogc / 100;
    if (goal < minimum) goal = minimum;
  }
  if (s->limit != INT64_MAX) {
    int64_t head = s->limit / 100 * 3;
    if (head < (1 << 20)) head = 1 << 20;
    if (s->limit - head < goal) goal = s->limit - head;
  }
  return goal < m ? m : goal;
}

static void sim_alloc(sim_t *s, int64_t n) {
  s->heap += n;
  s->live += n;
  if (s->heap >= s->goal) {
    s->cycles++;
    s->heap = s->live;
    s->goal = goal_of(s, s->live);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  size_t live_mib = strtoul(argv[1], NULL, 10), churn_mib = strtoul(argv[2], NULL, 10);
  size_t block = strtoul(argv[3], NULL, 10);
  sim_t s = {.gogc = 100, .limit = INT64_MAX};
  const char *g = getenv("PALLOC_GOGC"), *l = getenv("PALLOC_MEMLIMIT");
  if (g) s.gogc = strcmp(g, "off") == 0 ? -1 : atoi(g);
  if (l && strcmp(l, "off") != 0) {
    char *end;
    s.limit = (int64_t)strtoll(l, &end, 10);
    if (strcmp(end, "MiB") == 0) s.limit <<= 20;
    if (strcmp(end, "GiB") == 0) s.limit <<= 30;
  }
  s.goal = goal_of(&s, 0);

  void *probe = malloc(block);
  size_t u = malloc_usable_size(probe);
  free(probe);
  size_t nlive = (live_mib << 20) / u;
  void **keep = malloc(nlive * sizeof *keep);
  sim_alloc(&s, (int64_t)malloc_usable_size(keep));
  for (size_t i = 0; i < nlive; i++) {
    keep[i] = malloc(block);
    memset(keep[i], 1, 16);
    sim_alloc(&s, (int64_t)u);
  }
  size_t nchurn = (churn_mib << 20) / u;
  for (size_t i = 0; i < nchurn; i++) {
    char *volatile p = malloc(block);
    p[0] = 1;
    free(p);
    sim_alloc(&s, (int64_t)u);
    s.live -= (int64_t)u;
  }
  printf("expect_cycles=%ld usable=%zu live_bytes=%lld\n", s.cycles, u,
         (long long)(nlive * u + malloc_usable_size(keep)));
  for (size_t i = 0; i < nlive; i++) free(keep[i]);
  free(keep);
  return 0;
}
