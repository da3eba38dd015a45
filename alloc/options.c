/* options.c - the PALLOC_* table, its parsers, and the once-only reading of the environment.
 *
 * Runs inside the first malloc of the process (possibly before any constructor): getenv, the
 * parsers below, write(2). No stdio, no allocation, no locale (words and units are compared as
 * ASCII here, not through strcasecmp or strtol, which consult the locale).
 *
 * Rules shared by every kind: a value is taken as written, so " 512", "512 " and "+8" are
 * refused (quoting slips, not numbers); words (enum names, on/off, signal names) are matched in
 * any case; the units of a size are Go's and are matched exactly (palloc_parse_size).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include "options.h"

#define KiB ((int64_t)1 << 10)

static char profile_path[PALLOC_PROFILE_PATH_MAX], trace_path[4096];
static char peak_path[PALLOC_PROFILE_PATH_MAX], lifetime_path[PALLOC_PROFILE_PATH_MAX];
static char suppressions_path[4096];
static char debug_dirs[4096];

static char http_addr[256];
static const palloc_option_word_t unwind_words[] = {
  {"cfi", 0, false}, {"fp", 1, false}, {"libunwind", 2, false}, {NULL, 0, false}};
/* 'libdw' names what symbolized profiles before palloc read ELF and DWARF itself: it stays
 * accepted, as the same thing as 'elf', so that existing setups keep working silently. */
static const palloc_option_word_t symbolize_words[] = {
  {"elf", 1, false}, {"none", 0, false}, {"libdw", 1, true}, {NULL, 0, false}};
static const palloc_option_word_t trace_words[] = {
  {"0", PALLOC_TRACE_OFF, false}, {"off", PALLOC_TRACE_OFF, true}, {"1", PALLOC_TRACE_ON, false},
  {"legacy", PALLOC_TRACE_LEGACY, false}, {NULL, 0, false}};

