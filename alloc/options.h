/* options.h - every PALLOC_* variable libpalloc reads, gcsim's included: one table.
 *
 * palloc_options[] holds each variable's name, kind, default, bounds, and the help the README's
 * table is generated from (`palloc options --markdown`; tests/alloc/check_options.py compares
 * the two). The environment is parsed once, at palloc's initialization (inside the process's
 * first malloc, or at the first accessor call in a program that never calls palloc's malloc):
 * getenv and hand-written parsing only, no stdio, no allocation, no locale. A bad value prints
 * one "palloc:" line and the default stays.
 *
 * gcsim reads its variables through the accessors below: the table is alloc's, gcsim depends
 * on alloc and never the other way round.
 *
 * Self-contained (no internal.h): tools/palloc compiles this file too, for `palloc options` and
 * to check `palloc run --rate` with the library's own rules.
 */
#ifndef PALLOC_OPTIONS_H
#define PALLOC_OPTIONS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum palloc_option_e {
  PALLOC_OPT_SAMPLE_RATE,
  PALLOC_OPT_PROFILE,
  PALLOC_OPT_PROFILE_SIGNAL,
  PALLOC_OPT_PROFILE_INTERVAL,
  PALLOC_OPT_STACK_DEPTH,
  PALLOC_OPT_UNWIND,
  PALLOC_OPT_SYMBOLIZE,
  PALLOC_OPT_DEBUG_DIRS,
  PALLOC_OPT_SEED,
  PALLOC_OPT_TCACHE,
  PALLOC_OPT_GOGC,          /* gcsim from here on */
  PALLOC_OPT_MEMLIMIT,
  PALLOC_OPT_TRACE,
  PALLOC_OPT_TRACE_FILE,
  PALLOC_OPT_TRACE_MARKRATE,
  PALLOC_OPT_PEAK_PROFILE,  /* the peak heap, lifetimes and the leak gate (peak.c, ...) */
  PALLOC_OPT_PEAK_GROWTH,
  PALLOC_OPT_LIFETIMES,
  PALLOC_OPT_LIFETIME_PROFILE,
  PALLOC_OPT_TEMP_THRESHOLD,
  PALLOC_OPT_LEAK_CHECK,
  PALLOC_OPT_LEAK_SUPPRESSIONS,
  PALLOC_OPT_HTTP,          /* http.c */
  PALLOC_OPT_COUNT
} palloc_option_t;

/* PALLOC_TRACE's values (palloc_option_int(PALLOC_OPT_TRACE)), declared with the table that
 * parses them; gcsim reads them. */
enum { PALLOC_TRACE_OFF = 0, PALLOC_TRACE_ON = 1, PALLOC_TRACE_LEGACY = 2 };

/* The leak gate's exit status (leak.c): LeakSanitizer's default, so that CI scripts that know
 * LSan's code know palloc's. */
#define PALLOC_LEAK_EXIT_CODE 23
#define PALLOC_LEAK_EXIT_TEXT "23"

/* PALLOC_PROFILE's longest value, with its NUL (writer.c's path buffers) */
#define PALLOC_PROFILE_PATH_MAX 1024

typedef enum palloc_option_kind_e {
  PALLOC_KIND_SIZE,    /* bytes: palloc_parse_size; with `off_value` != 0 also "off"     */
  PALLOC_KIND_COUNT,   /* a whole decimal number                                          */
  PALLOC_KIND_SEED,    /* a 64-bit number: decimal, 0x hex or 0 octal (strtoull's base 0) */
  PALLOC_KIND_ENUM,    /* one of `words` (any case)                                       */
  PALLOC_KIND_BOOL,    /* 1/on or 0/off (any case)                                        */
  PALLOC_KIND_PERCENT, /* Go's GOGC: a whole number, "off" or a negative number = -1      */
  PALLOC_KIND_SIGNAL,  /* a signal that may ask for something: not KILL, STOP or a fault  */
  PALLOC_KIND_PATH,    /* a path of at most `hi` bytes; %p expanded when it is used       */
  PALLOC_KIND_FACTOR,  /* a decimal like 1.1 (3 digits after the point at most), kept in
                        * thousandths (1100); with `off_value` != 0 also "off"              */
  PALLOC_KIND_DURATION, /* digits and ns, us, ms or s (exactly so), kept in nanoseconds     */
  PALLOC_KIND_SECONDS, /* seconds, decimals allowed ("0.5"): the value is in milliseconds  */
} palloc_option_kind_t;

