/* whatif.c - PALLOC_TRACE=1 for malloc/free programs: the gctrace a Go-style collector would print.
 *
 * An observer of alloc's allocation stream (alloc/observer.h): alloc accounts every malloc and
 * free of the program (usable bytes) per thread and publishes batches of ~64 KiB here, as Go's
 * per-P heapLive updates do; nothing is shared per malloc. We replay that stream against the
 * arena's pacer (pacer.c), for a stop-the-world collector that triggers at its goal:
 *   - the simulated heap grows by every byte allocated; frees do not shrink it (a collected heap
 *     only shrinks when a cycle runs);
 *   - when it reaches the goal a cycle "runs": the marked heap is the bytes allocated and not
 *     yet freed at that moment, the heap drops to it, and the next goal is the pacer's
 *     (stacks and globals are not modelled: both print 0 and do not enter the goal);
 *   - the mark cost is marked bytes / the marking throughput of this machine, measured once, at
 *     the first cycle, by building a 4 MiB pointer-chasing heap (32-byte nodes linked in a
 *     scattered order) in a private arena and taking the fastest of five mark phases, in
 *     thread CPU time (wall time would count preemption on a busy machine).
 *     PALLOC_TRACE_MARKRATE=<bytes per second, B/KiB/MiB/GiB suffixes> replaces the measurement.
 *     That estimate prints as the mark clock and background-mark cpu fields; sweep termination,
 *     mark termination, assist and idle print 0 (not modelled), and the line says 1 P;
 *     C blocks carry no type information, so every live byte counts as scanned: an upper
 *     bound for programs whose blocks are mostly pointer-free;
 *   - time is simulated: the collector stops the world, so the program would have stood still
 *     for every pause. The clock the lines print (`@T`) is the program's wall time since start
 *     plus every simulated pause so far (less palloc's own calibration), and the GC CPU share is
 *     simulated GC time / that clock, Go's gc_cpu_fraction with 1 P; so a cycle starts at least
 *     one pause after the previous one, and `@T`, the pauses and `N%` agree;
 *   - the GC CPU limiter (pacer.c, Go's mgclimit.go) fills with the simulated pauses and drains
 *     with the CPU the program used, at most the wall time elapsed (one P; like Go, time the
 *     program sleeps is not mutator time). Once it is full (1 CPU-second of GC beyond the
 *     mutator's), a due cycle waits and the heap overshoots its goal; the share then tends to
 *     50%. A memory limit below the live heap makes the goal the live heap, so every batch is
 *     due: the limiter is what bounds the cycles, as in Go;
 *   - with GOGC on and no cycle for 2 minutes, a "GC forced" line and a cycle (Go's periodic GC).
 * At exit, a summary line: cycles, estimated GC CPU share, peak heap with GC vs peak live bytes.
 *
 * PALLOC_TRACE is shared with the GC arena: once the program creates an arena, the arena's real
 * trace lines are the ones printed and the what-if stops printing lines (its summary says so).
 * Batches are per thread, so up to 64 KiB per thread is not yet counted at any moment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "gcinternal.h"
#include "observer.h"
#include "options.h"

static struct {
  bool on;
  int mode, gogc;
  int64_t limit;
  int64_t live, heap, peak_live, peak_heap;
  uint64_t goal;                  /* the pacer's heap goal, printed by the next cycle      */
  uint64_t trigger;               /* a cycle is due at this heap: the goal, or later while
                                   * the limiter is full                                    */
  uint64_t cycles, batches;
  uint64_t gc_ns;                 /* simulated pauses so far: the clock runs on by each    */
  uint64_t calib_wall, calib_cpu; /* palloc's calibration: not the program's time          */
  uint64_t wall_stamp, cpu_stamp; /* program wall and CPU time when the limiter last looked */
  uint64_t last_cycle_wall;       /* program wall time at the last cycle (periodic GC)      */
  double rate;         /* bytes marked per ns */
  bool rate_from_env;
  int64_t env_rate;    /* PALLOC_TRACE_MARKRATE, bytes per second, or 0 */
  palloc_limiter_t limiter;
} W;
static pthread_mutex_t W_mu = PTHREAD_MUTEX_INITIALIZER;

/* The observer's `wanted`: at palloc's initialization, possibly inside the process's first
 * malloc, after alloc/options.c has read (and checked) every variable: no allocation, no stdio.
 * True when PALLOC_TRACE is 1 or legacy. */
static bool whatif_wanted(void) {
  W.mode = (int)palloc_option_int(PALLOC_OPT_TRACE);
  W.gogc = (int)palloc_option_int(PALLOC_OPT_GOGC);
  W.limit = palloc_option_int(PALLOC_OPT_MEMLIMIT);
  W.env_rate = palloc_option_int(PALLOC_OPT_TRACE_MARKRATE);
  if (W.mode == PALLOC_TRACE_OFF) return false;
  (void)palloc_gc_since_start();
  W.goal = W.trigger = palloc_pacer_goal(W.gogc, W.limit, 0, 0, 0, 0);
  palloc_limiter_init(&W.limiter, 1);
  W.on = true;
  return true;
}

