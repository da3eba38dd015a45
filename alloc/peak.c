/* peak.c - the peak-heap profile: what was live at the process's high-water mark, as
 * tcmalloc's peak-heap tracker keeps it.
 *
 * The live heap is estimated from the samples as they come and go: each sampled block of size s
 * stands for s / p(s) bytes, p(s) = 1 - exp(-s/rate) its sampling probability (the
 * Horvitz-Thompson estimate, unbiased; at rate 1 it is the exact live heap). When a sampled
 * allocation lifts the estimate past the last peak times PALLOC_PEAK_GROWTH (1.1), the live
 * sampled set is snapshot by bucket: its raw live objects and bytes. The growth factor bounds
 * the snapshots to log(peak / first sample) / log(growth) (about 24 per tenfold growth at 1.1),
 * and so their cost; the recorded peak is within that factor of the true high-water mark of
 * the estimate.
 *
 * A snapshot is O(live buckets): it walks a list of the buckets that may hold live samples, not
 * every bucket ever made. A bucket joins the list at a sampled allocation that finds it unlisted,
 * and leaves it at a snapshot that finds it empty. The list, the flags' writes and the snapshot
 * are under one mutex (a leaf: nothing is locked under it). Membership is decided without it:
 *   allocation: allocs++ (bucket.c, seq_cst), then load live_listed; 0 -> take the lock, look
 *               again, link;
 *   snapshot:   store live_listed = 0, then read the counts; empty -> unlink, else store 1.
 * Either the snapshot's read sees the allocation's increment (the bucket stays), or the
 * allocation's load sees the 0 (it relinks under the lock once the snapshot is done): a bucket
 * with live samples is never left off the list.
 *
 * Nothing here allocates from the profiled heap: the snapshot is an mmap'd array, grown by
 * doubling. Sampled allocations take the lock with trylock for a snapshot (one taken by another
 * thread, or the writer copying the last one, makes this one wait for the next sample), and with
 * lock only to list a bucket. Both run under the guard (take_sample), so a signal handler's
 * allocations there are unsampled and never come here; its frees only subtract from the estimate.
 * Fork: the lock is among those lifecycle.c's handler takes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "profinternal.h"
#include "palloc_proto.h"
#include "poisson.h"

typedef struct {
  const palloc_bucket_t *b;
  uint64_t objects, bytes; /* raw sampled, live at the peak */
} snap_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static palloc_bucket_t *live_head;         /* under lock */
static _Atomic int64_t live_est;           /* the live heap's estimate, bytes */
static _Atomic int64_t next_peak;          /* a sample that lifts live_est above it snapshots */
static snap_t *snap;                       /* under lock: the last peak's buckets */
static size_t snap_n, snap_cap, snap_samples;
static int64_t snap_est;                   /* the estimate at the peak */
static uint64_t snap_mono_ns, snap_real_ns, npeaks;
static bool snap_truncated;                /* out of memory: some buckets missing */
/* This thread and the lock: HELD_MOVING while it takes or releases it (held or not), then
 * HELD_LIST (listing a bucket, or the fork handlers: the snapshot is whole) or HELD_SNAP (a
 * snapshot half rewritten). A signal handler that interrupted it there and writes the peak
 * profile (exit() from a handler: the exit destructor) must not wait for the lock, which its
 * own thread may hold. */
enum { HELD_NONE, HELD_MOVING, HELD_LIST, HELD_SNAP };
static __thread uint8_t held_here __attribute__((tls_model("initial-exec")));
static inline void held_set(uint8_t v) {
  atomic_signal_fence(memory_order_seq_cst);
  held_here = v;
  atomic_signal_fence(memory_order_seq_cst);
}
static void peak_acquire(void) {
  held_set(HELD_MOVING);
  pthread_mutex_lock(&lock);
  held_set(HELD_LIST);
}
static void peak_release(void) {
  held_set(HELD_MOVING);
  pthread_mutex_unlock(&lock);
  held_set(HELD_NONE);
}

