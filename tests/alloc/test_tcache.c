/* test_tcache.c - the thread cache (alloc/tcache.c), through the palloc_* API (palloc_core).
 *  - classes: a request is served from the class mimalloc would serve it from, and a block is
 *    cached under the class of its usable size, for every size up to PALLOC_TC_MAX;
 *  - reuse: a freed block comes back to the same thread's next request of its class, calloc
 *    zeroes it, and a request of another class never gets it;
 *  - bounds: a bin never holds more than its cap; a full bin returns its older half;
 *  - drain: frees with no allocation between them leave the bins empty (an idle thread pins
 *    no page), and the next allocation and free restore the cap;
 *  - sampled blocks never enter the cache, and sampled requests never take from it;
 *  - thread exit: every bin is empty and caches nothing once the exit has begun (checked from a
 *    pthread-key destructor, which runs after palloc's), and frees made then go to mimalloc;
 *  - stress: random sizes, alignments, realloc and calloc on several threads that free each
 *    other's blocks; every live block keeps its own bytes (no block is handed out twice);
 *  - fork: the child uses the cache it inherited.
 * `test_tcache off` runs under PALLOC_TCACHE=0: nothing is cached. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "internal.h"
#include "../check.h"

static unsigned req_class(size_t n) { return palloc_tc_class[(n + 7) >> 3]; }
static uint32_t held(void) {
  uint32_t n = 0;
  for (int i = 0; i < PALLOC_TC_CLASSES; i++) n += palloc_thread.tc[i].n;
  return n;
}

static void test_classes(void) {
  for (size_t n = 0; n <= PALLOC_TC_MAX; n++) {
    void *p = mi_malloc(n);
    size_t u = mi_usable_size(p);
    unsigned c = req_class(n);
    CHECK(u == mi_good_size(n), "n=%zu: usable %zu, good size %zu", n, u, mi_good_size(n));
    CHECK(palloc_tc_bin_at[n] == c * sizeof(palloc_tc_bin_t), "n=%zu: malloc pops from bin "
          "offset %u, not class %u's", n, (unsigned)palloc_tc_bin_at[n], c);
    CHECK(palloc_tc_exact[u >> 3] == c, "n=%zu: block of %zu cached in class %u, served from %u",
          n, u, (unsigned)palloc_tc_exact[u >> 3], c);
    /* free() reads the class from the block's page (mimalloc patch 0004) */
    CHECK(palloc_mi_page_class(p) == c + 1, "n=%zu: the page of a block of %zu says class %d, "
          "served from %u", n, u, palloc_mi_page_class(p) - 1, c);
    mi_free(p);
  }
  for (size_t n = PALLOC_TC_MAX + 1; n <= 4 * PALLOC_TC_MAX; n += 8) {
    void *p = mi_malloc(n);
    CHECK(palloc_mi_page_class(p) == 0, "n=%zu: a page of blocks too large to cache says "
          "class %d", n, palloc_mi_page_class(p) - 1);
    mi_free(p);
  }
  for (size_t w = 1; w <= PALLOC_TC_MAX / 8; w++) {
    unsigned e = palloc_tc_exact[w];
    CHECK(e == PALLOC_TC_NONE || mi_good_size(w * 8) == w * 8,
          "usable %zu is not a class size but maps to class %u", w * 8, e);
  }
  CHECK(palloc_thread.tc[PALLOC_TC_NONE].cap == 0, "the no-class bin has cap %u",
        palloc_thread.tc[PALLOC_TC_NONE].cap);
  /* The bound palloc.h documents: what this thread's caps allow, and no more than 300 KiB. */
  size_t size[PALLOC_TC_CLASSES] = {0}, max = palloc_tc_held_max(), sum = 0;
  for (size_t w = 1; w <= PALLOC_TC_MAX / 8; w++)
    if (palloc_tc_exact[w] != PALLOC_TC_NONE) size[palloc_tc_exact[w]] = w * 8;
  for (int i = 0; i < PALLOC_TC_CLASSES; i++) sum += palloc_thread.tc[i].cap * size[i];
  CHECK(sum == max && max > 0 && max <= 300 << 10, "a thread may hold %zu bytes (caps: %zu)",
        max, sum);
}