/* Order: the README's table (palloc_option_t's order). Help strings are markdown. */
const palloc_option_desc_t palloc_options[PALLOC_OPT_COUNT] = {
  [PALLOC_OPT_SAMPLE_RATE] = {
    "PALLOC_SAMPLE_RATE", PALLOC_KIND_SIZE, 512 * KiB, 0, INT64_MAX / 4, 0, NULL, NULL,
    "`524288`", "using 524288",
    "mean bytes between samples, a size (below); `1` = every allocation (exact), `0` = off"},
  [PALLOC_OPT_PROFILE] = {
    "PALLOC_PROFILE", PALLOC_KIND_PATH, 0, 0, sizeof profile_path - 1, 0, NULL, profile_path,
    "unset: no file", "no profile will be written",
    "write a heap profile here at exit; `%p` = pid, `%%` = `%`. A regular file (or a symlink's "
    "target) is replaced through a temporary name and rename; a FIFO or a character device is "
    "written directly (a FIFO nobody reads: one `palloc:` line, no wait); a directory or "
    "anything else is refused"},
  [PALLOC_OPT_PROFILE_SIGNAL] = {
    "PALLOC_PROFILE_SIGNAL", PALLOC_KIND_SIGNAL, 0, 1, 64, 0, NULL, NULL,
    "unset", "no signal snapshots",
    "write a numbered snapshot on this signal (`USR2`, `SIGUSR2`, `12`, `RTMIN+2`; not `KILL`, "
    "`STOP` or a fault signal)"},
  [PALLOC_OPT_PROFILE_INTERVAL] = {
    "PALLOC_PROFILE_INTERVAL", PALLOC_KIND_SECONDS, 0, 1, (int64_t)INT32_MAX * 1000, 0, NULL, NULL,
    "unset", "no interval snapshots",
    "write a numbered snapshot every N seconds (decimals allowed: `0.5`, at least `0.001`)"},
  [PALLOC_OPT_STACK_DEPTH] = {
    "PALLOC_STACK_DEPTH", PALLOC_KIND_COUNT, 64, 1, 128, 0, NULL, NULL,
    "`64`", "using 64",
    "frames kept per stack, 1 to 128"},
  [PALLOC_OPT_UNWIND] = {
    "PALLOC_UNWIND", PALLOC_KIND_ENUM, 0, 0, 0, 0, unwind_words, NULL,
    "`cfi`", "using cfi",
    "`cfi` (any code: palloc's walk by the `.eh_frame` rules, one rule cache for all threads; "
    "libunwind takes the stacks it cannot, such as signal frames), `libunwind` (libunwind "
    "only) or `fp` (frame-pointer walk; needs `-fno-omit-frame-pointer`, and says so once if "
    "the program's stacks come out one frame deep)"},
  [PALLOC_OPT_SYMBOLIZE] = {
    "PALLOC_SYMBOLIZE", PALLOC_KIND_ENUM, 1, 0, 0, 0, symbolize_words, NULL,
    "`elf`", "using elf",
    "`elf` (names, files and lines written in the profile, read by palloc from the loaded "
    "files' ELF symbol tables and DWARF line tables) or `none` (pprof symbolizes); `libdw`, "
    "the old name, means `elf`"},
  [PALLOC_OPT_DEBUG_DIRS] = {
    "PALLOC_DEBUG_DIRS", PALLOC_KIND_PATH, 0, 0, sizeof debug_dirs - 1, 0, NULL, debug_dirs,
    "unset", "only /usr/lib/debug",
    "directories (`:`-separated) searched before `/usr/lib/debug` for the separate debug files "
    "of stripped binaries: `DIR/.build-id/xx/yyyy.debug` by GNU build id, and the "
    "`.gnu_debuglink` name (also next to the binary and in its `.debug/`)"},
  [PALLOC_OPT_SEED] = {
    "PALLOC_SEED", PALLOC_KIND_SEED, 0, 0, 0, 0, NULL, NULL,
    "random", "sampling is not reproducible",
    "seed for the sampler (decimal or `0x` hex): single-threaded runs become reproducible"},
  [PALLOC_OPT_TCACHE] = {
    "PALLOC_TCACHE", PALLOC_KIND_BOOL, 1, 0, 1, 0, NULL, NULL,
    "`1`", "the thread cache stays on",
    "`1`/`on` or `0`/`off`: the per-thread cache of freed small blocks (below)"},
  [PALLOC_OPT_GOGC] = {
    "PALLOC_GOGC", PALLOC_KIND_PERCENT, 100, -1, 100000000, 0, NULL, NULL,
    "`100`", "using 100",
    "gcsim: Go's `GOGC`, the heap growth in percent that triggers a collection, or `off` (a "
    "negative number is `off` too)"},
  [PALLOC_OPT_MEMLIMIT] = {
    "PALLOC_MEMLIMIT", PALLOC_KIND_SIZE, INT64_MAX, 0, INT64_MAX, INT64_MAX, NULL, NULL,
    "`off`", "no limit",
    "gcsim: Go's `GOMEMLIMIT`, a size (below) or `off`"},
  [PALLOC_OPT_TRACE] = {
    "PALLOC_TRACE", PALLOC_KIND_ENUM, 0, 0, 0, 0, trace_words, NULL,
    "`0`", "tracing off",
    "gcsim: `1` prints Go's `gctrace` line per cycle (Go 1.18+ shape), `legacy` the pre-1.18 "
    "shape; in a malloc/free program, the cycles a Go-style collector would run (the what-if "
    "mode); `0`/`off` = off"},
  [PALLOC_OPT_TRACE_FILE] = {
    "PALLOC_TRACE_FILE", PALLOC_KIND_PATH, 0, 0, sizeof trace_path - 1, 0, NULL, trace_path,
    "stderr", "tracing to stderr",
    "gcsim: append the trace lines to this file; `%p` = pid, `%%` = `%`; opened as "
    "`PALLOC_PROFILE` is (a file that cannot be opened: one `palloc:` line, stderr instead)"},
  [PALLOC_OPT_TRACE_MARKRATE] = {
    "PALLOC_TRACE_MARKRATE", PALLOC_KIND_SIZE, 0, 1, INT64_MAX, 0, NULL, NULL,
    "measured", "the mark rate is measured",
    "gcsim, what-if mode: the mark rate in bytes per second, a size (e.g. `800MiB`); pins "
    "what is otherwise measured at start-up"},
  [PALLOC_OPT_PEAK_PROFILE] = {
    "PALLOC_PEAK_PROFILE", PALLOC_KIND_PATH, 0, 0, sizeof peak_path - 1, 0, NULL, peak_path,
    "unset: no file", "no peak profile will be written",
    "write the peak-heap profile here at exit (what was live at the high-water mark; its "
    "comments say when and how large), and with every snapshot, numbered as they are; `%p` = "
    "pid; opened as `PALLOC_PROFILE` is"},
  [PALLOC_OPT_PEAK_GROWTH] = {
    "PALLOC_PEAK_GROWTH", PALLOC_KIND_FACTOR, 1100, 1001, 1000000, -1, NULL, NULL,
    "`1.1`", "using 1.1",
    "a new peak is recorded when the estimated live heap exceeds the last one by this factor "
    "(`1.001` to `1000`); `off` = no peak tracking"},
  [PALLOC_OPT_LIFETIMES] = {
    "PALLOC_LIFETIMES", PALLOC_KIND_BOOL, 1, 0, 1, 0, NULL, NULL,
    "`1`", "lifetimes stay on",
    "`1`/`on` or `0`/`off`: record when each sampled block is allocated and freed (the lifetime "
    "profile and the temporaries)"},
  [PALLOC_OPT_LIFETIME_PROFILE] = {
    "PALLOC_LIFETIME_PROFILE", PALLOC_KIND_PATH, 0, 0, sizeof lifetime_path - 1, 0, NULL,
    lifetime_path, "unset: no file", "no lifetime profile will be written",
    "write the lifetime profile here at exit, and with every snapshot; `%p` = pid; opened as "
    "`PALLOC_PROFILE` is"},
  [PALLOC_OPT_TEMP_THRESHOLD] = {
    "PALLOC_TEMP_THRESHOLD", PALLOC_KIND_DURATION, 1000000, 1, INT64_MAX / 2, 0, NULL, NULL,
    "`1ms`", "using 1ms",
    "a sampled block freed within this time of its allocation is a temporary (the lifetime "
    "profile's `temp_*` values): digits and `ns`, `us`, `ms` or `s`"},
  [PALLOC_OPT_LEAK_CHECK] = {
    "PALLOC_LEAK_CHECK", PALLOC_KIND_SIZE, 0, 0, INT64_MAX / 4, 0, NULL, NULL,
    "unset: no check", "no leak check",
    "at exit, report the stacks of the blocks still live (LeakSanitizer's shape, estimates with "
    "95% intervals; exact at rate 1) and exit with status 23 when the leaked bytes exceed this "
    "budget, a size, by more than 3 standard errors; `0` = any leak"},
  [PALLOC_OPT_LEAK_SUPPRESSIONS] = {
    "PALLOC_LEAK_SUPPRESSIONS", PALLOC_KIND_PATH, 0, 0, sizeof suppressions_path - 1, 0, NULL,
    suppressions_path, "unset", "no suppressions",
    "a LeakSanitizer suppressions file: lines `leak:PATTERN` (a function, source file or "
    "library name; `*` matches anything, `^`/`$` anchor), `#` comments; matching stacks are "
    "left out of the leak check"},
  [PALLOC_OPT_HTTP] = {
    "PALLOC_HTTP", PALLOC_KIND_PATH, 0, 0, sizeof http_addr - 1, 0, NULL, http_addr,
    "unset: no endpoint", "no endpoint",
    "serve Go's `/debug/pprof/` (heap, allocs, `?seconds=N`, `?debug=1`, symbol, cmdline) and "
    "Prometheus' `/metrics` from a palloc thread at `host:port` (`127.0.0.1:6060`; `:6060` and "
    "`6060` are loopback too; `[::1]:6060`; `:0` = a free port, printed in one `palloc:` line) "
    "or `unix:/path` (`%p` = pid); see [Live profiles](#live-profiles-palloc_http)"},
};

