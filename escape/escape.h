/* escape.h - the internal model of palloc-escape, shared by its files.
 *
 * The analysis is Go's (cmd/compile/internal/escape), cut down to what C needs:
 * flow- and field-insensitive, one node per local variable, per allocation call, per address-of
 * of a local and per anonymous value (call argument, call result, merged value). An edge
 * "from -> to" means the pointer value held by `from` may be copied into `to`. A sink attached to
 * a node means that any pointer reaching the node leaves the function (returned, stored through a
 * pointer or to a global, cast to an integer, given to an unknown callee, ...).
 *
 * Loads through pointers (`*p`, `p->f`, `p[i]`) all yield one node per function, LOADED. Stores
 * through pointers are always sinks, so heap objects never hold tracked pointers; the only
 * memory that can hold one is a local whose address is taken, so each address-taken local x
 * gets an edge x -> LOADED. When &x itself escapes, x's content does too (the solver adds a
 * sink on x). This keeps the model sound without Go's dereference levels.
 *
 * Interprocedural: each function defined in the program (the analyzed files and the project
 * headers they include) gets a summary per parameter (escapes / flows to the result / is freed /
 * its content leaks), computed bottom-up over the whole program and iterated to a fixpoint, so
 * recursion, also across files, is handled. Calls of such functions are recorded (pe_call, one
 * pe_callarg per argument node) and resolved at solve time: by index within the file, by name
 * across files (external linkage); a name no file defines is an unknown callee.
 *
 * After the fixpoint: a function that returns one fresh allocation and nothing else is an
 * allocation wrapper, and the values of its calls become allocation nodes of the callers, sized
 * by a pe_term of the callee's parameters; one that only frees its parameter is a free().
 */
#ifndef PALLOC_ESCAPE_H
#define PALLOC_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <clang-c/Index.h>

/* ---- growable arrays -------------------------------------------------------------------- */
#define PE_PUSH(arr, n, cap, val)                                                     \
  do {                                                                                \
    if ((n) == (cap)) {                                                               \
      (cap) = (cap) ? (cap) * 2 : 8;                                                  \
      (arr) = pe_xrealloc((arr), (size_t)(cap) * sizeof *(arr));                      \
    }                                                                                 \
    (arr)[(n)++] = (val);                                                             \
  } while (0)

void *pe_xrealloc(void *p, size_t n);
char *pe_xstrdup(const char *s);
char *pe_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *pe_intern(const char *s); /* one copy of each string, kept to the end */
/* The directory palloc-escape started in: libclang's -working-directory changes the process's
 * current directory while it parses (LLVM's real file system chdirs), so getcwd() is not it. */
extern char pe_start_dir[4096];

/* ---- options ---------------------------------------------------------------------------- */
typedef struct {
  int m;                  /* -m level: 1 verdicts, 2 verdicts and flows */
  long long max_stack;    /* --max-stack */
  bool json;
  const char *profile;
  char **allocs; int nallocs;   /* --alloc */
  char **frees;  int nfrees;    /* --free */
  char **reallocs; int nreallocs; /* --realloc */
  const char *resource_dir;
  const char *cache;      /* --cache DIR: per-file graphs (cache.c), NULL: none */
  int top;                /* --top N: escaping hot sites listed with --profile */
  const char *lifetimes;  /* --lifetimes FILE: a lifetime profile (PALLOC_LIFETIME_PROFILE) */
} pe_opts;

/* ---- the graph -------------------------------------------------------------------------- */
enum pe_node_kind { N_VAR, N_ALLOC, N_ADDR, N_LOADED, N_TEMP };

typedef struct {
  unsigned line, col, off; /* expansion location in the file of the enclosing function */
} pe_loc;

/* A bound on a size: max(k * the values of the enclosing function's parameters p[0..np) + add,
 * lo). ok false: not of that form (unknown). An allocation's size inside a wrapper, or an
 * argument of a call, is kept as a term so that a wrapper's callers can compute their own
 * sizes (n > 0 ? n : 8 is bounded by max(n, 8); two allocations returned, by the larger). */
typedef struct {
  bool ok;
  int np;
  int p[4];
  long long k, add, lo;
} pe_term;

