/* test_signal.c - malloc, realloc and free inside a signal handler that interrupts malloc and
 * free on the same thread (issue 12, item 3). POSIX leaves it undefined, real programs do it,
 * and mimalloc alone survives it, so palloc must too.
 *
 * A 5 kHz ITIMER_REAL delivers SIGALRM while the main thread and a succession of short-lived
 * worker threads churn the heap (malloc, calloc, realloc, free, cache flushes, thread start and
 * exit, and in the first half fork). The handler allocates blocks of sizes that the sampler takes at any rate, tags, checks
 * and frees them. For the first half of the run the main thread takes the signals, for the second
 * half (main blocks SIGALRM) the workers do.
 *
 * Fails if: a thread stops making progress for WATCHDOG_S seconds (a self-deadlock: the watchdog
 * thread, which takes no signals, reports it and exits the process); any block's tag was
 * overwritten (one block handed out twice, e.g. by a thread-cache bin corrupted from the
 * handler); the profile written at the end cannot be read back; or, at sampling rate 1, the
 * live sampled objects differ from the truth (a free the handler made that palloc lost or
 * counted twice). Run with PALLOC_SAMPLE_RATE=1, 4096 and the default, PALLOC_TCACHE=1 and 0.
 *
 * mimalloc itself is not reentrant: a handler that allocates while its thread is inside
 * mimalloc's code corrupts mimalloc's page (Debian's libmimalloc 2.0, preloaded alone under this
 * test, crashes within a second). So the handler skips its work when the interrupted instruction
 * is mimalloc's (x86-64: the test reads it from the signal context): what is tested is palloc's
 * own state and locks, everywhere else, including palloc's fast paths and the C library's mutex
 * code that palloc's locks run in. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include "palloc.h"
#include "palloc_proto.h"
#include "../check.h"

#define RUN_NS 3000000000ll /* the whole run; each half: one signal-taking side */
#define WORKER_NS 250000000ll
#define WATCHDOG_S 10
#define RING 128
#define NTHREADS_MAX 64
#define HANDLER_BLOCKS 6

static _Atomic uint64_t progress;       /* bumped by every churning thread, read by the watchdog */
static _Atomic uint64_t handled_main, handled_workers, skipped, handler_bad, churn_bad;
static _Atomic uint64_t forks, fork_bad;
static _Atomic int done;
static pthread_t main_thread;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

/* Writes tag into the first and last words of p (n >= 16). */
static void tag(unsigned char *p, size_t n, uint64_t t) {
  memcpy(p, &t, 8);
  memcpy(p + n - 8, &t, 8);
}
static bool tagged(const unsigned char *p, size_t n, uint64_t t) {
  uint64_t a, b;
  memcpy(&a, p, 8);
  memcpy(&b, p + n - 8, 8);
  return a == t && b == t;
}

/* Every block of the handler, sampled at any rate now and then: 70 KB at the default 512 KiB. */
static const size_t handler_sizes[HANDLER_BLOCKS] = {16, 48, 200, 1000, 5000, 100000};

static __attribute__((noinline)) void handler_work(void) {
  static _Atomic uint64_t seq;
  uint64_t t = atomic_fetch_add(&seq, 1) << 8 | 0xa5;
  unsigned char *p[HANDLER_BLOCKS];
  for (int i = 0; i < HANDLER_BLOCKS; i++) {
    p[i] = malloc(handler_sizes[i]);
    if (p[i] == NULL) abort();
    tag(p[i], handler_sizes[i], t + (uint64_t)i);
  }
  /* realloc of a block that may be sampled, into a size that may be sampled */
  unsigned char *q = realloc(p[4], 9000);
  if (q == NULL) abort();
  p[4] = q;
  for (int i = 0; i < HANDLER_BLOCKS; i++) {
    size_t n = handler_sizes[i];
    if (!tagged(p[i], n, t + (uint64_t)i) && !(i == 4 && tagged(p[i], 8, t + 4)))
      atomic_fetch_add(&handler_bad, 1);
    free(p[i]);
  }
}

/* mimalloc's code: [mi_lo, mi_hi). */
static uintptr_t mi_lo, mi_hi;

static int find_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t f = (uintptr_t)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && f >= lo && f < hi) {
      mi_lo = lo;
      mi_hi = hi;
      return 1;
    }
  }
  return 0;
}

