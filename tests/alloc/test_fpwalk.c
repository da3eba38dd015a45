/* test_fpwalk.c - the frame-pointer walk (alloc/stack.c, palloc_fp_walk) on hostile values.
 *
 * A program's frame pointer register may hold anything (python3's Py_FinalizeEx was seen calling
 * malloc with rbp = -16), so the walk is driven here with an explicit first frame and bounds:
 *  - frames in one page fenced by PROT_NONE pages on both sides, so that a read one byte outside
 *    the bounds it was given is a SIGSEGV, not a silent pass;
 *  - first frames -16, -8, 0, 1, odd, unaligned, just below and at the bounds (hi - 8: half in);
 *  - chains that end in such a pointer, in a loop (a frame pointing to itself), downwards, or in
 *    a frame overlapping the one before;
 *  - bounds that are empty, inverted, shorter than a frame, or the whole address space (where
 *    fp + 16 wraps: -16 and -8 must still not be read);
 *  - the depth cap, and a real stack of this test's own frames.
 * The same hostile frame pointers then reach palloc_malloc through the real path (an assembly
 * caller sets rbp), at rate 1 under PALLOC_UNWIND=fp, also from a signal handler on an alternate
 * stack and from another thread: the program must carry on. Built with -DHOSTILE_LIBC and linked
 * with libpalloc, only those calls run, through malloc itself. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../check.h"
#ifdef HOSTILE_LIBC
#include <stdbool.h>
#include <stdint.h>
#include "palloc.h"
#define MALLOC_SYM "malloc@PLT"
#define FREE free
#else
#include "internal.h"
#define MALLOC_SYM "palloc_malloc"
#define FREE palloc_free

#endif

#ifndef HOSTILE_LIBC
#define RET(i) ((uintptr_t)0x400000 + 16 * (uintptr_t)(i)) /* plausible return addresses */

static uintptr_t *page;       /* one read-write page between two PROT_NONE pages */
static uintptr_t lo, hi;      /* its bounds */
static size_t psize;

static void fence_setup(void) {
  psize = (size_t)sysconf(_SC_PAGESIZE);
  char *m = mmap(NULL, 3 * psize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m + psize, psize, PROT_READ | PROT_WRITE) != 0) {
    perror("mmap");
    exit(2);
  }
  page = (uintptr_t *)(m + psize);
  lo = (uintptr_t)page;
  hi = lo + psize;
}

/* A frame at byte offset off of the page: [off] = next frame, [off + 8] = return address. */
static uintptr_t frame(size_t off, uintptr_t next, uintptr_t ret) {
  page[off / 8] = next;
  page[off / 8 + 1] = ret;
  return lo + off;
}

static int walk(uintptr_t fp, uintptr_t l, uintptr_t h, int max, uintptr_t *buf) {
  return palloc_fp_walk(fp, l, h, buf, max);
}

static void test_first_frame(void) {
  uintptr_t buf[8];
  memset(page, 0x41, psize); /* every word a plausible pointer and return address */
  const uintptr_t bad[] = {(uintptr_t)-16, (uintptr_t)-8, (uintptr_t)-1, 0, 1, 7, 8, 4096,
                           lo - 16, lo - 8, lo - 1, lo + 1, lo + 3, lo + 4, lo + 12,
                           hi - 15, hi - 8, hi - 1, hi, hi + 8, hi + 16, UINTPTR_MAX - 15};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(walk(bad[i], lo, hi, 8, buf) == 0, "first frame %#lx (lo %#lx hi %#lx)",
          (unsigned long)bad[i], (unsigned long)lo, (unsigned long)hi);
  /* The last 16 bytes are a frame; its next (0x4141...) is above hi: one frame, no more. */
  CHECK(walk(hi - 16, lo, hi, 8, buf) == 1 && buf[0] == page[psize / 8 - 1], "frame at hi - 16");
  CHECK(walk(lo, lo, hi, 8, buf) == 1, "frame at lo: %d", walk(lo, lo, hi, 8, buf));
}

