/* gctrace.c - GODEBUG=gctrace=1 lines, byte for byte, and where they go.
 *
 * The 1.18+ line (runtime/mgc.go, gcMarkTermination):
 *   gc N @S.mmms P%: c1+c2+c3 ms clock, u1+a/b/i+u5 ms cpu, A->B->C MB, G MB goal,
 *   S MB stacks, G MB globals, N P[ (forced)]
 * The legacy (pre-1.18) line lacks the stacks and globals fields. Times use Go's fmtNSAsMS:
 * whole ms from 10 ms up, else 2 significant digits of the truncated microseconds, at most 3
 * decimals, no rounding. Sizes are bytes>>20 (floored MiB).
 *
 * Trace lines use no stdio and no allocation: they are built in a caller's buffer and written
 * with one write(2), so a line never interleaves with another thread's line and printing is
 * safe with palloc's reentrancy guard held. The output file (PALLOC_TRACE_FILE) is opened once,
 * lazily, by whichever writer needs it first; a CAS makes the first opener win.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "observer.h"
#include "options.h"
#include "pacer.h"
#include "palloc_proto.h"

static size_t put_u(char *buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  return n;
}

/* v with a decimal point dec digits from the right (Go's itoaDiv), e.g. (12, 3) -> "0.012". */
static size_t put_div(char *buf, uint64_t v, int dec) {
  char tmp[32];
  size_t n = 0;
  int d = dec;
  while (v >= 10 || d > 0) {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
    if (--d == 0) tmp[n++] = '.';
  }
  tmp[n++] = (char)('0' + v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  return n;
}

size_t palloc_fmt_ns_as_ms(char *buf, uint64_t ns) {
  if (ns >= 10000000) return put_u(buf, ns / 1000000);
  uint64_t x = ns / 1000;
  if (x == 0) {
    buf[0] = '0';
    return 1;
  }
  int dec = 3;
  while (x >= 100) {
    x /= 10;
    dec--;
  }
  return put_div(buf, x, dec);
}

static size_t put_s(char *buf, const char *s) {
  size_t n = strlen(s);
  memcpy(buf, s, n);
  return n;
}

size_t palloc_gctrace_format(char *buf, const palloc_gctrace_cycle_t *c, bool legacy) {
  char *p = buf;
  p += put_s(p, "gc ");
  p += put_u(p, c->n);
  p += put_s(p, " @");
  p += put_div(p, c->start_ns / 1000000, 3);
  p += put_s(p, "s ");
  double f = c->cpu_fraction < 0 ? 0 : c->cpu_fraction;
  p += put_u(p, (uint64_t)(f * 100));
  p += put_s(p, "%: ");
  for (int i = 0; i < 3; i++) {
    if (i) *p++ = '+';
    p += palloc_fmt_ns_as_ms(p, c->clock[i]);
  }
  p += put_s(p, " ms clock, ");
  static const char seps[] = "+//+";
  for (int i = 0; i < 5; i++) {
    if (i) *p++ = seps[i - 1];
    p += palloc_fmt_ns_as_ms(p, c->cpu[i]);
  }
  p += put_s(p, " ms cpu, ");
  p += put_u(p, c->heap0 >> 20);
  p += put_s(p, "->");
  p += put_u(p, c->heap1 >> 20);
  p += put_s(p, "->");
  p += put_u(p, c->marked >> 20);
  p += put_s(p, " MB, ");
  p += put_u(p, c->goal >> 20);
  p += put_s(p, " MB goal, ");
  if (!legacy) {
    p += put_u(p, c->stacks >> 20);
    p += put_s(p, " MB stacks, ");
    p += put_u(p, c->globals >> 20);
    p += put_s(p, " MB globals, ");
  }
  p += put_u(p, (uint64_t)c->procs);
  p += put_s(p, " P");
  if (c->forced) p += put_s(p, " (forced)");
  *p++ = '\n';
  return (size_t)(p - buf);
}

static uint64_t ts_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
uint64_t palloc_gc_now_ns(void) { return ts_ns(CLOCK_MONOTONIC); }
uint64_t palloc_gc_thread_cpu_ns(void) { return ts_ns(CLOCK_THREAD_CPUTIME_ID); }

static _Atomic uint64_t start_ns;

uint64_t palloc_gc_since_start(void) {
  uint64_t now = palloc_gc_now_ns();
  uint64_t s = atomic_load_explicit(&start_ns, memory_order_relaxed);
  if (s == 0) {
    uint64_t expected = 0;
    if (atomic_compare_exchange_strong(&start_ns, &expected, now)) return 0;
    s = expected;
  }
  return now > s ? now - s : 0;
}

/* The program start is the earliest of: palloc's initialization asking for the what-if mode,
 * palloc's start (an observer's start hook: a constructor that runs before the program's own),
 * the first arena. */
static void gctrace_start(void) { (void)palloc_gc_since_start(); }
static const palloc_observer_t gctrace_observer = {
  .name = "gcsim clock",
  .start = gctrace_start,
};
PALLOC_OBSERVER(gctrace_observer);

static _Atomic int trace_fd = -1;

int palloc_gctrace_fd(void) {
  int fd = atomic_load_explicit(&trace_fd, memory_order_acquire);
  if (fd >= 0) return fd;
  const char *path = palloc_option_str(PALLOC_OPT_TRACE_FILE);
  int nfd = 2;
  if (path != NULL) {
    /* Opened as every file palloc writes is (proto/outpath.c): appended to if a regular file (or
     * a symlink's target), written directly if a FIFO or a device, refused otherwise. */
    char buf[4096], err[PALLOC_PROTO_ERRLEN];
    palloc_out_t o;
    if (!palloc_proto_expand_path(path, buf, sizeof buf))
      snprintf(err, sizeof err, "path too long");
    else if (palloc_proto_out_open(&o, buf, PALLOC_OUT_APPEND, err) == 0)
      nfd = o.fd;
    if (nfd == 2) {
      char msg[512];
      int n = snprintf(msg, sizeof msg, "palloc: cannot open PALLOC_TRACE_FILE=%.200s: %s; "
                       "tracing to stderr\n", path, err);
      palloc_gctrace_write(2, msg, n < (int)sizeof msg ? (size_t)n : sizeof msg - 1);
    }
  }
  int expected = -1;
  if (!atomic_compare_exchange_strong(&trace_fd, &expected, nfd)) {
    if (nfd != 2) close(nfd);
    return expected;
  }
  return nfd;
}

void palloc_gctrace_write(int fd, const char *s, size_t n) {
  (void)palloc_proto_out_write(fd, s, n); /* a trace line that cannot be written is dropped */
}