typedef struct {
  enum pe_node_kind kind;
  char *name;         /* variable name, allocation text ("malloc(64)"), "&x", NULL for temps */
  pe_loc loc;
  int var;            /* N_ADDR: the variable node whose address this is */
  int param;          /* N_VAR: parameter index, or -1 */
  bool addr_taken;    /* N_VAR: some &x exists (edge to LOADED added) */
  bool carries;       /* N_VAR parameter: its type can hold a pointer */
  bool mixed;         /* may also hold pointers we do not track (parameters, loads, call
                         results, untracked assignments): a free() reached from here may free
                         something else than our allocation */
  /* N_ALLOC */
  int size_known;     /* 1 constant, 0 not constant */
  long long size;
  unsigned loop_lo, loop_hi; /* iteration region (offsets) of the innermost loop, hi=0: none */
  pe_term term;       /* N_ALLOC: size as a product of the function's parameters */
  bool resized;       /* N_ALLOC: the value of a realloc (or of a realloc wrapper): an allocation
                         site for the profile, never a stack candidate */
  int site;           /* N_ALLOC made from a wrapper call: the index of the call, else -1 */
} pe_node;

enum pe_sink_kind {
  S_RETURN,        /* returned */
  S_GLOBAL,        /* stored to a global, static or thread-local */
  S_THROUGH,       /* stored through a pointer */
  S_OUTPARAM,      /* stored through a pointer parameter (dangling for &local) */
  S_INTCAST,       /* cast to an integer */
  S_UNKNOWN,       /* passed to an unknown function, or to inline asm */
  S_INDIRECT,      /* passed to an indirect call */
  S_CAPTURE,       /* captured by a known libc function */
  S_REALLOC,       /* realloc'd */
  S_CALLEE_FREES,  /* a callee frees it */
  S_CALLEE_ESC,    /* a callee lets it escape */
  S_CONTENT,       /* stored in a local whose address escapes */
  S_DEREF,         /* not an escape: what the pointer points to leaks (memcpy source, ...) */
  S_FREE,          /* not an escape: freed here (free of the allocation's own pointer) */
};

typedef struct {
  int node;
  enum pe_sink_kind kind;
  char *text;      /* the reason, e.g. "stored to global g" */
  bool dangling;   /* counts for the &local report (returned, global, out-parameter) */
  pe_loc loc;
} pe_sink;

typedef struct {
  int from, to;
  pe_loc loc;
  bool weak;       /* only a may-flow of the coarse model (into LOADED, or a callee's result
                      that is its parameter only through LOADED): escapes follow it, the
                      &local report (which must not cry wolf) does not */
} pe_edge;

/* A call to a function that is not in the libc table: one defined in the translation unit
 * (callee >= 0, its index there) or an external one, known by name (callee = -1 - index in
 * the function's ext[]), resolved against the other units of the program before solving
 * (target), and unknown if no unit defines it. */
#define PE_UNKNOWN INT32_MIN
typedef struct {
  int callee;
  int target;      /* after linking: index into the program's functions, or PE_UNKNOWN */
  int result;      /* node holding the call's value (mixed N_TEMP), or -1 */
  int nargs;
  pe_term *args;   /* each argument as a size term of the caller's parameters */
  char *text;      /* source text, "xmalloc(64)" */
  unsigned loop_lo, loop_hi;
  pe_loc loc;
} pe_call;

typedef struct {   /* one argument of a pe_call */
  int call;        /* index into the function's calls */
  int param;       /* parameter index */
  int arg;         /* node holding the argument value */
  pe_loc loc;
} pe_callarg;

/* summary flags of a parameter */
enum { P_ESC = 1, P_RET = 2, P_FREE = 4, P_CONTENT = 8, P_DANGLE = 16, P_SRET = 32 };

typedef struct {
  char *name;
  const char *file;   /* where it is defined, as printed (owned by the unit) */
  pe_loc loc;
  bool external;      /* external linkage: calls from other units resolve to it */
  bool analyzed;      /* body walked completely */
  bool calls_setjmp;
  bool recursive;
  pe_node *nodes; int nnodes, capnodes;
  pe_edge *edges; int nedges, capedges;
  pe_sink *sinks; int nsinks, capsinks;
  pe_call *calls; int ncalls, capcalls;
  pe_callarg *cargs; int ncargs, capcargs;
  char **ext; int next, capext;            /* names of external callees */
  int *callees; int ncallees, capcallees;  /* call graph (function indexes, repeats allowed) */
  int loaded;                              /* the LOADED node */
  int other;                               /* OTHER: any untracked non-null pointer value */
  int nparams;
  int *param_node;
  unsigned *psum;     /* per parameter, P_* */
  char **preason;     /* per parameter, why it escapes (static string owned by a sink) */
  /* allocation wrapper (solve.c): returns a fresh allocation of size wterm (a term of its
   * parameters), and does nothing else with it that outlives the call */
  bool wrapper;
  pe_term wterm;
  int passthru;       /* returns its parameter passthru and nothing else, or -1 */
  bool wresized;      /* a wrapper of realloc: what it returns was resized */
  int freeparam;      /* frees its parameter freeparam and does nothing else with it, -1 not
                         (yet), -2 never (it was and stopped being: kept so the fixpoint ends) */
  unsigned backgoto_lo[64], backgoto_hi[64]; int nbackgoto;
} pe_func;