static inline int64_t weight(size_t size) {
  int64_t rate = atomic_load_explicit(&palloc_g.rate, memory_order_relaxed);
  return (int64_t)palloc_sample_weight((double)size, rate); /* size / p(size) */
}

static __attribute__((noinline)) void list_add(palloc_bucket_t *b) {
  peak_acquire();
  if (!atomic_load(&b->live_listed)) {
    b->live_next = live_head;
    live_head = b;
    atomic_store(&b->live_listed, 1);
  }
  peak_release();
}

static bool snap_room(size_t n) {
  if (n < snap_cap) return true;
  size_t cap = snap_cap ? snap_cap * 2 : 256;
  snap_t *s = mmap(NULL, cap * sizeof *s, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (s == MAP_FAILED) return false;
  if (snap) {
    memcpy(s, snap, snap_cap * sizeof *s);
    munmap(snap, snap_cap * sizeof *s);
  }
  snap = s;
  snap_cap = cap;
  return true;
}

static uint64_t clock_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A new peak: the live buckets' counts, the list pruned on the way. Out of line (list_add too):
 * inlined, their registers were saved and restored on every sampled allocation. */
static __attribute__((noinline)) void take_snapshot(void) {
  held_set(HELD_MOVING);
  if (pthread_mutex_trylock(&lock) != 0) {
    held_set(HELD_NONE);
    return;
  }
  held_set(HELD_LIST);
  int64_t live = atomic_load(&live_est);
  if (live <= atomic_load(&next_peak)) { /* another thread took this peak */
    peak_release();
    return;
  }
  held_set(HELD_SNAP);
  size_t n = 0, samples = 0;
  bool truncated = false;
  for (palloc_bucket_t **pp = &live_head, *b; (b = *pp) != NULL;) {
    atomic_store(&b->live_listed, 0);
    palloc_bucket_counts_t c;
    palloc_bucket_read(b, &c);
    if (c.allocs == c.frees) {
      *pp = b->live_next;
      continue;
    }
    atomic_store(&b->live_listed, 1);
    if (snap_room(n)) {
      snap[n++] = (snap_t){b, c.allocs - c.frees, c.alloc_bytes - c.free_bytes};
      samples += c.allocs - c.frees;
    } else {
      truncated = true;
    }
    pp = &b->live_next;
  }
  snap_n = n;
  snap_samples = samples;
  snap_truncated = truncated;
  snap_est = live;
  snap_mono_ns = clock_ns(CLOCK_MONOTONIC) - palloc_start_ns;
  snap_real_ns = clock_ns(CLOCK_REALTIME);
  npeaks++;
  double next = (double)live * (double)palloc_g.peak_growth / 1000.0;
  atomic_store(&next_peak, next > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)next);
  peak_release();
}

/* w: the allocation's weight(size), computed once by take_sample (slowpath.c) for this and the
 * otel_memory probe. */
void palloc_peak_on_alloc(palloc_bucket_t *b, int64_t w) {
  if (palloc_g.peak_growth < 0) return;
  palloc_assert(palloc_thread.guard > 0); /* take_sample's: a handler never waits for the lock */
  if (!atomic_load(&b->live_listed)) list_add(b);
  int64_t live = atomic_fetch_add_explicit(&live_est, w, memory_order_relaxed) + w;
  if (live > atomic_load_explicit(&next_peak, memory_order_relaxed)) take_snapshot();
}

void palloc_peak_on_free(palloc_bucket_t *b, size_t size) {
  (void)b;
  if (palloc_g.peak_growth < 0) return;
  /* a rate changed in between may leave it off by the difference of the weights; it is an
   * estimate, compared with itself */
  atomic_fetch_sub_explicit(&live_est, weight(size), memory_order_relaxed);
}

void palloc_peak_lock(void) { peak_acquire(); }
void palloc_peak_unlock(void) { peak_release(); }

/* ---- the peak profile (profinternal.h's kind) ----------------------------------------------- */
static const char *const peak_types[2][2] = {{"inuse_objects", "count"}, {"inuse_space", "bytes"}};