const char palloc_options_rules[] =
  "A *size* is digits alone (bytes) or digits and one of Go's units, written exactly so: `B`, "
  "`KiB`, `MiB`, `GiB`, `TiB`; palloc also takes `K`, `M`, `G`, `T` in either case (binary, as "
  "coreutils' `sort -S`). Refused: signs, spaces, fractions, `kib`, and `KB`, `MB`, `GB`, `TB` "
  "(decimal units elsewhere; Go refuses them too). Words (`on`, `off`, `fp`, signal names) are "
  "matched in any case. Values are read once, at palloc's start: a bad one prints one "
  "`palloc:` line on stderr, says what is used instead, and the program runs on.";

/* ---- parsers -------------------------------------------------------------------------------- */
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static bool ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (lower(*a) != lower(*b)) return false;
  return *a == *b;
}

/* Leading decimal digits into *v; returns the end, or NULL if there are none or they overflow. */
static const char *digits(const char *s, uint64_t *v) {
  if (*s < '0' || *s > '9') return NULL;
  uint64_t x = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (x > ((uint64_t)INT64_MAX - d) / 10) return NULL;
    x = x * 10 + d;
  }
  *v = x;
  return s;
}

/* A decimal number ("1", "0.5", "1.125") as thousandths in *v, rounded down (decimals past the
 * third are read and dropped): the end of the number, or NULL if s does not start with one (or
 * it does not fit). Factors and seconds are read so. */