static void test_reuse(void) {
  palloc_thread_cache_flush();
  void *p = palloc_malloc(100);
  palloc_free(p);
  CHECK(held() == 1, "%u blocks cached after one free", held());
  void *q = palloc_malloc(200); /* another class */
  CHECK(q != p, "a 200-byte request got the freed 100-byte block");
  void *r = palloc_malloc(97); /* same class as 100 (mimalloc's 112) */
  CHECK(r == p, "the freed block %p did not come back (%p)", p, r);
  CHECK(held() == 0, "%u blocks cached after the pop", held());
  memset(r, 0xab, 100);
  palloc_free(r);
  unsigned char *z = palloc_calloc(4, 25);
  CHECK((void *)z == p, "calloc did not take the cached block");
  int dirty = 0;
  for (int i = 0; i < 100; i++) dirty |= z[i];
  CHECK(!dirty, "calloc from the cache is not zeroed");
  palloc_free(z);
  palloc_free(q);
  /* NULL and blocks too large to cache leave the cache alone. */
  uint32_t before = held();
  palloc_free(NULL);
  palloc_free(palloc_malloc(PALLOC_TC_MAX + 1));
  CHECK(held() == before, "NULL or a large block entered the cache");
}

/* palloc_free_sized (C++ sized delete): a block of palloc_new(n) goes back under n's class
 * without a size lookup, comes back for the next request of that class with room for it; a
 * sampled one still goes to the registry; NULL never enters the cache. */
static void test_sized(void) {
  palloc_thread_cache_flush();
  int bad = 0, missed = 0;
  for (size_t n = 0; n <= PALLOC_TC_MAX + 64; n++) {
    void *p = palloc_new(n);
    memset(p, 1, n);
    palloc_free_sized(p, n);
    bool cached = held() == 1;
    void *q = palloc_malloc(n);
    if (n <= PALLOC_TC_MAX && (!cached || q != p)) missed++;
    if (n > PALLOC_TC_MAX && cached) bad++;
    if (palloc_malloc_usable_size(q) < n) bad++;
    memset(q, 2, n);
    palloc_free_sized(q, n);
    palloc_thread_cache_flush();
  }
  CHECK(missed == 0, "%d sizes up to %d were not cached by sized free, or not reused", missed,
        PALLOC_TC_MAX);
  CHECK(bad == 0, "%d sized frees cached a large block or returned one too small", bad);
  uint32_t before = held();
  palloc_free_sized(NULL, 16);
  palloc_free_sized(NULL, 0);
  CHECK(held() == before, "a sized free of NULL entered the cache");
  void *a = palloc_malloc(16), *b = palloc_malloc(16);
  CHECK(a != NULL && b != NULL && a != b, "malloc after a sized free of NULL: %p %p", a, b);
  palloc_free(a);
  palloc_free(b);
  palloc_set_sample_rate(1);
  void *s = palloc_new(40);
  palloc_set_sample_rate(0);
  palloc_stats_t s0, s1;
  palloc_read_stats(&s0);
  before = held();
  palloc_free_sized(s, 40);
  palloc_read_stats(&s1);
  CHECK(held() == before && s1.sampled_frees == s0.sampled_frees + 1,
        "a sampled block freed with its size: cached %u, sampled frees +%llu", held() - before,
        (unsigned long long)(s1.sampled_frees - s0.sampled_frees));
}

/* A sized free from a signal handler that interrupted one of this thread's bin operations
 * (tc_busy set, as palloc_tc_enter leaves it) must not touch the bins, whether the bin has room
 * or is full (a full bin's flush would also clear the interrupted operation's tc_busy). */
static void test_sized_busy(void) {
  palloc_thread_cache_flush();
  unsigned c = req_class(16);
  uint32_t cap = palloc_thread.tc[c].cap;
  void *keep[PALLOC_TC_MAX_COUNT];
  int touched = 0, cleared = 0;
  for (int full = 0; full <= 1; full++) {
    uint32_t n = full ? cap : 0;
    void *p = palloc_malloc(16);
    for (uint32_t i = 0; i < n; i++) keep[i] = palloc_malloc(16);
    for (uint32_t i = 0; i < n; i++) palloc_free_sized(keep[i], 16);
    uint32_t before = palloc_thread.tc[c].n;
    palloc_thread.tc_busy = 1; /* the interrupted bin operation */
    palloc_free_sized(p, 16);  /* the handler's: to mimalloc directly */
    cleared += palloc_thread.tc_busy != 1;
    palloc_thread.tc_busy = 0;
    touched += palloc_thread.tc[c].n != before;
    palloc_thread_cache_flush();
  }
  CHECK(touched == 0 && cleared == 0,
        "a sized free with tc_busy set changed a bin (%d) or cleared tc_busy (%d)", touched,
        cleared);
}