static void fmt_bytes(char *buf, size_t n, double v) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (v >= 1024 && k < 4) v /= 1024, k++;
  snprintf(buf, n, k ? "%.2f %s" : "%.0f %s", v, u[k]);
}

/* On a thread that holds the lock itself (a handler interrupted it there): without the lock,
 * which no other thread can take meanwhile; without the snapshot if it was half rewritten, or
 * if the thread was taking or releasing the lock (whether it holds it is not known then). */
static long peak_collect(palloc_scratch_t *s, int64_t rate, palloc_profile_row_t **rows,
                         char comment[][256], int *ncomment) {
  uint8_t held = held_here;
  if (held == HELD_SNAP || held == HELD_MOVING) {
    snprintf(comment[0], 256, "peak heap: not available (written from a signal handler that "
             "interrupted a peak update on its thread)");
    *ncomment = 1;
    *rows = palloc_scratch_alloc(s, sizeof **rows);
    return *rows ? 0 : -1;
  }
  if (held == HELD_NONE) pthread_mutex_lock(&lock);
  size_t n = snap_n;
  palloc_profile_row_t *r = palloc_scratch_alloc(s, (n ? n : 1) * sizeof *r);
  if (r == NULL) {
    if (held == HELD_NONE) pthread_mutex_unlock(&lock);
    return -1;
  }
  palloc_est_t total = {0, 0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    memset(&r[i], 0, sizeof r[i]);
    r[i].b = snap[i].b;
    palloc_proto_scale_heap((int64_t)snap[i].objects, (int64_t)snap[i].bytes, rate, &r[i].v[0],
                            &r[i].v[1]);
    palloc_est_t e = palloc_est_samples((double)snap[i].objects, (double)snap[i].bytes, rate,
                                        PALLOC_EST_BYTES, PALLOC_Z95);
    palloc_est_add(&total, &e);
  }
  uint64_t peaks = npeaks, mono = snap_mono_ns, real = snap_real_ns, samples = snap_samples;
  int64_t est = snap_est;
  bool truncated = snap_truncated;
  if (held == HELD_NONE) pthread_mutex_unlock(&lock);
  palloc_est_close(&total, PALLOC_Z95);
  char v[32], h[32];
  if (palloc_g.peak_growth < 0) {
    snprintf(comment[0], 256, "peak heap: not tracked (PALLOC_PEAK_GROWTH=off)");
  } else if (peaks == 0) {
    snprintf(comment[0], 256, "peak heap: no sample yet");
  } else {
    fmt_bytes(v, sizeof v, total.value);
    fmt_bytes(h, sizeof h, PALLOC_Z95 * palloc_est_se(&total));
    if (rate <= 1)
      snprintf(comment[0], 256, "peak heap: %s live (exact, rate 1), %llu blocks", v,
               (unsigned long long)samples);
    else
      snprintf(comment[0], 256, "peak heap: %s +- %s live (95%%, from %llu samples)", v, h,
               (unsigned long long)samples);
    time_t secs = (time_t)(real / 1000000000ull);
    struct tm tm;
    char when[64] = "";
    if (gmtime_r(&secs, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(comment[1], 256, "peak at %.3f s after start (%s); peak_ns=%llu peak_bytes=%.0f "
             "peak_se_bytes=%.0f estimate_at_peak=%lld",
             (double)mono / 1e9, when, (unsigned long long)mono, total.value,
             palloc_est_se(&total), (long long)est);
    snprintf(comment[2], 256, "peaks recorded: %llu, each %.3fx the last (PALLOC_PEAK_GROWTH)%s",
             (unsigned long long)peaks, (double)palloc_g.peak_growth / 1000.0,
             truncated ? "; out of memory: some buckets missing" : "");
    *ncomment = 3;
    *rows = r;
    return (long)n;
  }
  *ncomment = 1;
  *rows = r;
  return 0;
}

const palloc_profile_kind_t palloc_peak_kind = {2, peak_types, "inuse_space", peak_collect};
