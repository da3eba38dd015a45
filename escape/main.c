/* main.c - palloc-escape's command line: which files, with which flags, and the exit status.
 *
 *   palloc-escape [options] FILE.c... [-- COMPILER FLAGS]
 *   palloc-escape -p BUILD_DIR [options] [FILE.c...]
 *
 * Files are parsed and walked one at a time (parse, walk, dispose): only their graphs are kept,
 * which are small next to libclang's ASTs. Then the whole program is solved at once (solve.c:
 * calls between files resolve to their summaries), and the verdict records are merged (a
 * header's line is reported once), sorted and printed. With -p DIR, every file of the
 * compilation database is walked for the summaries, and only the named files (all if none) are
 * reported. A graph is cached per file (cache.c) with -p or --cache, so a second run on an
 * unchanged tree does not parse. A file that fails is reported on stderr and the others go on;
 * the exit status is 1 if any failed.
 * PALLOC_ESCAPE_PARSE_ONLY=1 in the environment stops after parsing: the baseline for measuring
 * what the analysis itself costs.
 * The work runs on a thread with a large stack: deeply nested generated code recurses deeply
 * both in libclang's visitor and in walk.c (which also has a depth limit).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <clang-c/CXCompilationDatabase.h>
#include "escape.h"

#ifndef PE_RESOURCE_DIR
#define PE_RESOURCE_DIR NULL
#endif

static const char usage[] =
    "usage: palloc-escape [options] FILE.c... [-- COMPILER FLAGS]\n"
    "       palloc-escape -p BUILD_DIR [options] [FILE.c...]\n"
    "Reports, in the style of Go's -gcflags=-m, which heap allocations never leave their\n"
    "function (stack candidates) and which addresses of locals escape their frame.\n"
    "  -p DIR            take files and flags from DIR/compile_commands.json\n"
    "  -m, -m=2          -m=2 adds the flow that explains each verdict\n"
    "  --max-stack N     largest allocation proposed for the stack (default 4032 bytes)\n"
    "  --alloc NAME      NAME allocates like malloc (size: product of its arguments)\n"
    "  --free NAME       NAME frees its first argument like free\n"
    "  --realloc NAME    NAME reallocates its first argument like realloc\n"
    "                    (allocation wrappers defined in the analyzed files, and their free\n"
    "                    counterparts, are recognized without these)\n"
    "  --json            machine-readable output\n"
    "  --profile FILE    rank the candidates by a heap profile (pprof .pb.gz), then the\n"
    "                    escaping allocation sites that allocate the most, with their reason\n"
    "  --top N           escaping sites listed with --profile (default 10)\n"
    "  --lifetimes FILE  with --profile: join a lifetime profile (PALLOC_LIFETIME_PROFILE):\n"
    "                    mean lifetimes, temporaries, the shortest-lived hot sites first\n"
    "  --cache DIR       keep each file's analysis in DIR (default with -p:\n"
    "                    $XDG_CACHE_HOME/palloc-escape); --no-cache: none\n"
    "  --resource-dir D  clang resource directory (builtin headers)\n";

typedef struct {
  char *file;      /* as named (output) */
  char *dir;       /* working directory or NULL */
  char **args;     /* full argv, args[0] the compiler */
  int nargs;
  bool report;     /* its verdicts are printed */
  bool named;      /* named on the command line (not only found in the database) */
} job;

typedef struct {
  job *jobs; int njobs;
  pe_opts *o;
  pe_recs recs;
  int failed;
} work;

static bool has_ext(const char *f, const char *ext) {
  size_t n = strlen(f), m = strlen(ext);
  return n > m && strcmp(f + n - m, ext) == 0;
}

