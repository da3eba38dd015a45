/* config.c - the PALLOC_* environment: parsing, validation, warnings.
 *
 * Runs inside the first malloc of the process (possibly before any constructor), so it uses
 * only getenv and hand-written parsing: no stdio, no locale, no allocation. A bad value never
 * stops the program: it prints one "palloc:" line on stderr and the default is used.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "internal.h"

void palloc_warn(const char *fmt, ...) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "palloc: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  n += m < 0 ? 0 : (m > (int)(sizeof buf) - n - 2 ? (int)sizeof buf - n - 2 : m);
  buf[n++] = '\n';
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
}

int64_t palloc_parse_size(const char *s) {
  if (s == NULL || *s == 0) return -1;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1; /* no sign, no leading space: " 512" is a quoting slip */
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (uint64_t)INT64_MAX / 10) return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (*p == ' ') { /* "4 KiB": a space only between the number and a unit */
    while (*p == ' ') p++;
    if (*p == 0) return -1;
  }
  static const struct { const char *suffix; int shift; } units[] = {
    {"", 0}, {"B", 0}, {"K", 10}, {"KB", 10}, {"KIB", 10}, {"M", 20}, {"MB", 20},
    {"MIB", 20}, {"G", 30}, {"GB", 30}, {"GIB", 30}, {"T", 40}, {"TB", 40}, {"TIB", 40},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(p, units[i].suffix) == 0) {
      if (units[i].shift && v > ((uint64_t)INT64_MAX >> units[i].shift)) return -1;
      return (int64_t)(v << units[i].shift);
    }
  }
  return -1;
}

int palloc_parse_signal(const char *s) {
  if (s == NULL || *s == 0) return -1;
  if (strncasecmp(s, "SIG", 3) == 0) s += 3;
  char *end;
  if (*s >= '0' && *s <= '9') {
    long n = strtol(s, &end, 10);
    return *end == 0 && n > 0 && n < NSIG ? (int)n : -1;
  }
  /* Every standard name, also those no handler may take (KILL, STOP) or that faults raise
   * (SEGV...): the caller says why it cannot use them rather than "not a signal name". */
  static const struct { const char *name; int sig; } sigs[] = {
    {"KILL", SIGKILL}, {"STOP", SIGSTOP}, {"SEGV", SIGSEGV}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
    {"ILL", SIGILL}, {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"IOT", SIGABRT},
    {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
    {"CONT", SIGCONT}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},
    {"URG", SIGURG}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"PWR", SIGPWR}, {"SYS", SIGSYS},
  };
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (strcasecmp(s, sigs[i].name) == 0) return sigs[i].sig;
  if (strncasecmp(s, "RTMIN", 5) == 0) {
    long k = 0;
    if (s[5] == '+' && s[6] >= '0' && s[6] <= '9') {
      k = strtol(s + 6, &end, 10);
      if (*end != 0) return -1;
    } else if (s[5] != 0) {
      return -1;
    }
    if (SIGRTMIN + k <= SIGRTMAX) return SIGRTMIN + (int)k;
  }
  return -1;
}

static long parse_int(const char *name, const char *s, long lo, long hi, long dflt) {
  char *end;
  long v = strtol(s, &end, 10);
  /* strtol alone would take " 8" and "+8": a number here is digits only (a '-' for lo < 0) */
  bool digits = (*s >= '0' && *s <= '9') || (lo < 0 && *s == '-' && s[1] >= '0' && s[1] <= '9');
  if (!digits || *end != 0 || v < lo || v > hi) {
    palloc_warn("%s=%s is not a number in [%ld, %ld]; using %ld", name, s, lo, hi, dflt);
    return dflt;
  }
  return v;
}

void palloc_config_load(void) {
  const char *s;
  int64_t rate = PALLOC_DEFAULT_SAMPLE_RATE;
  if ((s = getenv("PALLOC_SAMPLE_RATE")) != NULL && *s) {
    int64_t r = palloc_parse_size(s);
    if (r < 0)
      palloc_warn("PALLOC_SAMPLE_RATE=%s is not a size (e.g. 524288, 512KiB, 1MiB); using %d",
                  s, PALLOC_DEFAULT_SAMPLE_RATE);
    else
      rate = r > INT64_MAX / 4 ? INT64_MAX / 4 : r;
  }
  atomic_store(&palloc_g.rate, rate);
  if ((s = getenv("PALLOC_SEED")) != NULL && *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 0); /* decimal, 0x hex or 0 octal */
    if (*s < '0' || *s > '9' || *end != 0) /* strtoull would take " 1" and "-1" */
      palloc_warn("PALLOC_SEED=%s is not a number; sampling is not reproducible", s);
    else {
      palloc_g.seed = v;
      palloc_g.seeded = true;
    }
  }
  if ((s = getenv("PALLOC_STACK_DEPTH")) != NULL && *s)
    palloc_g.depth = (int)parse_int("PALLOC_STACK_DEPTH", s, 1, PALLOC_MAX_DEPTH, 64);
  if ((s = getenv("PALLOC_UNWIND")) != NULL && *s) {
    if (strcmp(s, "fp") == 0)
      palloc_g.unwind_fp = true;
    else if (strcmp(s, "libunwind") != 0)
      palloc_warn("PALLOC_UNWIND=%s is not 'libunwind' or 'fp'; using libunwind", s);
  }
  if ((s = getenv("PALLOC_TCACHE")) != NULL && *s) {
    if (strcmp(s, "0") == 0 || strcasecmp(s, "off") == 0)
      palloc_g.tcache = false;
    else if (strcmp(s, "1") != 0 && strcasecmp(s, "on") != 0)
      palloc_warn("PALLOC_TCACHE=%s is not 1/on or 0/off; the thread cache stays on", s);
  }
  /* 'libdw' names what symbolized profiles before palloc read ELF and DWARF itself: it stays
   * accepted, as the same thing as 'elf', so that existing setups keep working silently. */
  if ((s = getenv("PALLOC_SYMBOLIZE")) != NULL && *s) {
    if (strcmp(s, "none") == 0)
      palloc_g.symbolize = false;
    else if (strcmp(s, "elf") != 0 && strcmp(s, "libdw") != 0)
      palloc_warn("PALLOC_SYMBOLIZE=%s is not 'elf' or 'none'; using elf", s);
  }
}