static const char *thousandths(const char *s, int64_t *v) {
  uint64_t u;
  const char *end = digits(s, &u);
  if (end == NULL || u > (uint64_t)INT64_MAX / 1000) return NULL;
  int64_t x = (int64_t)u * 1000;
  if (*end == '.') {
    int64_t scale = 100;
    for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
      x += (int64_t)(*end - '0') * scale;
    if (end[-1] == '.') return NULL; /* "1." */
  }
  *v = x;
  return end;
}

/* PALLOC_OPT_SYNTAX, PALLOC_OPT_RANGE (a well-formed size past INT64_MAX) or _OK with *out. */
static palloc_option_err_t parse_size(const char *s, int64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') return PALLOC_OPT_SYNTAX;
  uint64_t v = 0;
  bool over = false; /* digits past INT64_MAX: out of range if a unit follows, as for 2^70 B */
  for (; *s >= '0' && *s <= '9'; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > ((uint64_t)INT64_MAX - d) / 10) over = true;
    else v = v * 10 + d;
  }
  const char *unit = s;
  static const struct { const char *unit; int shift; bool any_case; } units[] = {
    {"", 0, false}, {"B", 0, false}, {"KiB", 10, false}, {"MiB", 20, false},
    {"GiB", 30, false}, {"TiB", 40, false},
    {"K", 10, true}, {"M", 20, true}, {"G", 30, true}, {"T", 40, true},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (units[i].any_case ? !ieq(unit, units[i].unit) : strcmp(unit, units[i].unit) != 0) continue;
    if (over || v > ((uint64_t)INT64_MAX >> units[i].shift)) return PALLOC_OPT_RANGE;
    *out = (int64_t)(v << units[i].shift);
    return PALLOC_OPT_OK;
  }
  return PALLOC_OPT_SYNTAX;
}

int64_t palloc_parse_size(const char *s) {
  int64_t v;
  return parse_size(s, &v) == PALLOC_OPT_OK ? v : -1;
}

int palloc_parse_signal(const char *s) {
  if (s == NULL || *s == 0) return -1;
  if (lower(s[0]) == 's' && lower(s[1]) == 'i' && lower(s[2]) == 'g') s += 3;
  uint64_t n;
  const char *end = digits(s, &n);
  if (end != NULL) return *end == 0 && n > 0 && n < (uint64_t)NSIG ? (int)n : -1;
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
    if (ieq(s, sigs[i].name)) return sigs[i].sig;
  if (lower(s[0]) == 'r' && lower(s[1]) == 't' && lower(s[2]) == 'm' && lower(s[3]) == 'i' &&
      lower(s[4]) == 'n') {
    uint64_t k = 0;
    if (s[5] == '+') {
      if ((end = digits(s + 6, &k)) == NULL || *end != 0) return -1;
    } else if (s[5] != 0) {
      return -1;
    }
    if (k <= (uint64_t)(SIGRTMAX - SIGRTMIN)) return SIGRTMIN + (int)k;
  }
  return -1;
}