static void *run(void *arg) {
  work *w = arg;
  CXIndex idx = clang_createIndex(0, 0);
  bool progress = w->njobs >= 10;
  bool parse_only = getenv("PALLOC_ESCAPE_PARSE_ONLY") != NULL;
  pe_unit *units = calloc((size_t)w->njobs + 1, sizeof *units);
  int cached = 0;
  for (int i = 0; i < w->njobs; i++) {
    job *j = &w->jobs[i];
    pe_unit *u = &units[i];
    u->path = j->file;
    u->report = j->report;
    if (!parse_only && w->o->cache && pe_cache_load(w->o, j->file, j->dir, j->args, j->nargs, u) == 0) {
      cached++;
      continue;
    }
    if (progress) fprintf(stderr, "palloc-escape: [%d/%d] %s\n", i + 1, w->njobs, j->file);
    CXTranslationUnit tu = pe_parse(idx, j->file, j->dir, j->args, j->nargs, w->o);
    if (j->dir && pe_start_dir[0] && chdir(pe_start_dir) != 0) /* see pe_start_dir */
      fprintf(stderr, "palloc-escape: cannot return to %s\n", pe_start_dir);
    if (!tu) { w->failed++; continue; }
    if (parse_only) { clang_disposeTranslationUnit(tu); continue; }
    if (pe_walk_unit(tu, u, j->dir, w->o) != 0) w->failed++;
    else if (u->nfuncs == 0 && j->named) /* stb_ds.h alone: its bodies are under a macro */
      fprintf(stderr, "palloc-escape: %s: no function is defined in it or in the project headers "
              "it includes (a header-only library defines them under its implementation macro: "
              "name it after --, e.g. -DSTB_DS_IMPLEMENTATION)\n", j->file);
    else if (w->o->cache) pe_cache_store(w->o, j->file, j->dir, j->args, j->nargs, tu, u);
    clang_disposeTranslationUnit(tu);
  }
  if (progress && cached)
    fprintf(stderr, "palloc-escape: %d of %d file(s) unchanged (cache %s)\n", cached, w->njobs,
            w->o->cache);
  pe_solve_program(units, w->njobs, w->o, &w->recs);
  for (int i = 0; i < w->njobs; i++) pe_unit_free(&units[i]);
  free(units);
  clang_disposeIndex(idx);
  return NULL;
}

static job plain_job(const char *file, char **flags, int nflags) {
  job j = {.file = pe_xstrdup(file), .report = true, .named = true};
  j.args = malloc(sizeof *j.args * (size_t)(nflags + 2));
  j.args[j.nargs++] = "clang";
  for (int i = 0; i < nflags; i++) j.args[j.nargs++] = flags[i];
  j.args[j.nargs++] = j.file;
  return j;
}

static job db_job(CXCompileCommand cmd, const char *shown) {
  job j = {0};
  CXString d = clang_CompileCommand_getDirectory(cmd);
  j.dir = pe_xstrdup(clang_getCString(d));
  clang_disposeString(d);
  CXString f = clang_CompileCommand_getFilename(cmd);
  const char *fs = clang_getCString(f);
  if (shown) j.file = pe_xstrdup(shown);
  else if (fs[0] != '/' && j.dir[0]) j.file = pe_fmt("%s/%s", j.dir, fs); /* print it whole */
  else j.file = pe_xstrdup(fs);
  clang_disposeString(f);
  unsigned n = clang_CompileCommand_getNumArgs(cmd);
  j.args = malloc(sizeof *j.args * (n + 1));
  for (unsigned i = 0; i < n; i++) {
    CXString a = clang_CompileCommand_getArg(cmd, i);
    j.args[j.nargs++] = pe_xstrdup(clang_getCString(a));
    clang_disposeString(a);
  }
  return j;
}

/* -m, -m=1, -m1 are level 1; -m=2, -m2, -mm level 2 (Go's -m=2 and -m -m): optarg is what
 * follows -m in the same argument. 0 for anything else. */
static int m_level(const char *arg) {
  if (arg == NULL || strcmp(arg, "=1") == 0 || strcmp(arg, "1") == 0) return 1;
  if (strcmp(arg, "=2") == 0 || strcmp(arg, "2") == 0 || strcmp(arg, "m") == 0) return 2;
  return 0;
}

enum { OPT_JSON = 256, OPT_PROFILE, OPT_RESOURCE_DIR, OPT_MAX_STACK, OPT_ALLOC, OPT_FREE,
       OPT_REALLOC, OPT_CACHE, OPT_NO_CACHE, OPT_TOP, OPT_LIFETIMES };

static const struct option longopts[] = {
  {"help", no_argument, NULL, 'h'},
  {"json", no_argument, NULL, OPT_JSON},
  {"profile", required_argument, NULL, OPT_PROFILE},
  {"resource-dir", required_argument, NULL, OPT_RESOURCE_DIR},
  {"max-stack", required_argument, NULL, OPT_MAX_STACK},
  {"alloc", required_argument, NULL, OPT_ALLOC},
  {"free", required_argument, NULL, OPT_FREE},
  {"realloc", required_argument, NULL, OPT_REALLOC},
  {"cache", required_argument, NULL, OPT_CACHE},
  {"no-cache", no_argument, NULL, OPT_NO_CACHE},
  {"top", required_argument, NULL, OPT_TOP},
  {"lifetimes", required_argument, NULL, OPT_LIFETIMES},
  {NULL, 0, NULL, 0},
};