static void test_chains(void) {
  uintptr_t buf[8];
  const uintptr_t ends[] = {(uintptr_t)-16, (uintptr_t)-8, 0, 1, 3, lo + 200, hi - 8, hi - 1,
                            hi, hi + 16, UINTPTR_MAX};
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
    memset(page, 0, psize);
    frame(128, ends[i], RET(3));
    frame(64, lo + 128, RET(2));
    uintptr_t fp = frame(0, lo + 64, RET(1));
    int n = walk(fp, lo, hi, 8, buf);
    CHECK(n == 3 && buf[0] == RET(1) && buf[1] == RET(2) && buf[2] == RET(3),
          "chain ending in %#lx: %d frames", (unsigned long)ends[i], n);
  }
  /* A loop, a frame pointing downwards, a frame overlapping the one below it. */
  memset(page, 0, psize);
  uintptr_t self = frame(256, lo + 256, RET(1));
  CHECK(walk(self, lo, hi, 8, buf) == 1, "frame pointing to itself");
  frame(512, lo + 256, RET(2));
  CHECK(walk(lo + 512, lo, hi, 8, buf) == 1, "frame pointing downwards");
  frame(256, lo + 512, RET(1));
  CHECK(walk(lo + 256, lo, hi, 8, buf) == 2, "a loop of two frames");
  frame(768, lo + 776, RET(4));
  CHECK(walk(lo + 768, lo, hi, 8, buf) == 1, "frame overlapping the one it called");
  /* A return address in the first page ends the walk without being recorded. */
  frame(0, lo + 64, 4095);
  CHECK(walk(lo, lo, hi, 8, buf) == 0, "return address 4095");
}

static void test_bounds(void) {
  uintptr_t buf[8];
  memset(page, 0, psize);
  uintptr_t fp = frame(0, 0, RET(1));
  CHECK(walk(fp, hi, lo, 8, buf) == 0, "inverted bounds");
  CHECK(walk(fp, lo, lo, 8, buf) == 0, "empty bounds");
  CHECK(walk(fp, lo, lo + 8, 8, buf) == 0, "bounds shorter than a frame");
  CHECK(walk(fp, lo, lo + 16, 8, buf) == 1, "bounds of exactly one frame");
  CHECK(walk(fp, 0, 1, 8, buf) == 0, "unknown bounds (palloc's marker: lo 0, hi 1)");
  CHECK(walk(fp, lo + 8, hi, 8, buf) == 0, "frame below lo");
  /* Bounds that span the whole address space: fp + 16 wraps for -16 and -8. */
  CHECK(walk((uintptr_t)-16, 0, UINTPTR_MAX, 8, buf) == 0, "-16 in [0, max)");
  CHECK(walk((uintptr_t)-8, 0, UINTPTR_MAX, 8, buf) == 0, "-8 in [0, max)");
  CHECK(walk((uintptr_t)-16, (uintptr_t)-64, (uintptr_t)-1, 8, buf) == 0, "-16 in [-64, -1)");
  CHECK(walk((uintptr_t)-32, (uintptr_t)-16, UINTPTR_MAX, 8, buf) == 0, "-32 below [-16, max)");
}

static void test_depth(void) {
  uintptr_t buf[PALLOC_MAX_DEPTH + 24];
  size_t frames = psize / 16;
  for (size_t i = 0; i < frames; i++)
    frame(16 * i, i + 1 < frames ? lo + 16 * (i + 1) : 0, RET(i + 1));
  CHECK(walk(lo, lo, hi, 0, buf) == 0, "max 0");
  CHECK(walk(lo, lo, hi, 10, buf) == 10 && buf[9] == RET(10), "max 10");
  int want = frames < PALLOC_MAX_DEPTH + 24 ? (int)frames : PALLOC_MAX_DEPTH + 24;
  int n = walk(lo, lo, hi, PALLOC_MAX_DEPTH + 24, buf);
  CHECK(n == want, "a full page of frames: %d of %d", n, want);
  bool exact = true;
  for (int i = 0; i < n; i++) exact &= buf[i] == RET(i + 1);
  CHECK(exact, "the frames' return addresses in order");
}

