/* cli.h - what the subcommands of the `palloc` tool share.
 *
 * Every subcommand is one file (cmd_*.c) with an entry point `int cmd_X(int argc, char **argv)`
 * returning the process exit status: 0 success, 1 a failed check or bad input (a profile that
 * cannot be read), 2 a usage error. Errors are one line on stderr, "palloc: FILE: problem", and
 * nothing here aborts: a bad profile is data, not a bug.
 *
 * view.c turns a validated profile (proto/) into what the reports need: the selected sample
 * value, and for every sample its stack as dense node ids, leaf first, where a node is one
 * function name exactly as upstream pprof names it at its default "functions" granularity (so
 * `palloc top` and `pprof -top` agree row for row).
 */
#ifndef PALLOC_CLI_H
#define PALLOC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <regex.h>
#include <stdio.h>
#include "palloc_proto.h"

#define EXIT_CHECK 1
#define EXIT_USAGE 2

/* How a profile is read: pprof's granularities and name filters, and palloc's naming. */
enum { VIEW_FUNCTIONS, VIEW_FILES, VIEW_LINES, VIEW_ADDRESSES };
typedef struct {
  const char *sample_index;   /* NULL = pprof's default */
  int gran;                   /* VIEW_FUNCTIONS (default) ... */
  bool no_demangle;           /* names as the profile has them (still unversioned) */
  bool group_unnamed;         /* unnamed frames as "[lib.so]" (pprof) instead of lib.so+0x... */
  bool trim_wrappers;         /* --hide view_wrappers_re too */
  const char *focus, *ignore, *hide, *show; /* POSIX extended regular expressions */
} view_opts_t;

typedef struct {
  const char *path;
  view_opts_t opts;
  palloc_pb_profile_t *p;
  int vi;                 /* selected sample_type index */
  const char *type, *unit;
  int64_t total;          /* sum over samples of |value| (pprof's computeTotal) */
  /* nodes: one per distinct printable function name */
  char **names;           /* names[node], owned */
  uint32_t nnodes;
  /* frames of location i (index into p->location): frames[fstart[i] .. fstart[i+1]), innermost first */
  uint32_t *frames, *fstart;
  /* location id -> index, open addressing: lkeys[slot] = id (0 empty), lvals[slot] = index */
  uint64_t *lkeys;
  uint32_t *lvals;
  size_t lcap;
  size_t maxdepth;        /* upper bound of nodes in one sample's stack */
  /* per function index: display name (demangled, unversioned) and cleaned file name */
  char **fnames, **ffiles;
  /* per frame (same index as frames): function index (UINT32_MAX: none) and line number */
  uint32_t *ffunc;
  int64_t *fline;
  size_t nframes;
  size_t nsample_all;     /* p->n_sample before filtering (0: not filtered) */
  /* sampling error: the objects and bytes values of the selected type's pair (alloc_* or
   * inuse_*), -1 if the profile has no such pair or is exact; rate = the sampling period */
  int err_cvi, err_bvi;
  double rate;
} view_t;

/* --trim-wrappers: the allocation wrappers hidden (a --hide expression, also valid for pprof). */
extern const char view_wrappers_re[];
int view_open_opts(view_t *v, const char *path, const view_opts_t *o);
int view_from_opts(view_t *v, palloc_pb_profile_t *p, const char *path, const view_opts_t *o);
/* The options every report shares, for getopt_long tables, and their handler: returns -1 if c is
 * not one of them, else 0 or the usage exit status. */
enum { VOPT_FIRST = 0x1000, VOPT_FUNCTIONS = VOPT_FIRST, VOPT_FILES, VOPT_LINES, VOPT_ADDRESSES,
       VOPT_FOCUS, VOPT_IGNORE, VOPT_HIDE, VOPT_SHOW, VOPT_NO_DEMANGLE, VOPT_GROUP_UNNAMED,
       VOPT_TRIM_WRAPPERS, VOPT_LAST };
#define VIEW_LONG_OPTIONS \
  {"functions", no_argument, 0, VOPT_FUNCTIONS}, {"files", no_argument, 0, VOPT_FILES}, \
  {"lines", no_argument, 0, VOPT_LINES}, {"addresses", no_argument, 0, VOPT_ADDRESSES}, \
  {"focus", required_argument, 0, VOPT_FOCUS}, {"ignore", required_argument, 0, VOPT_IGNORE}, \
  {"hide", required_argument, 0, VOPT_HIDE}, {"show", required_argument, 0, VOPT_SHOW}, \
  {"no-demangle", no_argument, 0, VOPT_NO_DEMANGLE}, \
  {"group-unnamed", no_argument, 0, VOPT_GROUP_UNNAMED}, \
  {"trim-wrappers", no_argument, 0, VOPT_TRIM_WRAPPERS}
int view_option(view_opts_t *o, const char *cmd, int c, const char *arg);
/* The REGEX PROFILE operands of `palloc CMD` (peek, list) at argv[optind]: compiles the regex
 * into *rx and opens the profile into *v; 0, or an exit status after one message (then neither
 * is left to free). */
int view_open_regex(view_t *v, regex_t *rx, const char *cmd, int argc, char **argv,
                    const view_opts_t *o);
/* The help text of those options. */
extern const char view_options_help[];
/* Prints a command's help, with view_options_help in place of "@VIEW@". */
void print_help(const char *help);
/* How many samples were actually taken behind sample s (the scaled objects count times the
 * probability 1 - exp(-avg/rate) that an object of the average size is sampled; profiling.md
 * section 3 inverted). The standard error of a row's value v is v/sqrt(sum of these): a Poisson
 * count. Only when v->err_cvi >= 0. */