char pe_start_dir[4096];

/* A run is one process: the graphs and records live until exit, which releases them; the
 * leak checker of a sanitized build is told not to report that. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

int main(int argc, char **argv) {
  if (!getcwd(pe_start_dir, sizeof pe_start_dir)) pe_start_dir[0] = 0;
  pe_opts o = {.m = 1, .max_stack = 4032, .resource_dir = PE_RESOURCE_DIR, .top = 10};
  const char *dbdir = NULL;
  bool no_cache = false;
  /* Options end at "--": what follows is the compiler's. getopt_long sees only what precedes it
   * (it would otherwise mix the compiler's flags with the files it permutes to its end). */
  int dashdash = 1;
  while (dashdash < argc && strcmp(argv[dashdash], "--") != 0) dashdash++;
  opterr = 0; /* our messages, with the usage (and ':' first: a missing value is ':') */
  int c;
  while ((c = getopt_long(dashdash, argv, ":hm::p:", longopts, NULL)) != -1) {
    switch (c) {
    case 'h':
      fputs(usage, stdout);
      return 0;
    case 'm':
      if ((o.m = m_level(optarg)) == 0) {
        fprintf(stderr, "palloc-escape: unknown option '%s'\n%s", argv[optind - 1], usage);
        return 2;
      }
      break;
    case 'p': dbdir = optarg[0] == '=' ? optarg + 1 : optarg; break; /* -p DIR, -pDIR, -p=DIR */
    case OPT_JSON: o.json = true; break;
    case OPT_PROFILE: o.profile = optarg; break;
    case OPT_RESOURCE_DIR: o.resource_dir = optarg; break;
    case OPT_MAX_STACK: {
      char *end;
      o.max_stack = strtoll(optarg, &end, 10);
      if (*optarg == 0 || *end != 0 || o.max_stack < 0) {
        fprintf(stderr, "palloc-escape: bad --max-stack value '%s'\n", optarg);
        return 2;
      }
      break;
    }
    case OPT_ALLOC:
      o.allocs = pe_xrealloc(o.allocs, sizeof *o.allocs * (size_t)(o.nallocs + 1));
      o.allocs[o.nallocs++] = optarg;
      break;
    case OPT_FREE:
      o.frees = pe_xrealloc(o.frees, sizeof *o.frees * (size_t)(o.nfrees + 1));
      o.frees[o.nfrees++] = optarg;
      break;
    case OPT_REALLOC:
      o.reallocs = pe_xrealloc(o.reallocs, sizeof *o.reallocs * (size_t)(o.nreallocs + 1));
      o.reallocs[o.nreallocs++] = optarg;
      break;
    case OPT_CACHE: o.cache = optarg; break;
    case OPT_NO_CACHE: no_cache = true; break;
    case OPT_LIFETIMES: o.lifetimes = optarg; break;
    case OPT_TOP: {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*optarg == 0 || *end != 0 || v < 0 || v > 1000000) {
        fprintf(stderr, "palloc-escape: bad --top value '%s'\n", optarg);
        return 2;
      }
      o.top = (int)v;
      break;
    }
    case ':':
      fprintf(stderr, "palloc-escape: %s needs a value\n%s", argv[optind - 1], usage);
      return 2;
    default: /* '?': optopt is the unknown short option; a long one is argv[optind - 1] */
      if (optopt > 0 && optopt < 256)
        fprintf(stderr, "palloc-escape: unknown option '-%c'\n%s", optopt, usage);
      else
        fprintf(stderr, "palloc-escape: unknown option '%s'\n%s", argv[optind - 1], usage);
      return 2;
    }
  }
  char **files = argv + optind; /* permuted here by getopt_long */
  int nfiles = dashdash - optind;
  if (dashdash < argc) dashdash++;
  char **flags = argv + dashdash;
  int nflags = argc - dashdash;
  if (o.resource_dir && access(o.resource_dir, R_OK) != 0) o.resource_dir = NULL;
  if (!dbdir && nfiles == 0) {
    fprintf(stderr, "palloc-escape: no input files\n%s", usage);
    return 2;
  }
  if (o.lifetimes && !o.profile) {
    fprintf(stderr, "palloc-escape: --lifetimes needs --profile\n%s", usage);
    return 2;
  }
  char *default_cache = NULL;
  if (no_cache || (o.cache && !o.cache[0])) o.cache = NULL;
  else if (!o.cache && dbdir) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/') default_cache = pe_fmt("%s/palloc-escape", xdg);
    else if (home && home[0] == '/') default_cache = pe_fmt("%s/.cache/palloc-escape", home);
    o.cache = default_cache;
  }
  if (o.cache && o.cache[0] != '/' && pe_start_dir[0]) /* see pe_start_dir */
    o.cache = pe_fmt("%s/%s", pe_start_dir, o.cache);

  if (o.profile) o.m = 2; /* the hot sites are shown with their flow */
  work w = {.o = &o};
  int cap = 0;
  if (dbdir) {
    CXCompilationDatabase_Error err;
    CXCompilationDatabase db = clang_CompilationDatabase_fromDirectory(dbdir, &err);
    if (err != CXCompilationDatabase_NoError || !db) {
      fprintf(stderr, "palloc-escape: %s: error: cannot load compile_commands.json\n", dbdir);
      w.failed++;
      for (int i = 0; i < nfiles; i++) {
        job j = plain_job(files[i], flags, nflags);
        PE_PUSH(w.jobs, w.njobs, cap, j);
      }
    } else {
      /* every file of the database is walked (the summaries of the whole program); the named
       * ones, or all if none is named, are reported */
      char **real = calloc((size_t)nfiles + 1, sizeof *real);
      bool *found = calloc((size_t)nfiles + 1, sizeof *found);
      for (int i = 0; i < nfiles; i++) real[i] = realpath(files[i], NULL);
      CXCompileCommands cmds = clang_CompilationDatabase_getAllCompileCommands(db);
      unsigned n = clang_CompileCommands_getSize(cmds);
      for (unsigned i = 0; i < n; i++) {
        job j = db_job(clang_CompileCommands_getCommand(cmds, i), NULL);
        if (!has_ext(j.file, ".c")) continue; /* assembler, C++ ... */
        char *rj = realpath(j.file, NULL);
        j.report = nfiles == 0;
        for (int k = 0; k < nfiles; k++)
          if (!found[k] && rj && real[k] && strcmp(rj, real[k]) == 0) {
            j.report = j.named = found[k] = true;
            for (int a = 0; a < j.nargs; a++) /* make the file name resolvable from its dir */
              if (strcmp(j.args[a], j.file) == 0 || strcmp(j.args[a], files[k]) == 0)
                j.args[a] = real[k];
            j.file = pe_xstrdup(files[k]); /* print it as named */
          }
        free(rj);
        PE_PUSH(w.jobs, w.njobs, cap, j);
      }
      clang_CompileCommands_dispose(cmds);
      for (int k = 0; k < nfiles; k++) {
        if (found[k]) continue;
        fprintf(stderr, "palloc-escape: %s: not in %s/compile_commands.json; using the flags "
                "after --\n", files[k], dbdir);
        job j = plain_job(files[k], flags, nflags);
        PE_PUSH(w.jobs, w.njobs, cap, j);
      }
      free(found);
    }
    if (db) clang_CompilationDatabase_dispose(db);
  } else {
    for (int i = 0; i < nfiles; i++) {
      job j = plain_job(files[i], flags, nflags);
      PE_PUSH(w.jobs, w.njobs, cap, j);
    }
  }

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, (size_t)1 << 30);
  pthread_t th;
  if (pthread_create(&th, &attr, run, &w) != 0) {
    pthread_attr_setstacksize(&attr, (size_t)64 << 20);
    if (pthread_create(&th, &attr, run, &w) != 0) run(&w);
    else pthread_join(th, NULL);
  } else {
    pthread_join(th, NULL);
  }
  pthread_attr_destroy(&attr);

  pe_recs_sort(&w.recs);
  pe_recs_merge(&w.recs);
  if (o.profile) {
    if (pe_profile_join(&w.recs, &o, stdout) != 0) return 1;
  } else {
    pe_recs_print(&w.recs, &o, stdout);
  }
  if (fflush(stdout) != 0) return 1;
  if (w.failed)
    fprintf(stderr, "palloc-escape: %d of %d file(s) failed\n", w.failed, w.njobs);
  return w.failed ? 1 : 0;
}
