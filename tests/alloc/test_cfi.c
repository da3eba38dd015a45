/* test_cfi.c - the .eh_frame walk (alloc/cfi.c).
 *
 * test_cfi rules OBJECT < EXPECTED: the decoder against binutils. check_cfi.py turns
 * `readelf --debug-dump=frames-interp OBJECT` into one line per row of every FDE, "ADDR KIND
 * CFA_OFF RBP_OFF" (ADDR relative to the object's load address; KIND 0 rsp-based, 1 rbp-based,
 * 2 outermost, 3 left to libunwind), and every row's first address must decode to exactly
 * that. The object must be loaded here (it is dlopen'd unless it is this program).
 *
 * test_cfi walk: the walk against libunwind's unw_backtrace, frame for frame, from the same
 * frame: stacks through frames with and without frame pointers, alloca (an rbp-based CFA), a
 * function built at -O0, libc's qsort calling back, 700 distinct call sites (the shared table
 * grows from 512 slots while four threads walk), threads with stacks of their own; and the
 * stacks it must leave to libunwind (-1): a signal handler's (a signal frame), a handler on an
 * alternate stack, a makecontext coroutine's. A second walk of a stack decodes nothing anew;
 * after palloc_cfi_forget (dlclose) its rules are decoded again, in the same table. */
#include <alloca.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <libunwind.h>
#include "internal.h"
#include "../check.h"

/* ---- rules ---------------------------------------------------------------------------------- */

struct find { const char *name; uintptr_t base; bool found; };

static int find_object(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct find *f = arg;
  const char *n = info->dlpi_name;
  if (f->name == NULL ? n[0] == 0 : strcmp(n, f->name) == 0 ||
      (strrchr(n, '/') && strcmp(strrchr(n, '/') + 1, f->name) == 0)) {
    f->base = info->dlpi_addr;
    f->found = true;
    return 1;
  }
  return 0;
}

static int rules(const char *object) {
  char self[4096];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(k > 0, "readlink /proc/self/exe");
  self[k > 0 ? k : 0] = 0;
  char real[4096];
  bool is_self = realpath(object, real) != NULL && strcmp(real, self) == 0;
  if (!is_self) CHECK(dlopen(object, RTLD_NOW | RTLD_GLOBAL) != NULL, "dlopen %s", object);
  struct find f = { is_self ? NULL : object, 0, false };
  dl_iterate_phdr(find_object, &f);
  if (!f.found) { /* a path through a symlink: look it up by the name the loader uses */
    void *h = dlopen(object, RTLD_NOW | RTLD_NOLOAD);
    struct link_map *lm = NULL;
    if (h && dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm) { f.base = lm->l_addr; f.found = true; }
  }
  CHECK(f.found, "%s is loaded", object);
  char line[256];
  long rows = 0, bad = 0, kinds[4] = {0};
  while (fgets(line, sizeof line, stdin)) {
    unsigned long long addr;
    unsigned kind;
    unsigned cfa, rbp;
    if (sscanf(line, "%llx %u %u %u", &addr, &kind, &cfa, &rbp) != 4) continue;
    uint32_t got_cfa, got_rbp;
    unsigned got = palloc_cfi_rule(f.base + (uintptr_t)addr, &got_cfa, &got_rbp);
    rows++;
    if (kind < 4) kinds[kind]++;
    bool same = got == kind && (kind > 1 || (got_cfa == cfa && got_rbp == rbp));
    if (!same && bad++ < 10)
      fprintf(stderr, "%s+0x%llx: readelf says %u cfa %u rbp %u, palloc decodes %u cfa %u rbp %u\n",
              object, addr, kind, cfa, rbp, got, got_cfa, got_rbp);
  }
  printf("%s: %ld rows (rsp-based %ld, rbp-based %ld, outermost %ld, left to libunwind %ld), "
         "%ld differ\n", object, rows, kinds[0], kinds[1], kinds[2], kinds[3], bad);
  CHECK(rows > 0, "%s: rows to check", object);
  CHECK(bad == 0, "%s: every row decodes as readelf shows it", object);
  return CHECK_DONE();
}

/* ---- walks ---------------------------------------------------------------------------------- */

static __thread uintptr_t lo, hi;