static __attribute__((noinline)) void on_alarm(int sig, siginfo_t *si, void *ctx) {
  (void)sig, (void)si;
  int saved = errno;
#if defined(__x86_64__)
  uintptr_t pc = (uintptr_t)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
#else
  uintptr_t pc = mi_lo;
  (void)ctx;
#endif
  if (pc >= mi_lo && pc < mi_hi) {
    atomic_fetch_add(&skipped, 1);
    errno = saved;
    return;
  }
  handler_work();
  atomic_fetch_add(pthread_equal(pthread_self(), main_thread) ? &handled_main : &handled_workers, 1);
  errno = saved;
}

/* One churning thread's live blocks: at the end, the main thread's ring is the program's known
 * live set from churn(). */
typedef struct {
  unsigned char *p[RING];
  size_t n[RING];
  uint64_t t[RING];
} ring_t;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* A fork: palloc's fork handlers hold its locks across the fork, and the kernel lets a pending
 * signal's handler run in the parent in the middle of it. */
static void fork_once(void) {
  pid_t pid = fork();
  if (pid == 0) {
    void *p = malloc(100);
    free(p);
    _exit(p != NULL ? 0 : 1);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    atomic_fetch_add(&fork_bad, 1);
  else
    atomic_fetch_add(&forks, 1);
}

static __attribute__((noinline)) void churn(ring_t *r, uint64_t seed, int64_t until, bool forks) {
  uint64_t id = seed << 32;
  for (uint64_t i = 1;; i++) {
    if ((i & 255) == 0) {
      atomic_fetch_add(&progress, 1);
      if (now_ns() >= until) return;
    }
    if ((i & 4095) == 0) palloc_thread_cache_flush();
    if (forks && (i & 2047) == 0) fork_once();
    unsigned k = (unsigned)(rnd(&seed) % RING);
    if (r->p[k] != NULL && !tagged(r->p[k], r->n[k], r->t[k])) atomic_fetch_add(&churn_bad, 1);
    size_t n = 16 + rnd(&seed) % 1024;
    if (rnd(&seed) % 64 == 0) n = 3000 + rnd(&seed) % 57000;
    unsigned char *p;
    unsigned op = (unsigned)(rnd(&seed) % 8);
    if (op == 0 && r->p[k] != NULL) {
      p = realloc(r->p[k], n);
      if (p == NULL) abort();
    } else {
      free(r->p[k]);
      p = op == 1 ? calloc(1, n) : malloc(n);
      if (p == NULL) abort();
    }
    r->p[k] = p;
    r->n[k] = n;
    r->t[k] = id | i;
    tag(p, n, id | i);
  }
}

static void *worker(void *arg) {
  ring_t r = {0};
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL); /* the main thread may have it blocked */
  churn(&r, (uint64_t)(uintptr_t)arg, now_ns() + WORKER_NS, false);
  for (int k = 0; k < RING; k++) {
    if (r.p[k] != NULL && !tagged(r.p[k], r.n[k], r.t[k])) atomic_fetch_add(&churn_bad, 1);
    free(r.p[k]);
  }
  return NULL;
}

static void *workers(void *arg) {
  int64_t until = *(int64_t *)arg;
  for (uintptr_t i = 2; now_ns() < until && i < NTHREADS_MAX; i++) {
    pthread_t th;
    if (pthread_create(&th, NULL, worker, (void *)i) != 0) abort();
    pthread_join(th, NULL);
  }
  return NULL;
}

/* Takes no signal; ends the process if no thread made progress for WATCHDOG_S seconds. */
static void *watchdog(void *arg) {
  (void)arg;
  uint64_t last = atomic_load(&progress);
  int still = 0;
  while (!atomic_load(&done)) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    uint64_t p = atomic_load(&progress);
    still = p == last ? still + 1 : 0;
    last = p;
    if (still >= WATCHDOG_S && !atomic_load(&done)) {
      say("test_signal: no progress for 10 s: a thread is stuck (self-deadlock in a signal "
          "handler?)\n");
      _exit(2);
    }
  }
  return NULL;
}

/* Sums inuse objects over the samples whose stack contains function fn. */
static int64_t inuse_of(const palloc_pb_profile_t *p, const char *fn) {
  int64_t objs = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    bool hit = false;
    for (size_t k = 0; k < p->sample[i]->n_location_id && !hit; k++)
      for (size_t l = 0; l < p->n_location && !hit; l++) {
        const Perftools__Profiles__Location *loc = p->location[l];
        if (loc->id != p->sample[i]->location_id[k]) continue;
        for (size_t j = 0; j < loc->n_line; j++)
          for (size_t f = 0; f < p->n_function; f++)
            if (p->function[f]->id == loc->line[j]->function_id &&
                strcmp(p->string_table[p->function[f]->name], fn) == 0)
              hit = true;
      }
    if (hit) objs += p->sample[i]->value[2];
  }
  return objs;
}