/* Over-aligned blocks: mimalloc may hand out the inside of a larger block, whose usable size
 * runs to the block's end and need not be a class size. memalign's happen to land on class
 * sizes with mimalloc 2.0; mi_malloc_aligned_at (aligned at an offset) makes the other kind,
 * and palloc_free takes any mimalloc block. Whatever is cached must hold its class. */
static void test_aligned(void) {
  size_t class_size[PALLOC_TC_CLASSES] = {0};
  for (size_t w = 1; w <= PALLOC_TC_MAX / 8; w++)
    if (palloc_tc_exact[w] != PALLOC_TC_NONE) class_size[palloc_tc_exact[w]] = w * 8;
  int odd = 0, bad = 0, uncached = 0;
  for (size_t align = 16; align <= 1024; align *= 2)
    for (size_t n = 1; n <= 600; n += 7) {
      palloc_thread_cache_flush();
      void *p[8];
      for (int i = 0; i < 8; i++) {
        p[i] = i < 4 ? palloc_memalign(align, n) : mi_malloc_aligned_at(n, align, 8 * (size_t)i);
        size_t u = palloc_malloc_usable_size(p[i]);
        if (u <= PALLOC_TC_MAX && mi_good_size(u) != u) odd++;
        /* The page's class (mimalloc patch 0004), which free() caches the block under: none
         * for a page of aligned blocks, whose pointers may be the inside of a block; else the
         * class of exactly the block's usable size. */
        unsigned c1 = palloc_mi_page_class(p[i]);
        if (c1 == 0) uncached++;
        else if (u != class_size[c1 - 1]) bad++;
      }
      for (int i = 0; i < 8; i++) palloc_free(p[i]);
      for (int c = 0; c < PALLOC_TC_CLASSES; c++)
        for (uint32_t k = 0; k < palloc_thread.tc[c].n; k++)
          if (mi_usable_size(palloc_thread.tc[c].slot[k]) < class_size[c]) bad++;
    }
  CHECK(odd > 0, "no aligned block had a usable size off the classes: the test tests nothing");
  CHECK(uncached > 0, "no aligned block's page was uncached: the test tests nothing");
  CHECK(bad == 0, "%d cached blocks, or blocks whose page says a class, are not of their class",
        bad);
}

static void test_bounds(void) {
  enum { N = 1000 };
  static void *blk[N];
  palloc_thread_cache_flush();
  unsigned c = req_class(64);
  uint32_t cap = palloc_thread.tc[c].cap, most = 0;
  CHECK(cap >= PALLOC_TC_MIN && cap <= PALLOC_TC_MAX_COUNT, "cap %u", cap);
  for (int i = 0; i < N; i++) blk[i] = palloc_malloc(64);
  for (int i = 0; i < N; i++) {
    palloc_free(blk[i]);
    /* an allocation between frees (of a size the cache never holds): the thread is not
     * draining its cache, so a full bin gives back half and keeps the rest */
    palloc_free(palloc_malloc(PALLOC_TC_MAX + 1));
    if (palloc_thread.tc[c].n > most) most = palloc_thread.tc[c].n;
  }
  CHECK(most == cap, "the bin peaked at %u blocks, cap %u", most, cap);
  CHECK(palloc_thread.tc[c].n > cap / 2, "after a flush the bin holds %u", palloc_thread.tc[c].n);
  /* The newest free is on top: the last block freed is the first handed out. */
  CHECK(palloc_malloc(64) == blk[N - 1], "the cache is not last-in first-out");
  palloc_thread_cache_flush();
  CHECK(held() == 0, "%u blocks left after palloc_thread_cache_flush", held());
}

/* The drain rule: a thread that frees blocks with no allocation in between (a working set torn
 * down before the thread waits) keeps none of them once a bin has filled twice, so an idle
 * thread pins no page; its next allocation and free bring the bin back to its cap. */
