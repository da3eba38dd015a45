/* leak.c - the leak gate (PALLOC_LEAK_CHECK=BYTES): at exit, the stacks whose sampled blocks are
 * still live, in LeakSanitizer's report shape, and a fixed exit status (PALLOC_LEAK_EXIT_CODE,
 * 23 as LSan's) when the leaked bytes exceed the budget by more than the noise.
 *
 * What is a leak here: a block still allocated at exit (palloc does not scan memory for
 * references as LSan does, so a block a global still points to counts too; the budget and the
 * suppressions are for those). What libc and the dynamic loader keep for the whole process is
 * left out by built-in suppressions, listed below and in the report's "Suppressions used".
 *
 * The numbers: each stack's live samples, unsampled (scaleHeapSample's estimate), with the 95%
 * interval of poisson.h; the total's standard error adds the stacks' variances. At rate 1 every
 * block is sampled and the figures are exact, printed without intervals. The gate fails when
 * the leaked bytes are surely above the budget: their lower bound, the larger of what the live
 * samples themselves hold (those blocks are seen live: at least that much leaked) and the
 * estimate minus 3 standard errors, exceeds the budget. So budget 0 fails on any live sample,
 * and a leak near the budget passes unless the samples show it above the budget beyond noise.
 *
 * A fork child's check counts what the child leaked: the blocks it inherited live (the parent's
 * state: a child that exits, such as a shell's subshell, frees none of it) are each bucket's
 * baseline, taken at the fork, and only what the bucket holds above it is reported.
 *
 * Runs in the exit destructor (lifecycle.c), after the exit profiles, under the writer lock and
 * the guard: what it allocates (stdio, the symbolizer's scratch) is unsampled and counts in no
 * bucket. On failure it flushes stdio (the program's unwritten output) and _exits, as LSan does.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "profinternal.h"
#include "palloc_proto.h"
#include "poisson.h"

/* What every glibc process keeps to its end: stdio's buffers; the dynamic loader's (TLS, link
 * maps) and what the libraries' constructors it runs keep, such as libstdc++'s 71 KiB emergency
 * exception pool: any stack through ld.so, matched by its module name since ld.so's own
 * functions have no names in its .dynsym (a program's main and its own constructors are called
 * by libc, not ld.so); locale and iconv data; the time zone. */
static const char *const builtin[] = {"_IO_file_doallocate", "^_dl_", "/ld-linux", "/ld64.so",
                                      "_nl_", "__gconv", "__tzfile_read", "setlocale", NULL};

typedef struct {
  const char *pat;
  bool builtin;
  uint64_t objects, bytes; /* raw live samples matched */
  double est;              /* their estimated bytes */
} supp_t;

typedef struct {
  const palloc_bucket_t *b;
  uint64_t objects, bytes;
  palloc_est_t eo, eb;
  const palloc_sym_t *syms; /* b->nstk */
} leak_t;

/* The report's descriptor: stderr as it was at start. Programs close their stderr at exit
 * (coreutils' close_stdout does, in an atexit handler), and a descriptor 2 reopened since may
 * be one of the program's files: the report must go to neither. */
static int report_fd = 2;

/* In the fork child (one thread, before it returns from fork): every bucket's live samples. */
void palloc_leak_fork_child(void) {
  if (!palloc_option_is_set(PALLOC_OPT_LEAK_CHECK)) return;
  for (palloc_bucket_t *b = palloc_bucket_list(); b; b = b->allnext) {
    palloc_bucket_counts_t c;
    palloc_bucket_read(b, &c);
    b->fork_live = c.allocs - c.frees;
    b->fork_live_bytes = c.alloc_bytes - c.free_bytes;
  }
}

void palloc_leak_start(void) {
  if (!palloc_option_is_set(PALLOC_OPT_LEAK_CHECK)) return;
  int fd = fcntl(2, F_DUPFD_CLOEXEC, 64);
  if (fd >= 0) report_fd = fd;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[1200];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n >= (int)sizeof line) n = (int)sizeof line - 1;
  palloc_proto_out_write(report_fd, line, (size_t)n);
}