typedef struct palloc_option_word_s {
  const char *word;
  int64_t value;
  bool alias;          /* accepted, not listed (an old name) */
} palloc_option_word_t;

typedef struct palloc_option_desc_s {
  const char *name;
  palloc_option_kind_t kind;
  int64_t dflt;                      /* the value when unset or bad                        */
  int64_t lo, hi;                    /* bounds (numbers); hi = longest path (PATH)         */
  int64_t off_value;                 /* SIZE: what "off" means, or 0 if "off" is refused   */
  const palloc_option_word_t *words; /* ENUM: ended by {NULL}                              */
  char *buf;                         /* PATH: where the value is kept (hi + 1 bytes)        */
  const char *dflt_text;             /* the README's Default column (markdown)             */
  const char *on_bad;                /* what a bad value leaves: "using 64"                */
  const char *help;                  /* the README's Meaning column (markdown)             */
} palloc_option_desc_t;

extern const palloc_option_desc_t palloc_options[PALLOC_OPT_COUNT];
/* The rules every value follows (markdown): the paragraph under the README's table. */
extern const char palloc_options_rules[];

/* Why a value is refused (0: it is not). */
typedef enum palloc_option_err_e {
  PALLOC_OPT_OK = 0,
  PALLOC_OPT_SYNTAX,       /* not of the kind's form                                   */
  PALLOC_OPT_RANGE,        /* a number outside [lo, hi]                                 */
  PALLOC_OPT_TOO_LONG,     /* a path longer than hi                                     */
  PALLOC_OPT_UNCATCHABLE,  /* KILL, STOP                                                */
  PALLOC_OPT_FAULT,        /* SEGV, BUS, FPE, ILL, TRAP, ABRT                           */
} palloc_option_err_t;

/* Parses s as option id's kind; *out gets the value (PATH: its length). No side effect. */
palloc_option_err_t palloc_option_parse(palloc_option_t id, const char *s, int64_t *out);
/* "palloc: NAME=VALUE <why>; <on_bad>\n" into line (a long value is cut); returns its length. */
size_t palloc_option_message(palloc_option_t id, const char *s, palloc_option_err_t err,
                             char *line, size_t cap);

/* Reads the environment once (later calls return at once). Called by palloc_init; the
 * accessors call it too. Thread-safe; a signal handler that interrupts it on the same thread
 * sees the defaults. */
void palloc_options_load(void);

/* The value (the default if unset or bad). PATH: its length, 0 if unset. */
int64_t palloc_option_int(palloc_option_t id);
/* True when the environment gave a valid value. */
bool palloc_option_is_set(palloc_option_t id);
/* PATH: the value, or NULL when unset or bad. */
const char *palloc_option_str(palloc_option_t id);

/* The one size parser (Go's spelling, runtime/debug.SetMemoryLimit's): digits, then nothing or
 * B, KiB, MiB, GiB, TiB, exactly so; also K, M, G, T (either case), binary as in coreutils. No
 * sign, space, fraction, or KB/MB/GB/TB (decimal units elsewhere). -1 if s is not a size or
 * overflows int64. */
int64_t palloc_parse_size(const char *s);
/* "USR2", "SIGUSR2", "usr2", "12", "RTMIN+2" -> the number (KILL, SEGV... included), or -1. */
int palloc_parse_signal(const char *s);

#endif