/* strtoull's base 0 (0x hex, 0 octal, else decimal), without its sign and space skipping. */
static bool parse_seed(const char *s, uint64_t *out) {
  unsigned base = 10;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  } else if (s[0] == '0' && s[1] != 0) {
    base = 8;
    s++;
  }
  if (*s == 0) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    char c = lower(*s);
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 99;
    if (d >= base || v > (UINT64_MAX - d) / base) return false;
    v = v * base + d;
  }
  *out = v;
  return true;
}

palloc_option_err_t palloc_option_parse(palloc_option_t id, const char *s, int64_t *out) {
  const palloc_option_desc_t *o = &palloc_options[id];
  uint64_t u;
  const char *end;
  int64_t v;
  switch (o->kind) {
  case PALLOC_KIND_SIZE: {
    if (o->off_value != 0 && ieq(s, "off")) {
      *out = o->off_value;
      return PALLOC_OPT_OK;
    }
    palloc_option_err_t err = parse_size(s, &v);
    if (err != PALLOC_OPT_OK) return err;
    if (v < o->lo || v > o->hi) return PALLOC_OPT_RANGE;
    *out = v;
    return PALLOC_OPT_OK;
  }
  case PALLOC_KIND_COUNT: {
    bool neg = o->lo < 0 && *s == '-';
    if ((end = digits(s + neg, &u)) == NULL || *end != 0) return PALLOC_OPT_SYNTAX;
    v = neg ? -(int64_t)u : (int64_t)u;
    if (v < o->lo || v > o->hi) return PALLOC_OPT_RANGE;
    *out = v;
    return PALLOC_OPT_OK;
  }
  case PALLOC_KIND_SECONDS: /* seconds to milliseconds */
    if ((end = thousandths(s, &v)) == NULL || *end != 0) return PALLOC_OPT_SYNTAX;
    if (v < o->lo || v > o->hi) return PALLOC_OPT_RANGE;
    *out = v;
    return PALLOC_OPT_OK;
  case PALLOC_KIND_SEED:
    if (!parse_seed(s, &u)) return PALLOC_OPT_SYNTAX;
    *out = (int64_t)u; /* the bits: a seed above INT64_MAX is kept as it is */
    return PALLOC_OPT_OK;
  case PALLOC_KIND_ENUM:
    for (const palloc_option_word_t *w = o->words; w->word; w++)
      if (ieq(s, w->word)) {
        *out = w->value;
        return PALLOC_OPT_OK;
      }
    return PALLOC_OPT_SYNTAX;
  case PALLOC_KIND_BOOL:
    if (strcmp(s, "1") == 0 || ieq(s, "on")) *out = 1;
    else if (strcmp(s, "0") == 0 || ieq(s, "off")) *out = 0;
    else return PALLOC_OPT_SYNTAX;
    return PALLOC_OPT_OK;
  case PALLOC_KIND_PERCENT: /* Go's readGOGC: "off", or an integer where negative is off */
    if (ieq(s, "off")) {
      *out = -1;
      return PALLOC_OPT_OK;
    }
    if ((end = digits(s + (*s == '-'), &u)) == NULL || *end != 0) return PALLOC_OPT_SYNTAX;
    if (*s == '-') *out = -1;
    else if (u > (uint64_t)o->hi) return PALLOC_OPT_RANGE;
    else *out = (int64_t)u;
    return PALLOC_OPT_OK;
  case PALLOC_KIND_SIGNAL: {
    int sig = palloc_parse_signal(s);
    if (sig < 0) return PALLOC_OPT_SYNTAX;
    if (sig == SIGKILL || sig == SIGSTOP) return PALLOC_OPT_UNCATCHABLE;
    /* a handler that returns would resume the faulting instruction, or hide abort() */
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
        sig == SIGABRT)
      return PALLOC_OPT_FAULT;
    *out = sig;
    return PALLOC_OPT_OK;
  }
  case PALLOC_KIND_FACTOR:
    if (o->off_value != 0 && ieq(s, "off")) {
      *out = o->off_value;
      return PALLOC_OPT_OK;
    }
    if ((end = thousandths(s, &v)) == NULL || *end != 0) return PALLOC_OPT_SYNTAX;
    if (v < o->lo || v > o->hi) return PALLOC_OPT_RANGE;
    *out = v;
    return PALLOC_OPT_OK;
  case PALLOC_KIND_DURATION: {
    static const struct { const char *unit; int64_t ns; } units[] = {
      {"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000}};
    if ((end = digits(s, &u)) == NULL) return PALLOC_OPT_SYNTAX;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if (strcmp(end, units[i].unit) != 0) continue;
      if (u > (uint64_t)o->hi / (uint64_t)units[i].ns) return PALLOC_OPT_RANGE;
      v = (int64_t)u * units[i].ns;
      if (v < o->lo) return PALLOC_OPT_RANGE;
      *out = v;
      return PALLOC_OPT_OK;
    }
    return PALLOC_OPT_SYNTAX;
  }
  case PALLOC_KIND_PATH: {
    size_t n = strlen(s);
    if (n > (size_t)o->hi) return PALLOC_OPT_TOO_LONG;
    *out = (int64_t)n;
    return PALLOC_OPT_OK;
  }
  }
  return PALLOC_OPT_SYNTAX;
}