static void bounds(void) {
  pthread_attr_t a;
  void *addr;
  size_t size;
  CHECK(pthread_getattr_np(pthread_self(), &a) == 0, "pthread_getattr_np");
  pthread_attr_getstack(&a, &addr, &size);
  pthread_attr_destroy(&a);
  lo = (uintptr_t)addr;
  hi = lo + size;
}

static _Atomic int compared, general;

/* The walk from this frame, and libunwind's from the same place: unw_backtrace's first entry is
 * this function's own address, the next ones the walk's. want_general: the walk must say -1. */
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static int
compare(const char *what, bool want_general) {
  if (hi == 0) bounds();
  uintptr_t walk[160];
  void *lu[161];
  int n = palloc_cfi_walk_from((uintptr_t)__builtin_frame_address(0), lo, hi, 0, 0, walk, 150);
  int m = unw_backtrace(lu, 151);
  if (want_general) {
    CHECK(n == -1, "%s: the walk leaves this stack to libunwind (got %d frames)", what, n);
    atomic_fetch_add(&general, 1);
    return n;
  }
  bool same = n == m - 1;
  for (int i = 0; same && i < n; i++) same = walk[i] == (uintptr_t)lu[i + 1];
  if (!same) {
    fprintf(stderr, "%s: walk %d frames, libunwind %d\n", what, n, m - 1);
    for (int i = 0; i < 40 && (i < n || i + 1 < m); i++) {
      Dl_info d1 = {0}, d2 = {0};
      if (i < n) dladdr((void *)walk[i], &d1);
      if (i + 1 < m) dladdr(lu[i + 1], &d2);
      fprintf(stderr, "  %2d %#14lx %-24s %#14lx %s\n", i, i < n ? walk[i] : 0UL,
              d1.dli_sname ? d1.dli_sname : "?", i + 1 < m ? (unsigned long)lu[i + 1] : 0UL,
              d2.dli_sname ? d2.dli_sname : "?");
    }
  }
  CHECK(same, "%s: the walk gives libunwind's %d frames", what, m - 1);
  atomic_fetch_add(&compared, 1);
  return n;
}

__attribute__((noinline)) static int recurse(int d, const char *what) {
  if (d == 0) return compare(what, false);
  int r = recurse(d - 1, what);
  __asm__ volatile("" ::: "memory"); /* not a tail call */
  return r + 1;
}

__attribute__((noinline)) static int with_alloca(int n, const char *what) {
  volatile char *p = alloca((size_t)n * 32 + 8);
  p[0] = 1;
  int r = recurse(3, what);
  __asm__ volatile("" : : "r"(p) : "memory");
  return r + p[0];
}

__attribute__((noinline, optimize("O0"))) static int at_O0(int d, const char *what) {
  char vla[d * 16 + 1];
  vla[0] = (char)d;
  return with_alloca(d, what) + vla[0];
}

static int cmp_int(const void *a, const void *b) {
  static _Atomic int once;
  if (atomic_exchange(&once, 1) == 0) compare("qsort's callback", false);
  return *(const int *)a - *(const int *)b;
}