typedef struct {
  const char *path;   /* as the user named it: used in the output */
  const char **files; int nfiles, capfiles; /* printed names of the headers its functions are
                                               in (interned: records point to them) */
  bool report;        /* its verdicts are printed (not only used for the summaries) */
  pe_func *funcs; int nfuncs, capfuncs;
} pe_unit;

/* call.c: size terms */
pe_term pe_term_const(long long c);
pe_term pe_term_mul(pe_term a, pe_term b);
pe_term pe_term_add(pe_term a, pe_term b);
pe_term pe_term_max(pe_term a, pe_term b); /* a bound on either */

/* ---- output records --------------------------------------------------------------------- */
enum pe_rec_kind { R_ALLOC, R_ADDR, R_PARAM, R_FLOW };

typedef struct {
  const char *file;
  unsigned line, col;
  int seq;               /* keeps flow lines after their verdict */
  enum pe_rec_kind kind;
  bool candidate;        /* R_ALLOC: does not escape */
  char *expr;            /* allocation text, "&x" or parameter name */
  char *msg;             /* the whole message after "file:line:col: " */
  char *reason;          /* R_ALLOC escaping: why */
  char *func;            /* enclosing function */
  long long size;        /* R_ALLOC: constant size or -1 */
  int owner;             /* R_FLOW: seq of the verdict it explains */
  int unit;              /* R_ALLOC, R_ADDR: the translation unit that gave it */
  bool inner;            /* R_ALLOC: the allocation an allocation wrapper returns */
  /* filled by the profile join */
  long long alloc_objects, alloc_space;
  bool sampled;
  /* filled by the lifetime profile's join (--lifetimes) */
  long long freed_objects, lifetime_ns, temp_objects;
  bool lived;
} pe_rec;

typedef struct {
  pe_rec *v; int n, cap;
  int seq;
} pe_recs;

/* ---- entry points of each file ---------------------------------------------------------- */
/* parse.c: parses one file; returns NULL (message on stderr) if it does not compile. */
CXTranslationUnit pe_parse(CXIndex idx, const char *file, const char *dir, char **args, int nargs,
                           const pe_opts *o);
/* walk.c: builds the graph of every function defined in the main file and in the project's
 * headers it includes (not system headers). dir: the compile command's directory, for the
 * names of headers. 0 ok, -1 on failure. */
int pe_walk_unit(CXTranslationUnit tu, pe_unit *u, const char *dir, const pe_opts *o);
/* solve.c: links the units' external calls, computes summaries to a fixpoint over all of
 * them, then appends the verdicts of the units to report to recs. */
void pe_solve_program(pe_unit *units, int nunits, const pe_opts *o, pe_recs *recs);
void pe_unit_free(pe_unit *u);
/* cache.c: a unit's graph saved under a key of its file's content, its headers' content and
 * its flags. pe_cache_load returns 0 and fills u if a valid entry exists. */
int pe_cache_load(const pe_opts *o, const char *file, const char *dir, char **args, int nargs,
                  pe_unit *u);
void pe_cache_store(const pe_opts *o, const char *file, const char *dir, char **args, int nargs,
                    CXTranslationUnit tu, const pe_unit *u);
/* libc.c: what a known callee does with each argument. Returns NULL if unknown.
 * One char per argument, the last one repeats for variadic arguments:
 *   s safe (read/write through it), r safe and returned (derived pointer), c captured,
 *   f freed, R realloc'd, C source of a copy (its content leaks), D its content is realloc'd
 *   (getline's *lineptr), e stored through the next argument (strtol's endptr). */
const char *pe_libc_effects(const char *name);
bool pe_is_setjmp(const char *name);
bool pe_libc_known_builtin(const char *name);
/* report.c */
void pe_rec_add(pe_recs *r, pe_rec rec);
void pe_recs_sort(pe_recs *r);
/* One verdict per location and expression when several units report the same header line:
 * the escaping one wins (a candidate must be one in every unit). Expects sorted records. */
void pe_recs_merge(pe_recs *r);
/* human units: "1.5 MiB" */
void pe_human_bytes(long long n, char out[32]);
void pe_recs_print(const pe_recs *r, const pe_opts *o, FILE *out);
/* profile.c: joins allocation records with a heap profile; prints the ranking. -1 on error. */
int pe_profile_join(pe_recs *r, const pe_opts *o, FILE *out);

#endif