/* ---- messages ------------------------------------------------------------------------------- */
typedef struct { char *p; size_t n, cap; } line_t;

static void put(line_t *l, const char *s, size_t k) {
  if (k > l->cap - 1 - l->n) k = l->cap - 1 - l->n;
  memcpy(l->p + l->n, s, k);
  l->n += k;
}
static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }
static void puti(line_t *l, int64_t v) {
  char num[24], *e = num + sizeof num;
  uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
  do *--e = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) *--e = '-';
  put(l, e, (size_t)(num + sizeof num - e));
}

static const char *signame(int sig) {
  switch (sig) {
  case SIGKILL: return "SIGKILL";
  case SIGSTOP: return "SIGSTOP";
  case SIGSEGV: return "SIGSEGV";
  case SIGBUS: return "SIGBUS";
  case SIGFPE: return "SIGFPE";
  case SIGILL: return "SIGILL";
  case SIGTRAP: return "SIGTRAP";
  default: return "SIGABRT";
  }
}

size_t palloc_option_message(palloc_option_t id, const char *s, palloc_option_err_t err,
                             char *buf, size_t cap) {
  const palloc_option_desc_t *o = &palloc_options[id];
  line_t l = {buf, 0, cap};
  if (cap < 2) return 0;
  puts_(&l, "palloc: ");
  puts_(&l, o->name);
  puts_(&l, "=");
  size_t k = strlen(s);
  put(&l, s, k > 160 ? 160 : k); /* a long value is cut: the reason must stay on the line */
  if (k > 160) puts_(&l, "...");
  switch (err) {
  case PALLOC_OPT_OK: puts_(&l, " is accepted"); break;
  case PALLOC_OPT_TOO_LONG:
    puts_(&l, " is longer than ");
    puti(&l, o->hi);
    puts_(&l, " bytes");
    break;
  case PALLOC_OPT_UNCATCHABLE:
  case PALLOC_OPT_FAULT:
    puts_(&l, ": ");
    puts_(&l, signame(palloc_parse_signal(s)));
    puts_(&l, err == PALLOC_OPT_UNCATCHABLE ? " cannot be caught"
                                            : " reports faults and aborts, it cannot ask for "
                                              "snapshots (use USR1, USR2...)");
    break;
  case PALLOC_OPT_SYNTAX:
  case PALLOC_OPT_RANGE:
    switch (o->kind) {
    case PALLOC_KIND_SIZE:
      if (err == PALLOC_OPT_RANGE) {
        puts_(&l, " is not a size in [");
        puti(&l, o->lo);
        puts_(&l, ", ");
        puti(&l, o->hi);
        puts_(&l, "]");
      } else {
        puts_(&l, " is not a size (digits and B, KiB, MiB, GiB, TiB, or K, M, G, T");
        puts_(&l, o->off_value ? "; or off)" : ")");
      }
      break;
    case PALLOC_KIND_COUNT:
      puts_(&l, " is not a whole number in [");
      puti(&l, o->lo);
      puts_(&l, ", ");
      puti(&l, o->hi);
      puts_(&l, "]");
      break;
    case PALLOC_KIND_SEED: puts_(&l, " is not a number (decimal, 0x hex or 0 octal)"); break;
    case PALLOC_KIND_SECONDS: puts_(&l, " is not a number of seconds (60, 0.5) of at least 0.001"); break;
    case PALLOC_KIND_BOOL: puts_(&l, " is not 1/on or 0/off"); break;
    case PALLOC_KIND_PERCENT:
      puts_(&l, " is not a percent up to ");
      puti(&l, o->hi);
      puts_(&l, ", or off");
      break;
    case PALLOC_KIND_SIGNAL: puts_(&l, " is not a signal name (USR2, SIGUSR2, 12, RTMIN+2)"); break;
    case PALLOC_KIND_ENUM: {
      puts_(&l, " is not ");
      int n = 0, listed = 0;
      for (const palloc_option_word_t *w = o->words; w->word; w++) n += !w->alias;
      for (const palloc_option_word_t *w = o->words; w->word; w++) {
        if (w->alias) continue;
        if (listed) puts_(&l, listed + 1 == n ? " or " : ", ");
        puts_(&l, "'");
        puts_(&l, w->word);
        puts_(&l, "'");
        listed++;
      }
      break;
    }
    case PALLOC_KIND_FACTOR:
      puts_(&l, err == PALLOC_OPT_RANGE ? " is not a factor in [1.001, 1000]"
                                        : " is not a factor (1.1, 2, 1.25; or off)");
      break;
    case PALLOC_KIND_DURATION: puts_(&l, " is not a duration (digits and ns, us, ms or s)"); break;
    case PALLOC_KIND_PATH: break;
    }
    break;
  }
  puts_(&l, "; ");
  puts_(&l, o->on_bad);
  l.p[l.n++] = '\n'; /* put keeps one byte free */
  return l.n;
}