static void test_drain(void) {
  enum { N = 1000 };
  static void *blk[N];
  palloc_thread_cache_flush();
  unsigned c = req_class(64), other = req_class(200);
  uint32_t cap = palloc_thread.tc[c].cap;
  for (int i = 0; i < N; i++) blk[i] = palloc_malloc(i & 1 ? 64 : 200);
  for (int i = 0; i < N; i++) palloc_free(blk[i]);
  CHECK(palloc_thread.tc[c].n == 0 && palloc_thread.tc[other].n == 0,
        "after freeing %d blocks without an allocation the bins hold %u and %u", N,
        palloc_thread.tc[c].n, palloc_thread.tc[other].n);
  CHECK(palloc_thread.tc[c].cap == 0, "a drained bin keeps cap %u", palloc_thread.tc[c].cap);
  void *p = palloc_malloc(64), *q = palloc_malloc(64);
  palloc_free(p);
  CHECK(palloc_thread.tc[c].cap == cap && palloc_thread.tc[c].n == 1,
        "after an allocation, a free into the drained bin: cap %u (want %u), %u held",
        palloc_thread.tc[c].cap, cap, palloc_thread.tc[c].n);
  CHECK(palloc_malloc(64) == p, "the restored bin does not hand back its block");
  palloc_free(p);
  palloc_free(q);
  palloc_thread_cache_flush();
}

static void test_sampled(void) {
  palloc_thread_cache_flush();
  void *p = palloc_malloc(48);
  palloc_free(p); /* cached */
  palloc_stats_t s0, s1;
  palloc_read_stats(&s0);
  palloc_set_sample_rate(1);
  void *q = palloc_malloc(48); /* sampled: from mimalloc, not the cache */
  CHECK(held() == 1, "a sampled request took from the cache");
  palloc_free(q); /* sampled: to mimalloc through the registry, not the cache */
  CHECK(held() == 1, "a sampled block entered the cache");
  palloc_set_sample_rate(0);
  palloc_free(palloc_malloc(5000)); /* the slow path that takes up the new rate */
  palloc_read_stats(&s1);
  CHECK(s1.sampled_allocs == s0.sampled_allocs + 1 && s1.sampled_frees == s0.sampled_frees + 1,
        "sampled %llu allocs, %llu frees (want 1, 1)",
        (unsigned long long)(s1.sampled_allocs - s0.sampled_allocs),
        (unsigned long long)(s1.sampled_frees - s0.sampled_frees));
  CHECK(palloc_malloc(48) == p, "the cached block is gone");
  palloc_free(p);
}

/* ---- thread exit ---------------------------------------------------------------------- */
static pthread_key_t exit_key;
static _Atomic int exit_checked, exit_bad;

static void after_palloc_exit(void *arg) {
  /* glibc runs pthread-key destructors after the C++-style ones palloc registered. */
  for (int i = 0; i < PALLOC_TC_CLASSES; i++)
    if (palloc_thread.tc[i].n != 0 || palloc_thread.tc[i].cap != 0) exit_bad = 1;
  palloc_free(arg); /* goes to mimalloc */
  if (held() != 0) exit_bad = 1;
  exit_checked = 1;
}

static void *exiting_thread(void *arg) {
  (void)arg;
  void *blk[300];
  for (int i = 0; i < 300; i++) blk[i] = palloc_malloc((size_t)(i * 7) % 2000);
  for (int i = 0; i < 300; i++) palloc_free(blk[i]);
  if (held() == 0) exit_bad = 2;
  pthread_setspecific(exit_key, palloc_malloc(32));
  return NULL;
}

static void test_thread_exit(void) {
  pthread_key_create(&exit_key, after_palloc_exit);
  pthread_t th;
  pthread_create(&th, NULL, exiting_thread, NULL);
  pthread_join(th, NULL);
  CHECK(exit_checked, "the key destructor did not run");
  CHECK(exit_bad == 0, "thread exit: %s", exit_bad == 2 ? "nothing was cached"
                                                         : "the cache was not emptied and closed");
  /* Thread churn: an exited thread's slot array goes to the next thread, so 300 threads one
   * after another map no more of palloc's own memory than one (~8 KB of slots each, 2.3 MB
   * without reuse). */
  palloc_stats_t s0, s1;
  palloc_read_stats(&s0);
  for (int i = 0; i < 300; i++) {
    pthread_create(&th, NULL, exiting_thread, NULL);
    pthread_join(th, NULL);
  }
  palloc_read_stats(&s1);
  CHECK(s1.internal_bytes == s0.internal_bytes, "300 threads grew palloc's memory %llu -> %llu",
        (unsigned long long)s0.internal_bytes, (unsigned long long)s1.internal_bytes);
  CHECK(exit_bad == 0, "thread churn: a thread's cache was not emptied and closed");
}

/* ---- stress: cross-thread frees, every block keeps its bytes ---------------------------- */
/* Under ThreadSanitizer the blocks' bytes are left alone: mimalloc is not instrumented, so TSan
 * cannot see that a block freed on one thread reached another through mimalloc's atomics, and
 * would report the new owner's first write as a race with the old owner's last access. The
 * same goes for realloc, whose copy inside mimalloc goes through the intercepted memcpy. The
 * threads still allocate and free each other's blocks, which is what TSan checks palloc for. */