static uint64_t process_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The program's own time since start: wall (monotonic) and process CPU, without the time the
 * calibration took. The simulated clock is program_wall() + W.gc_ns. */
static uint64_t program_wall(void) {
  uint64_t t = palloc_gc_since_start();
  return t > W.calib_wall ? t - W.calib_wall : 0;
}
static uint64_t program_cpu(void) {
  uint64_t t = process_cpu_ns();
  return t > W.calib_cpu ? t - W.calib_cpu : 0;
}

bool palloc_whatif_figures(uint64_t *cycles, uint64_t *goal, int64_t *heap, int64_t *live,
                           double *cpu_fraction) {
  if (!W.on || atomic_load(&palloc_gc_arenas) > 0) return false;
  pthread_mutex_lock(&W_mu);
  *cycles = W.cycles;
  *goal = W.goal;
  *heap = W.heap;
  *live = W.live;
  uint64_t clock = program_wall() + W.gc_ns; /* the simulated clock, as the trace lines' */
  *cpu_fraction = clock ? (double)W.gc_ns / (double)clock : 0;
  pthread_mutex_unlock(&W_mu);
  return true;
}

typedef struct node_s { struct node_s *next; uintptr_t pad[3]; } node_t;
static void *calib_roots[64];

static double calibrate(void) {
  if (W.env_rate > 0) {
    W.rate_from_env = true;
    return (double)W.env_rate / 1e9;
  }
  palloc_gc_options_t o;
  palloc_gc_options_init(&o);
  o.gogc = PALLOC_GC_OFF;
  o.memory_limit = PALLOC_GC_NO_LIMIT;
  o.scan_data = 0;
  o.trace = PALLOC_TRACE_OFF;
  o.max_heap = (size_t)64 << 20;
  palloc_gc_t *a = palloc_gc_create_internal(&o, false);
  const size_t n = 128 << 10; /* 4 MiB of 32-byte nodes */
  node_t **tmp = mmap(NULL, n * sizeof *tmp, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == NULL || tmp == MAP_FAILED) {
    if (a) palloc_gc_destroy(a);
    return 1.0; /* 1 byte/ns = ~1 GB/s, a conservative guess */
  }
  a->sample = false;
  for (size_t i = 0; i < n; i++) tmp[i] = palloc_gc_malloc(a, sizeof(node_t));
  /* 64 lists, each visiting nodes in a scattered order (stride coprime with n) */
  size_t stride = 40503, per = n / 64;
  for (size_t l = 0; l < 64; l++) {
    node_t *prev = NULL;
    for (size_t k = 0; k < per; k++) {
      node_t *x = tmp[((l * per + k) * stride) % n];
      if (x == NULL) continue;
      x->next = prev;
      prev = x;
    }
    calib_roots[l] = prev;
  }
  munmap(tmp, n * sizeof *tmp);
  palloc_gc_add_root(a, calib_roots, sizeof calib_roots);
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 5; i++) {
    palloc_gc_collect(a);
    if (a->last_mark_cpu < best) best = a->last_mark_cpu;
  }
  double rate = best ? (double)a->heap_marked / (double)best : 1.0;
  memset(calib_roots, 0, sizeof calib_roots);
  palloc_gc_destroy(a);
  return rate > 0 ? rate : 1.0;
}

static void emit(const char *s, size_t n) {
  if (atomic_load_explicit(&palloc_gc_arenas, memory_order_relaxed) != 0) return;
  palloc_gctrace_write(palloc_gctrace_fd(), s, n);
}

static void cycle(bool periodic) {
  if (W.rate == 0) {
    uint64_t w0 = palloc_gc_now_ns(), c0 = process_cpu_ns();
    W.rate = calibrate();
    W.calib_wall += palloc_gc_now_ns() - w0;
    W.calib_cpu += process_cpu_ns() - c0;
  }
  uint64_t wall = program_wall(), cpu = program_cpu();
  /* mutator time for the limiter: the CPU the program used, at most one P's worth */
  uint64_t dw = wall > W.wall_stamp ? wall - W.wall_stamp : 0;
  uint64_t dc = cpu > W.cpu_stamp ? cpu - W.cpu_stamp : 0;
  palloc_limiter_account(&W.limiter, 0, (int64_t)(dc < dw ? dc : dw));
  W.wall_stamp = wall;
  W.cpu_stamp = cpu;
  if (!periodic && palloc_limiter_full(&W.limiter)) {
    /* over the 50% cap: the heap overshoots; look again a little later */
    uint64_t slack = (uint64_t)W.heap / 16 > ((uint64_t)1 << 20) ? (uint64_t)W.heap / 16 : (uint64_t)1 << 20;
    W.trigger = (uint64_t)W.heap + slack;
    return;
  }
  uint64_t start = wall + W.gc_ns; /* the simulated clock */
  uint64_t marked = (uint64_t)W.live;
  uint64_t mark_ns = (uint64_t)((double)marked / W.rate);
  W.cycles++;
  W.gc_ns += mark_ns;
  palloc_limiter_account(&W.limiter, (int64_t)mark_ns, 0);
  palloc_gctrace_cycle_t c = {
    .n = W.cycles, .start_ns = start,
    .cpu_fraction = start + mark_ns ? (double)W.gc_ns / (double)(start + mark_ns) : 0,
    .clock = {0, mark_ns, 0}, .cpu = {0, 0, mark_ns, 0, 0},
    .heap0 = (uint64_t)W.heap, .heap1 = (uint64_t)W.heap, .marked = marked, .goal = W.goal,
    .stacks = 0, .globals = 0, .procs = 1, .forced = false,
  };
  W.heap = (int64_t)marked;
  W.goal = W.trigger = palloc_pacer_goal(W.gogc, W.limit, marked, 0, 0, 0);
  palloc_assert(W.heap == W.live && W.goal >= marked);
  W.last_cycle_wall = wall;
  char buf[256];
  size_t n = palloc_gctrace_format(buf, &c, W.mode == PALLOC_TRACE_LEGACY);
  if (periodic) emit("GC forced\n", 10);
  emit(buf, n);
}