/* ---- the environment, once ------------------------------------------------------------------ */
static _Atomic int64_t values[PALLOC_OPT_COUNT];
static atomic_bool is_set[PALLOC_OPT_COUNT];
static atomic_int state; /* 0 unread, 1 being read, 2 read */
static __thread bool reading __attribute__((tls_model("initial-exec")));

void palloc_options_load(void) {
  int expected = 0;
  if (atomic_load_explicit(&state, memory_order_acquire) == 2) return;
  if (!atomic_compare_exchange_strong(&state, &expected, 1)) {
    if (reading) return; /* a signal handler inside the reading: the accessors give defaults */
    while (atomic_load_explicit(&state, memory_order_acquire) != 2) sched_yield();
    return;
  }
  reading = true;
  for (int i = 0; i < PALLOC_OPT_COUNT; i++) {
    const palloc_option_desc_t *o = &palloc_options[i];
    int64_t v = o->dflt;
    const char *s = getenv(o->name);
    if (s != NULL && *s != 0) {
      palloc_option_err_t err = palloc_option_parse((palloc_option_t)i, s, &v);
      if (err == PALLOC_OPT_OK) {
        if (o->kind == PALLOC_KIND_PATH) memcpy(o->buf, s, (size_t)v + 1);
        atomic_store_explicit(&is_set[i], true, memory_order_relaxed);
      } else {
        char line[384];
        size_t n = palloc_option_message((palloc_option_t)i, s, err, line, sizeof line);
        ssize_t w = write(2, line, n); /* one line in one write: lines of processes never mix */
        (void)w;
        v = o->dflt;
      }
    }
    atomic_store_explicit(&values[i], v, memory_order_relaxed);
  }
  reading = false;
  atomic_store_explicit(&state, 2, memory_order_release);
}

static bool loaded(void) {
  if (atomic_load_explicit(&state, memory_order_acquire) != 2) palloc_options_load();
  return atomic_load_explicit(&state, memory_order_acquire) == 2;
}

int64_t palloc_option_int(palloc_option_t id) {
  return loaded() ? atomic_load_explicit(&values[id], memory_order_relaxed)
                  : palloc_options[id].dflt;
}

bool palloc_option_is_set(palloc_option_t id) {
  return loaded() && atomic_load_explicit(&is_set[id], memory_order_relaxed);
}

const char *palloc_option_str(palloc_option_t id) {
  const palloc_option_desc_t *o = &palloc_options[id];
  return o->kind == PALLOC_KIND_PATH && palloc_option_is_set(id) ? o->buf : NULL;
}