/* 700 distinct return addresses in one function: the table (512 slots at first) grows. */
#define S(i) case i: r = recurse(1, "call site " #i); break;
#define S10(i) S(i##0) S(i##1) S(i##2) S(i##3) S(i##4) S(i##5) S(i##6) S(i##7) S(i##8) S(i##9)
#define S100(i) S10(i##0) S10(i##1) S10(i##2) S10(i##3) S10(i##4) S10(i##5) S10(i##6) \
                S10(i##7) S10(i##8) S10(i##9)
__attribute__((noinline)) static int site(int i) {
  int r = 0;
  switch (i) { S100(1) S100(2) S100(3) S100(4) S100(5) S100(6) S100(7) }
  return r;
}

static void *sites(void *arg) {
  int from = (int)(intptr_t)arg;
  for (int i = 0; i < 700; i++) site(100 + (from + i) % 700);
  return NULL;
}

static void *thread_main(void *arg) {
  (void)arg;
  recurse(20, "a thread");
  at_O0(5, "a thread at -O0");
  return NULL;
}

static void on_signal(int sig) {
  (void)sig;
  compare("a signal handler (a signal frame)", true);
}

static void on_alt_signal(int sig) {
  (void)sig;
  compare("a handler on an alternate stack", true);
}

static ucontext_t main_uc, co_uc;
static void coroutine(void) { compare("a makecontext coroutine", true); }

static int walks(void) {
  recurse(0, "main");
  recurse(60, "60 frames without frame pointers");
  with_alloca(7, "alloca");
  at_O0(9, "a function built at -O0");
  int v[64];
  for (int i = 0; i < 64; i++) v[i] = 64 - i;
  qsort(v, 64, sizeof v[0], cmp_int);

  uint64_t d0 = 0, g0, d1 = 0, g1, slots0, slots1;
  for (volatile int i = 0; i < 2; i++) { /* the second time: the same stack (not unrolled) */
    palloc_cfi_counts(&d0, &g0, &slots0);
    recurse(30, "the same stack again");
    palloc_cfi_counts(&d1, &g1, &slots0);
  }
  CHECK(d1 == d0, "a stack walked before decodes nothing anew (%llu rules decoded)",
        (unsigned long long)(d1 - d0));

  /* Code unloaded (dlclose: unload.c): its rules are forgotten and decoded again when code
   * there is walked, in the same table: 2000 cycles take no more room. */
  Dl_info self;
  CHECK(dladdr((void *)recurse, &self) != 0, "dladdr");
  for (volatile int i = 0; i < 2000; i++) {
    palloc_cfi_forget((uintptr_t)self.dli_fbase, (uintptr_t)self.dli_fbase + (64u << 20));
    palloc_cfi_counts(&d0, &g0, &slots0);
    recurse(5, "after the code's rules were forgotten");
    palloc_cfi_counts(&d1, &g1, &slots1);
    if (d1 - d0 < 3 || slots1 != slots0) {
      CHECK(false, "cycle %d: %llu rules decoded again, table %llu -> %llu slots", i,
            (unsigned long long)(d1 - d0), (unsigned long long)slots0, (unsigned long long)slots1);
      break;
    }
  }

  pthread_t t[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, sites, (void *)(intptr_t)(i * 173)) == 0, "thread");
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);

  pthread_attr_t a;
  size_t size = 256 << 10;
  void *stack = aligned_alloc(4096, size);
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, stack, size);
  CHECK(pthread_create(&t[0], &a, thread_main, NULL) == 0, "thread on a stack of its own");
  pthread_join(t[0], NULL);
  pthread_create(&t[0], NULL, thread_main, NULL);
  pthread_join(t[0], NULL);
  pthread_attr_destroy(&a);
  free(stack);

  signal(SIGUSR1, on_signal);
  raise(SIGUSR1);
  stack_t ss = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 };
  sigaltstack(&ss, NULL);
  struct sigaction sa = { .sa_handler = on_alt_signal, .sa_flags = SA_ONSTACK };
  sigaction(SIGUSR2, &sa, NULL);
  raise(SIGUSR2);
  getcontext(&co_uc);
  co_uc.uc_stack.ss_sp = malloc(1 << 16);
  co_uc.uc_stack.ss_size = 1 << 16;
  co_uc.uc_link = &main_uc;
  makecontext(&co_uc, coroutine, 0);
  swapcontext(&main_uc, &co_uc);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  free(ss.ss_sp);
  free(co_uc.uc_stack.ss_sp);

  uint64_t dec, gen, slots;
  palloc_cfi_counts(&dec, &gen, &slots);
  printf("%d stacks as libunwind gives them, %d left to it; %llu rules decoded\n",
         atomic_load(&compared), atomic_load(&general), (unsigned long long)dec);
  CHECK(atomic_load(&compared) >= 2800 + 2000 + 7 && atomic_load(&general) == 3, "every case ran");
  return CHECK_DONE();
}

int main(int argc, char **argv) {
  if (!palloc_cfi_available()) {
    printf("SKIP: no _dl_find_object (glibc before 2.35)\n");
    return 77;
  }
  if (argc == 3 && strcmp(argv[1], "rules") == 0) return rules(argv[2]);
  if (argc == 2 && strcmp(argv[1], "walk") == 0) return walks();
  fprintf(stderr, "usage: test_cfi rules OBJECT < EXPECTED | test_cfi walk\n");
  return 2;
}