#if defined(__SANITIZE_THREAD__)
#define TOUCH 0
#else
#define TOUCH 1
#endif
enum { THREADS = 4, SLOTS = 4096, OPS = 40000 };
typedef struct { unsigned char *p; size_t n; unsigned char tag; } slot_t;
static slot_t slots[THREADS][SLOTS];
static pthread_mutex_t slot_lock[THREADS];
static _Atomic int stress_bad;

static void fill(slot_t *s) {
  if (TOUCH) memset(s->p, s->tag, s->n);
}
static int intact(const slot_t *s) {
  for (size_t i = 0; TOUCH && i < s->n; i++)
    if (s->p[i] != s->tag) return 0;
  return 1;
}

static void *stress_thread(void *arg) {
  uint64_t x = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
  for (int op = 0; op < OPS; op++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int t = (int)(x % THREADS); /* any thread's slots: frees cross threads */
    slot_t *s = &slots[t][(x >> 8) % SLOTS];
    pthread_mutex_lock(&slot_lock[t]);
    if (s->p != NULL && !intact(s)) stress_bad = 1;
    size_t n = (x >> 24) % 3000;
    unsigned kind = (unsigned)(x >> 40) % 8;
    if (TOUCH && kind == 0 && s->p != NULL) { /* mi_realloc's copy is TSan-visible too */
      unsigned char *q = palloc_realloc(s->p, n + 1);
      if (q == NULL) stress_bad = 1;
      for (size_t i = 0; TOUCH && i < (s->n < n + 1 ? s->n : n + 1); i++)
        if (q[i] != s->tag) stress_bad = 1;
      s->p = q;
      s->n = n + 1;
    } else {
      palloc_free(s->p);
      if (kind == 1) {
        s->p = palloc_memalign((size_t)16 << ((x >> 48) % 8), n);
      } else if (kind == 2) {
        s->p = palloc_calloc(1, n);
        for (size_t i = 0; TOUCH && i < n; i++)
          if (s->p[i] != 0) stress_bad = 1;
      } else {
        s->p = palloc_malloc(n);
      }
      s->n = n;
      if (s->p == NULL || palloc_malloc_usable_size(s->p) < n) stress_bad = 1;
    }
    s->tag = (unsigned char)(x >> 56) | 1;
    fill(s);
    pthread_mutex_unlock(&slot_lock[t]);
  }
  return NULL;
}

static void test_stress(void) {
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_mutex_init(&slot_lock[i], NULL);
  for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, stress_thread, (void *)i);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < SLOTS; i++) {
      if (slots[t][i].p != NULL && !intact(&slots[t][i])) stress_bad = 1;
      palloc_free(slots[t][i].p);
    }
  CHECK(stress_bad == 0, "a live block lost its bytes, was undersized, or was handed out twice");
}

static void test_fork(void) {
  void *p = palloc_malloc(256);
  palloc_free(p);
  pid_t pid = fork();
  if (pid == 0) {
    void *q = palloc_malloc(256); /* the parent's cached block, valid in the child */
    memset(q, 1, 256);
    palloc_free(q);
    _exit(q == p ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child: status %d", status);
}

static int test_off(void) {
  void *p = palloc_malloc(64);
  for (int i = 0; i < PALLOC_TC_CLASSES; i++)
    CHECK(palloc_thread.tc[i].cap == 0, "PALLOC_TCACHE=0, yet class %d has cap %u", i,
          palloc_thread.tc[i].cap);
  palloc_free(p);
  CHECK(held() == 0, "PALLOC_TCACHE=0, yet %u blocks are cached", held());
  palloc_thread_cache_flush();
  return CHECK_DONE();
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "off") == 0) return test_off();
  palloc_set_sample_rate(0); /* the cache works on unsampled blocks; test_sampled samples */
  palloc_free(palloc_malloc(1)); /* sets this thread up */
  CHECK(palloc_thread.tc[0].cap > 0, "the main thread's cache is not set up");
  test_classes();
  test_reuse();
  test_aligned();
  test_bounds();
  test_drain();
  test_sampled();
  test_sized();
  test_sized_busy();
  test_thread_exit();
  test_stress();
  /* Not under TSan: palloc's fork handler holds the registry's 64 stripe locks at once, more
   * than TSan's deadlock detector can track per thread (it aborts at 64). */
  if (TOUCH) test_fork();
  return CHECK_DONE();
}