/* LeakSanitizer's template match: '*' any run of characters, '^' and '$' anchor at the start
 * and the end; otherwise the pattern may match anywhere. */
static bool glob_here(const char *p, const char *s) {
  for (; *p; p++, s++) {
    if (*p == '*') {
      while (p[1] == '*') p++;
      for (const char *t = s;; t++) {
        if (glob_here(p + 1, t)) return true;
        if (*t == 0) return false;
      }
    }
    if (*p == '$' && p[1] == 0) return *s == 0;
    if (*s == 0 || *p != *s) return false;
  }
  return true;
}
static bool template_match(const char *pat, const char *s) {
  if (s == NULL || *pat == 0) return false;
  if (*pat == '^') return glob_here(pat + 1, s);
  for (; ; s++) {
    if (glob_here(pat, s)) return true;
    if (*s == 0) return false;
  }
}

/* The file's "leak:" rules, into supp[n..), in s. */
static size_t read_suppressions(const char *path, palloc_scratch_t *s, supp_t *supp, size_t n,
                                size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    palloc_warn("PALLOC_LEAK_SUPPRESSIONS=%s: cannot open it; no suppressions from it", path);
    return n;
  }
  size_t len = 0, room = 1 << 16;
  char *buf = palloc_scratch_alloc(s, room + 1);
  ssize_t r;
  while (buf && len < room && (r = read(fd, buf + len, room - len)) > 0) len += (size_t)r;
  close(fd);
  if (buf == NULL) return n;
  buf[len] = 0;
  for (char *line = buf, *next; line && *line && n < cap; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    while (*line == ' ' || *line == '\t') line++;
    size_t k = strlen(line);
    while (k > 0 && (line[k - 1] == ' ' || line[k - 1] == '\t' || line[k - 1] == '\r')) line[--k] = 0;
    if (*line == 0 || *line == '#') continue;
    if (strncmp(line, "leak:", 5) != 0 || line[5] == 0) {
      palloc_warn("PALLOC_LEAK_SUPPRESSIONS=%s: '%s' is not leak:PATTERN; ignored", path, line);
      continue;
    }
    supp[n++] = (supp_t){line + 5, false, 0, 0, 0};
  }
  return n;
}

static int by_bytes(const void *x, const void *y) {
  const leak_t *a = x, *b = y;
  return a->eb.value > b->eb.value ? -1 : a->eb.value < b->eb.value;
}

static void fmt_bytes(char *buf, size_t n, double v) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (v >= 1024 && k < 4) v /= 1024, k++;
  snprintf(buf, n, k ? "%.2f %s" : "%.0f %s", v, u[k]);
}

