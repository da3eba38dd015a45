/* pacer.h - the Go GC pacer and trace printer shared by the arena and the what-if mode.
 * Pure functions plus tiny state structs; no allocation, safe inside palloc's first malloc. */
#ifndef PALLOC_GCSIM_PACER_H
#define PALLOC_GCSIM_PACER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PALLOC_GC_HEAP_MINIMUM ((uint64_t)4 << 20) /* Go's defaultHeapMinimum, at GOGC=100 */
#define PALLOC_GC_NO_GOAL UINT64_MAX

/* ---- pacer.c --------------------------------------------------------------------------- */
/* The heap goal after a cycle that marked `live` bytes, having scanned `stacks` and `globals`
 * bytes of roots; nonheap = memory the limit counts that is not heap objects. */
uint64_t palloc_pacer_goal(int gogc, int64_t limit, uint64_t live, uint64_t stacks,
                           uint64_t globals, uint64_t nonheap);

/* The GC CPU limiter: a leaky bucket of capacity procs x 1 s that fills with GC CPU time and
 * drains with mutator CPU time. While it is full, collections are skipped. The fill may exceed
 * the capacity by the last cycle's time (a cycle is not divisible; see pacer.c). */
typedef struct palloc_limiter_s {
  int64_t fill, capacity;
} palloc_limiter_t;
void palloc_limiter_init(palloc_limiter_t *l, int procs);
void palloc_limiter_account(palloc_limiter_t *l, int64_t gc_ns, int64_t mutator_ns);
bool palloc_limiter_full(const palloc_limiter_t *l);

/* ---- gctrace.c ------------------------------------------------------------------------- */
typedef struct palloc_gctrace_cycle_s {
  uint64_t n;              /* 1-based cycle number                                      */
  uint64_t start_ns;       /* cycle start since program start                           */
  double cpu_fraction;     /* cumulative GC CPU share, 0..1                               */
  uint64_t clock[3];       /* sweep termination, mark, mark termination (wall ns)      */
  uint64_t cpu[5];         /* sweep term, assist, background, idle mark, mark term (ns)  */
  uint64_t heap0, heap1, marked, goal, stacks, globals; /* bytes                       */
  int procs;
  bool forced;
} palloc_gctrace_cycle_t;

/* Go's fmtNSAsMS into buf (>= 24 bytes); returns the length. */
size_t palloc_fmt_ns_as_ms(char *buf, uint64_t ns);
/* One line, newline included; legacy = pre-1.18 shape. Returns the length (buf >= 256). */
size_t palloc_gctrace_format(char *buf, const palloc_gctrace_cycle_t *c, bool legacy);
/* Nanoseconds since program start (the first call, or gcsim's constructor, whichever first). */
uint64_t palloc_gc_since_start(void);
uint64_t palloc_gc_now_ns(void);          /* CLOCK_MONOTONIC */
uint64_t palloc_gc_thread_cpu_ns(void);   /* CLOCK_THREAD_CPUTIME_ID */
/* The trace output: PALLOC_TRACE_FILE (opened once, append) or fd 2. */
int palloc_gctrace_fd(void);
void palloc_gctrace_write(int fd, const char *s, size_t n);
#endif