/* The observer's `publish`: a batch of one thread's usable bytes; any thread, with palloc's
 * reentrancy guard held. */
static void whatif_publish(int64_t allocated, int64_t freed) {
  if (!W.on) return;
  pthread_mutex_lock(&W_mu);
  W.batches++;
  W.live += allocated - freed;
  if (W.live < 0) W.live = 0; /* frees published before the other thread's allocations */
  W.heap += allocated;
  if (W.live > W.peak_live) W.peak_live = W.live;
  if (W.heap > W.peak_heap) W.peak_heap = W.heap;
  /* the simulated heap holds every live byte: it grows by all allocated, shrinks to live */
  palloc_assert(allocated >= 0 && freed >= 0 && W.live >= 0 && W.heap >= W.live);
  if ((uint64_t)W.heap >= W.trigger)
    cycle(false);
  else if (W.gogc >= 0 && (W.batches & 15) == 0 && /* the clock: every ~1 MiB */
           program_wall() - W.last_cycle_wall >= (uint64_t)120 * 1000000000u)
    cycle(true);
  pthread_mutex_unlock(&W_mu);
}

static void fmt_limit(char *b, size_t n, int64_t v) {
  if (v == INT64_MAX) snprintf(b, n, "off");
  else snprintf(b, n, "%.1f MiB", (double)v / 1048576.0);
}

/* The observer's `exit`: palloc's destructor, after the program's. */
static void whatif_summary(void) {
  if (!W.on || W.batches == 0) return; /* nothing published: no malloc stream to speak of */
  pthread_mutex_lock(&W_mu);
  char gogc[16], lim[32], line[512];
  if (W.gogc < 0) snprintf(gogc, sizeof gogc, "off");
  else snprintf(gogc, sizeof gogc, "%d", W.gogc);
  fmt_limit(lim, sizeof lim, W.limit);
  uint64_t elapsed = program_wall() + W.gc_ns; /* the simulated clock */
  double frac = elapsed ? 100.0 * (double)W.gc_ns / (double)elapsed : 0;
  int n = snprintf(line, sizeof line,
                   "palloc: what-if GC summary: %llu cycles, estimated GC CPU %.1f%%, peak heap "
                   "%.1f MiB with GC vs %.1f MiB peak live (GOGC=%s, memory limit %s, mark rate "
                   "%.0f MB/s %s)%s\n",
                   (unsigned long long)W.cycles, frac, (double)W.peak_heap / 1048576.0,
                   (double)W.peak_live / 1048576.0, gogc, lim, W.rate * 1000.0,
                   W.rate == 0 ? "not needed" : W.rate_from_env ? "from PALLOC_TRACE_MARKRATE"
                                                                 : "calibrated",
                   atomic_load(&palloc_gc_arenas) ? "; lines muted: the program uses a GC arena"
                                                  : "");
  pthread_mutex_unlock(&W_mu);
  if (n > 0) palloc_gctrace_write(palloc_gctrace_fd(), line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Fork: a child must not inherit W_mu held by a thread that does not exist there (its first
 * batch would wait forever). palloc's fork handlers call these before taking alloc's locks and
 * after releasing them; a thread that holds W_mu takes no lock of alloc's (it runs under the
 * guard), so the order holds. */
static void whatif_fork_prepare(void) { pthread_mutex_lock(&W_mu); }
static void whatif_fork_release(void) { pthread_mutex_unlock(&W_mu); }

static const palloc_observer_t whatif_observer = {
  .name = "gcsim what-if trace",
  .wanted = whatif_wanted,
  .publish = whatif_publish,
  .fork_prepare = whatif_fork_prepare,
  .fork_parent = whatif_fork_release,
  .fork_child = whatif_fork_release,
  .exit = whatif_summary,
};
PALLOC_OBSERVER(whatif_observer);