int main(void) {
#if !defined(__x86_64__)
  puts("signal: x86-64 only (the handler reads the interrupted instruction); skipped");
  return 77;
#endif
  main_thread = pthread_self();
  size_t rate = palloc_get_sample_rate();
  pthread_t dog, wk;
  sigset_t all, old, alrm;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&dog, NULL, watchdog, NULL) != 0) abort();
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  void *mi = dlsym(RTLD_DEFAULT, "mi_malloc");
  dl_iterate_phdr(find_text, mi != NULL ? mi : (void *)malloc);
  CHECK(mi_hi > mi_lo, "mimalloc's code found");
  sa.sa_sigaction = on_alarm;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 200}, {0, 200}}; /* 5 kHz */
  setitimer(ITIMER_REAL, &it, NULL);

  static ring_t mine;
  int64_t t0 = now_ns(), half = t0 + RUN_NS / 2, end = t0 + RUN_NS;
  if (pthread_create(&wk, NULL, workers, &end) != 0) abort();
  churn(&mine, 1, half, true);
  pthread_sigmask(SIG_BLOCK, &alrm, NULL); /* second half: the workers take the signals */
  churn(&mine, 1u << 16, end, false);
  pthread_join(wk, NULL);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  pthread_sigmask(SIG_UNBLOCK, &alrm, NULL); /* a pending SIGALRM runs here, outside churn */
  atomic_store(&done, 1);

  /* The main thread still samples: no handler left it a budget that never runs out. 256 blocks
   * of 64 KiB are 16 MiB, 32 mean intervals at the default rate. */
  palloc_stats_t before, after;
  palloc_read_stats(&before);
  for (int i = 0; i < 256; i++) free(malloc(65536));
  palloc_read_stats(&after);
  CHECK(after.sampled_allocs > before.sampled_allocs, "the main thread still samples");

  int64_t live = 0;
  for (int k = 0; k < RING; k++) {
    if (mine.p[k] == NULL) continue;
    live++;
    if (!tagged(mine.p[k], mine.n[k], mine.t[k])) atomic_fetch_add(&churn_bad, 1);
  }
  char path[] = "/tmp/palloc-signal-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  close(fd);
  CHECK(palloc_profile_write(path) == 0, "profile written to %s", path);
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  CHECK(p != NULL, "profile read back: %s", p ? "" : err);
  if (p != NULL) {
    CHECK(palloc_proto_validate(p, err) == 0, "profile valid: %s", err);
    CHECK(p->n_sample > 0, "the profile has samples");
    if (rate == 1) {
      /* Every block is sampled: the handler's are all freed, the main ring's all live. */
      CHECK(inuse_of(p, "handler_work") == 0, "handler blocks live in the profile: %lld",
            (long long)inuse_of(p, "handler_work"));
      CHECK(inuse_of(p, "churn") == live, "live blocks from churn %lld, truth %lld",
            (long long)inuse_of(p, "churn"), (long long)live);
      CHECK(inuse_of(p, "worker") == 0, "worker blocks live in the profile: %lld",
            (long long)inuse_of(p, "worker"));
    }
    palloc_proto_free(p, NULL);
  }
  unlink(path);
  CHECK(handled_main > 200, "signals handled on the main thread: %llu",
        (unsigned long long)handled_main);
  CHECK(handled_workers > 200, "signals handled on worker threads: %llu",
        (unsigned long long)handled_workers);
  CHECK(handler_bad == 0, "handler blocks overwritten: %llu", (unsigned long long)handler_bad);
  CHECK(forks > 0 && fork_bad == 0, "forks: %llu, failed %llu", (unsigned long long)forks,
        (unsigned long long)fork_bad);
  CHECK(churn_bad == 0, "churned blocks overwritten: %llu", (unsigned long long)churn_bad);
  printf("signal: rate %zu, %llu + %llu signals handled (main, workers), %llu in mimalloc, %llu forks\n",
         rate, (unsigned long long)handled_main, (unsigned long long)handled_workers,
         (unsigned long long)skipped, (unsigned long long)forks);
  pthread_join(dog, NULL);
  return CHECK_DONE();
}