double view_raw_samples(const view_t *v, const Perftools__Profiles__Sample *s);
/* "Active filters:" lines, as pprof prints them in its header. */
void view_print_filters(const view_t *v, FILE *out);

/* Loads path, checks that it is a heap profile and selects sample_index (NULL = pprof's default:
 * default_sample_type, else the last type). On failure prints the one-line error and returns the
 * exit status (1); 0 on success. */
int view_open(view_t *v, const char *path, const char *sample_index);
/* Opens the single PROFILE operand left after option parsing (argv[optind]); returns 0, or the
 * exit code after a usage error (none or several operands) or a bad profile. */
int view_open_operand(view_t *v, const char *cmd, int argc, char **argv, const char *sample_index);
/* Where view_from's one-line errors go (NULL = stderr; the fuzzer silences them). */
extern FILE *view_diag;
/* The same for a profile already decoded and validated by proto/; takes ownership of p. */
int view_from(view_t *v, palloc_pb_profile_t *p, const char *path, const char *sample_index);
void view_close(view_t *v);

/* The stack of sample s as node ids, leaf first; out must hold v->maxdepth entries. If inl is
 * not NULL, inl[k] tells whether frame k was inlined into the next one (not the last line of
 * its location). */
size_t view_stack(const view_t *v, const Perftools__Profiles__Sample *s, uint32_t *out,
                  uint8_t *inl);

/* Flat and cum per node (arrays of v->nnodes), as pprof's graph computes them. */
void view_flat_cum(const view_t *v, int64_t *flat, int64_t *cum);
/* The profile header shared by top and diff: File, Type, Time, sampling rate. */
void view_print_header(const view_t *v, FILE *out);

static inline int64_t view_value(const view_t *v, const Perftools__Profiles__Sample *s) {
  return s->value[v->vi];
}

/* ---- fetch.c: profiles from a live process's endpoint (PALLOC_HTTP, Go's net/http/pprof) -- */
extern long fetch_seconds;  /* --seconds N: a delta profile over the next N seconds; 0 none */
extern long fetch_timeout;  /* --timeout N: the fetch's deadline in seconds; 0: --seconds + 60 */
bool fetch_is_url(const char *s);
/* GETs url (http:// only); the body in *data (xmalloc'd), or -1 with the reason in err. */
int fetch_url(const char *url, uint8_t **data, size_t *len, char *err, size_t errlen);
/* Takes --seconds N out of argv (main.c, before the subcommand parses its options); 0, or the
 * usage error's exit status. */
int fetch_take_seconds(int *argc, char **argv);

/* ---- units.c: pprof's value formatting ------------------------------------------------- */
typedef struct {
  double factor;          /* divide by this */
  const char *suffix;     /* "kB", "MB", "" ... */
} unit_t;

bool unit_is_bytes(const char *unit);
/* A memory unit by name (B, kB, MB, GB, TB, PB, case-insensitive); false if unknown. */
bool unit_named(const char *name, unit_t *out);
/* pprof's selectOutputUnit("minimum"): one unit for the whole table, from the smallest nonzero
 * row value and the total. */
unit_t unit_select(const char *sample_unit, int64_t min_value, int64_t total);
/* Formats v in unit u ("%.2f", ".00" trimmed, "0" for zero) into buf. */
const char *unit_format(char *buf, size_t n, int64_t v, unit_t u);
/* The best unit for one value (pprof's "auto"). */
const char *unit_auto(char *buf, size_t n, int64_t v, const char *sample_unit);
/* pprof's Percentage: "  100%", "%5.2f%%", or "%5.2g%%" under 1%. */
const char *percent(char *buf, size_t n, int64_t v, int64_t total);
/* libpalloc's size: "512", "64k", "1MiB", "2GiB" (Go's units, also K/M/G/T); -1 if not. */
int64_t parse_bytes(const char *s);

/* ---- tree.c: the call tree (root first) of flame and folded -------------------------- */
typedef struct {
  uint32_t name;          /* node id of the view; UINT32_MAX for the root */
  uint32_t parent;
  uint32_t first_child, next_sibling; /* UINT32_MAX = none */
  int64_t total, self;
} tnode_t;

typedef struct {
  tnode_t *n;
  size_t len, cap;
  uint32_t *slots;        /* hash (parent, name) -> index+1 */
  size_t nslots;
} tree_t;

/* Builds the tree of v's selected value; negative sample values count as their magnitude. */
int tree_build(tree_t *t, const view_t *v);
void tree_free(tree_t *t);
/* The child of parent called name (a node id of the tree's view), or UINT32_MAX. */
uint32_t tree_find(const tree_t *t, uint32_t parent, uint32_t name);
/* The children of node k sorted by name into out (t->len entries suffice); returns the count. */
size_t tree_sorted_children(const tree_t *t, const view_t *v, uint32_t k, uint32_t *out);

/* ---- helpers ---------------------------------------------------------------------------- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* "palloc CMD: message" on stderr, returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns true if argv has -h/--help before "--" (help is printed by the caller). */
bool wants_help(int argc, char **argv);

/* Checks a --sample-index value; prints the usage error if unknown. */
bool parse_sample_index(const char *cmd, const char *s);

int cmd_run(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_peek(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_flame(int argc, char **argv);
int cmd_folded(int argc, char **argv);
int cmd_symbolize(int argc, char **argv);
int cmd_options(int argc, char **argv);
/* `palloc top --lifetimes | --temporaries`: a lifetime profile's tables (cmd_lifetimes.c). */
int cmd_lifetimes(int argc, char **argv);

#endif