static int check(int64_t budget, palloc_scratch_t *s) {
  int64_t rate = atomic_load(&palloc_g.rate);
  bool exact = rate <= 1;
  size_t nb = 0, nframes = 0;
  palloc_bucket_t *head = palloc_bucket_list(); /* one head for both walks (lifetime.c's) */
  for (palloc_bucket_t *b = head; b; b = b->allnext) nb++;
  leak_t *L = palloc_scratch_alloc(s, (nb ? nb : 1) * sizeof *L);
  if (L == NULL) return -1;
  size_t n = 0;
  for (palloc_bucket_t *b = head; b && n < nb; b = b->allnext) {
    palloc_bucket_counts_t c;
    palloc_bucket_read(b, &c);
    uint64_t objects = c.allocs - c.frees, bytes = c.alloc_bytes - c.free_bytes;
    /* a fork child's: above what it inherited (frees of inherited blocks count against them) */
    objects = objects > b->fork_live ? objects - b->fork_live : 0;
    bytes = bytes > b->fork_live_bytes ? bytes - b->fork_live_bytes : 0;
    if (objects == 0 || bytes == 0) continue;
    L[n] = (leak_t){b, objects, bytes, {0, 0, 0, 0}, {0, 0, 0, 0}, NULL};
    L[n].eo = palloc_est_samples((double)L[n].objects, (double)L[n].bytes, rate,
                                 PALLOC_EST_OBJECTS, PALLOC_Z95);
    L[n].eb = palloc_est_samples((double)L[n].objects, (double)L[n].bytes, rate,
                                 PALLOC_EST_BYTES, PALLOC_Z95);
    nframes += b->nstk;
    n++;
  }
  /* names for every frame: the live ones symbolized together, an unloaded library's from
   * unload.c's record */
  uintptr_t *addrs = palloc_scratch_alloc(s, (nframes ? nframes : 1) * sizeof *addrs);
  palloc_sym_t *syms = palloc_scratch_alloc(s, (nframes ? nframes : 1) * sizeof *syms);
  if (!addrs || !syms) return -1;
  memset(syms, 0, (nframes ? nframes : 1) * sizeof *syms);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (uint32_t f = 0; f < L[i].b->nstk; f++) addrs[k++] = L[i].b->stk[f] - 1;
  if (palloc_g.symbolize && k > 0) palloc_symbolize(addrs, k, syms, s);
  size_t nmaps = 0;
  palloc_mapping_t *maps = palloc_maps_read(s, &nmaps);
  if (maps == NULL) nmaps = 0;
  k = 0;
  for (size_t i = 0; i < n; i++) {
    L[i].syms = &syms[k];
    const uint32_t *gone = atomic_load_explicit(&L[i].b->gone, memory_order_acquire);
    for (uint32_t f = 0; f < L[i].b->nstk; f++, k++)
      if (gone && gone[f] && palloc_unload_frame(gone[f])) syms[k] = palloc_unload_frame(gone[f])->sym;
  }

  enum { MAX_SUPP = 256 };
  supp_t *supp = palloc_scratch_alloc(s, MAX_SUPP * sizeof *supp);
  if (supp == NULL) return -1;
  size_t ns = 0;
  for (const char *const *p = builtin; *p; p++) supp[ns++] = (supp_t){*p, true, 0, 0, 0};
  const char *file = palloc_option_str(PALLOC_OPT_LEAK_SUPPRESSIONS);
  if (file) ns = read_suppressions(file, s, supp, ns, MAX_SUPP);

  /* suppressed stacks leave the list */
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    supp_t *hit = NULL;
    for (size_t j = 0; j < ns && !hit; j++)
      for (uint32_t f = 0; f < L[i].b->nstk && !hit; f++) {
        const palloc_sym_t *y = &L[i].syms[f];
        long m = palloc_maps_find(maps, nmaps, L[i].b->stk[f] - 1);
        if (template_match(supp[j].pat, y->func) || template_match(supp[j].pat, y->file) ||
            (m >= 0 && template_match(supp[j].pat, maps[m].path)))
          hit = &supp[j];
      }
    if (hit) {
      hit->objects += L[i].objects;
      hit->bytes += L[i].bytes;
      hit->est += L[i].eb.value;
    } else {
      L[kept++] = L[i];
    }
  }
  n = kept;
  qsort(L, n, sizeof *L, by_bytes);

  palloc_est_t tb = {0, 0, 0, 0}, to = {0, 0, 0, 0};
  uint64_t raw_bytes = 0, samples = 0;
  for (size_t i = 0; i < n; i++) {
    palloc_est_add(&tb, &L[i].eb);
    palloc_est_add(&to, &L[i].eo);
    raw_bytes += L[i].bytes;
    samples += L[i].objects;
  }
  palloc_est_close(&tb, PALLOC_Z95);
  palloc_est_close(&to, PALLOC_Z95);
  double se = palloc_est_se(&tb);
  double lower = tb.value - PALLOC_Z997 * se;
  if (lower < (double)raw_bytes) lower = (double)raw_bytes;
  bool over = n > 0 && lower > (double)budget;

  long pid = (long)getpid();
  char a[32], b[32], c[32];
  if (n > 0) {
    say("\n=================================================================\n");
    say("==%ld==ERROR: palloc LeakCheck: detected memory leaks%s\n", pid,
        exact ? "" : " (estimated from samples)");
  }
  for (size_t i = 0; i < n; i++) {
    const leak_t *l = &L[i];
    if (exact)
      say("\nLeak of %llu byte(s) in %llu object(s) allocated from:\n",
          (unsigned long long)l->bytes, (unsigned long long)l->objects);
    else
      say("\nLeak of ~%.0f byte(s) [95%%: %.0f-%.0f] in ~%.0f object(s) (%llu sample%s) "
          "allocated from:\n", l->eb.value, l->eb.lo, l->eb.hi, l->eo.value,
          (unsigned long long)l->objects, l->objects == 1 ? "" : "s");
    for (uint32_t f = 0; f < l->b->nstk; f++) {
      const palloc_sym_t *y = &l->syms[f];
      uintptr_t pc = l->b->stk[f] - 1;
      long m = palloc_maps_find(maps, nmaps, pc);
      if (y->func && y->file && y->line > 0)
        say("    #%u 0x%lx in %s %s:%d\n", f, (unsigned long)pc, y->func, y->file, y->line);
      else if (y->func)
        say("    #%u 0x%lx in %s (%s+0x%lx)\n", f, (unsigned long)pc, y->func,
            m >= 0 ? maps[m].path : "?",
            m >= 0 ? (unsigned long)(pc - maps[m].start + maps[m].offset) : 0ul);
      else
        say("    #%u 0x%lx (%s+0x%lx)\n", f, (unsigned long)pc, m >= 0 ? maps[m].path : "?",
            m >= 0 ? (unsigned long)(pc - maps[m].start + maps[m].offset) : 0ul);
    }
  }
  bool used = false;
  for (size_t j = 0; j < ns; j++) used |= supp[j].objects > 0;
  if (used) {
    say("\n-----------------------------------------------------\n");
    say("Suppressions used:\n  count      bytes template\n");
    for (size_t j = 0; j < ns; j++)
      if (supp[j].objects > 0)
        say("%7llu %10.0f %s%s\n", (unsigned long long)supp[j].objects,
            exact ? (double)supp[j].bytes : supp[j].est, supp[j].pat,
            supp[j].builtin ? " (built-in)" : "");
    say("-----------------------------------------------------\n");
  }
  fmt_bytes(c, sizeof c, (double)budget);
  if (n == 0) return 0; /* as LSan: silent */
  fmt_bytes(a, sizeof a, tb.value);
  if (exact) {
    say("\nSUMMARY: palloc LeakCheck: %.0f byte(s) leaked in %.0f allocation(s); budget %s: %s\n",
        tb.value, to.value, c,
        over ? "over budget, exit status " PALLOC_LEAK_EXIT_TEXT : "within budget");
  } else {
    fmt_bytes(b, sizeof b, PALLOC_Z95 * se);
    say("\nSUMMARY: palloc LeakCheck: ~%.0f byte(s) (%s +- %s, 95%%) leaked in ~%.0f "
        "allocation(s), from %llu samples at rate %lld; budget %s: %s\n",
        tb.value, a, b, to.value, (unsigned long long)samples, (long long)rate, c,
        over ? "over budget by more than the noise, exit status " PALLOC_LEAK_EXIT_TEXT
             : "not over budget by more than the noise (3 standard errors)");
  }
  return over;
}

void palloc_leak_check_exit(void) {
  if (!palloc_option_is_set(PALLOC_OPT_LEAK_CHECK)) return;
  int64_t budget = palloc_option_int(PALLOC_OPT_LEAK_CHECK);
  palloc_thread_t *t = &palloc_thread;
  if (atomic_load(&palloc_g.rate) == 0) {
    palloc_warn("PALLOC_LEAK_CHECK: sampling is off (PALLOC_SAMPLE_RATE=0): no leak check");
    return;
  }
  palloc_writer_lock(); /* unload.c's records, and no profile write meanwhile */
  palloc_guard_enter(t);
  palloc_scratch_t *s = palloc_scratch_new();
  int over = s ? check(budget, s) : -1;
  if (over < 0) palloc_warn("PALLOC_LEAK_CHECK: out of memory; no leak check");
  palloc_scratch_destroy(s);
  palloc_guard_exit(t);
  palloc_writer_unlock();
  if (over > 0) {
    fflush(NULL); /* the program's output still in stdio's buffers: exit() would write it */
    _exit(PALLOC_LEAK_EXIT_CODE);
  }
}
