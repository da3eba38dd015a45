/* main.c - palloc-escape's command line: which files, with which flags, and the exit status.
 *
 *   palloc-escape [options] FILE.c... [-- COMPILER FLAGS]
 *   palloc-escape -p BUILD_DIR [options] [FILE.c...]
 *
 * Files are analyzed one at a time (parse, walk, solve, dispose) so memory stays bounded by the
 * largest translation unit; only the verdict records are kept, then sorted and printed. A file
 * that fails is reported on stderr and the others go on; the exit status is 1 if any failed.
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
    "  --json            machine-readable output\n"
    "  --profile FILE    rank the candidates by a heap profile (pprof .pb.gz)\n"
    "  --resource-dir D  clang resource directory (builtin headers)\n";

typedef struct {
  char *file;      /* as named (output) */
  char *dir;       /* working directory or NULL */
  char **args;     /* full argv, args[0] the compiler */
  int nargs;
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
  for (int i = 0; i < w->njobs; i++) {
    job *j = &w->jobs[i];
    if (progress) fprintf(stderr, "palloc-escape: [%d/%d] %s\n", i + 1, w->njobs, j->file);
    CXTranslationUnit tu = pe_parse(idx, j->file, j->dir, j->args, j->nargs, w->o);
    if (!tu) { w->failed++; continue; }
    if (parse_only) { clang_disposeTranslationUnit(tu); continue; }
    pe_unit u = {.path = j->file};
    if (pe_walk_unit(tu, &u, w->o) != 0) w->failed++;
    pe_solve_unit(&u, w->o, &w->recs);
    pe_unit_free(&u);
    clang_disposeTranslationUnit(tu);
  }
  clang_disposeIndex(idx);
  return NULL;
}

static job plain_job(const char *file, char **flags, int nflags) {
  job j = {.file = pe_xstrdup(file)};
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

enum { OPT_JSON = 256, OPT_PROFILE, OPT_RESOURCE_DIR, OPT_MAX_STACK, OPT_ALLOC, OPT_FREE };

static const struct option longopts[] = {
  {"help", no_argument, NULL, 'h'},
  {"json", no_argument, NULL, OPT_JSON},
  {"profile", required_argument, NULL, OPT_PROFILE},
  {"resource-dir", required_argument, NULL, OPT_RESOURCE_DIR},
  {"max-stack", required_argument, NULL, OPT_MAX_STACK},
  {"alloc", required_argument, NULL, OPT_ALLOC},
  {"free", required_argument, NULL, OPT_FREE},
  {NULL, 0, NULL, 0},
};

int main(int argc, char **argv) {
  pe_opts o = {.m = 1, .max_stack = 4032, .resource_dir = PE_RESOURCE_DIR};
  const char *dbdir = NULL;
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
    } else if (nfiles == 0) {
      CXCompileCommands cmds = clang_CompilationDatabase_getAllCompileCommands(db);
      unsigned n = clang_CompileCommands_getSize(cmds);
      for (unsigned i = 0; i < n; i++) {
        job j = db_job(clang_CompileCommands_getCommand(cmds, i), NULL);
        if (!has_ext(j.file, ".c")) continue; /* assembler, C++ ... */
        PE_PUSH(w.jobs, w.njobs, cap, j);
      }
      clang_CompileCommands_dispose(cmds);
    } else {
      for (int i = 0; i < nfiles; i++) {
        char *real = realpath(files[i], NULL);
        CXCompileCommands cmds =
            clang_CompilationDatabase_getCompileCommands(db, real ? real : files[i]);
        job j;
        if (cmds && clang_CompileCommands_getSize(cmds) > 0) {
          j = db_job(clang_CompileCommands_getCommand(cmds, 0), files[i]);
          for (int k = 0; k < j.nargs; k++) /* make the file name resolvable from its dir */
            if (real && strcmp(j.args[k], files[i]) == 0) j.args[k] = real;
        } else {
          fprintf(stderr, "palloc-escape: %s: not in %s/compile_commands.json; using the flags "
                  "after --\n", files[i], dbdir);
          j = plain_job(files[i], flags, nflags);
        }
        if (cmds) clang_CompileCommands_dispose(cmds);
        PE_PUSH(w.jobs, w.njobs, cap, j);
      }
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