/* A real stack: this thread's own frames (the file is built with frame pointers). */
static uintptr_t real_buf[16];
static int real_n;
static uintptr_t real_ret;
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void real3(void) {
  pthread_attr_t a;
  void *addr;
  size_t size;
  pthread_getattr_np(pthread_self(), &a);
  pthread_attr_getstack(&a, &addr, &size);
  pthread_attr_destroy(&a);
  real_ret = (uintptr_t)__builtin_return_address(0);
  real_n = walk((uintptr_t)__builtin_frame_address(0), (uintptr_t)addr, (uintptr_t)addr + size,
                16, real_buf);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void real2(void) {
  real3();
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void real1(void) {
  real2();
  __asm__ volatile("" ::: "memory");
}
static void test_real_stack(void) {
  real1();
  CHECK(real_n >= 3 && real_buf[0] == real_ret, "real stack: %d frames, first %#lx want %#lx",
        real_n, (unsigned long)real_buf[0], (unsigned long)real_ret);
}

#endif /* !HOSTILE_LIBC */

/* ---- the allocation path with hostile frame pointers ---------------------------------------- */
#if defined(__x86_64__)
/* Calls malloc(n) (palloc_malloc(n)) with rbp = fp (the caller's frame pointer as palloc's walk sees it). */
void *hostile_malloc(uintptr_t fp, size_t n);
__asm__(".text\n"
        ".globl hostile_malloc\n"
        ".type hostile_malloc, @function\n"
        "hostile_malloc:\n"
        "  pushq %rbp\n"
        "  movq %rdi, %rbp\n"
        "  movq %rsi, %rdi\n"
        "  call " MALLOC_SYM "\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size hostile_malloc, .-hostile_malloc\n");

static const uintptr_t hostile[] = {(uintptr_t)-16, (uintptr_t)-8, (uintptr_t)-1, 0, 1, 3,
                                    0x7ffffffff000, UINTPTR_MAX - 4095};
static volatile sig_atomic_t handler_ok;

static int hostile_round(void) {
  int ok = 0;
  for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
    void *p = hostile_malloc(hostile[i], 100 + i);
    ok += p != NULL;
    FREE(p);
  }
  return ok;
}

static void on_signal(int sig) {
  (void)sig;
  /* Frames on the alternate stack are outside the thread's stack bounds. */
  handler_ok = hostile_round() == (int)(sizeof hostile / sizeof *hostile);
}

static void *thread_main(void *arg) {
  (void)arg;
  return (void *)(intptr_t)hostile_round();
}

static void test_alloc_path(void) {
  palloc_set_sample_rate(1);
  CHECK(hostile_round() == (int)(sizeof hostile / sizeof *hostile), "main thread");

  static char alt[64 * 1024];
  stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_ONSTACK;
  CHECK(sigaltstack(&ss, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0, "sigaltstack");
  raise(SIGUSR1);
  CHECK(handler_ok, "handler on the alternate stack");
  /* An alternate stack inside the thread's own stack: the walk starts within the bounds. */
  char local_alt[64 * 1024];
  stack_t local = {.ss_sp = local_alt, .ss_size = sizeof local_alt};
  handler_ok = 0;
  CHECK(sigaltstack(&local, NULL) == 0, "sigaltstack on the stack");
  raise(SIGUSR1);
  CHECK(handler_ok, "handler on an alternate stack inside the thread's stack");
  stack_t off = {.ss_flags = SS_DISABLE};
  sigaltstack(&off, NULL);

  pthread_t th;
  void *r = NULL;
  CHECK(pthread_create(&th, NULL, thread_main, NULL) == 0 && pthread_join(th, &r) == 0 &&
            (intptr_t)r == (intptr_t)(sizeof hostile / sizeof *hostile),
        "another thread");
  palloc_stats_t st;
  palloc_read_stats(&st);
  CHECK(st.sampled_allocs > 0, "the allocations were sampled: %llu",
        (unsigned long long)st.sampled_allocs);
}
#endif

int main(void) {
#ifndef HOSTILE_LIBC
  fence_setup();
  test_first_frame();
  test_chains();
  test_bounds();
  test_depth();
  test_real_stack();
#endif
#if defined(__x86_64__)
  test_alloc_path();
#endif
  return CHECK_DONE();
}
