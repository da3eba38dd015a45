/* cmd_run.c - `palloc run -- CMD ARGS...`: a program under libpalloc, its profile written.
 *
 * Sets LD_PRELOAD (libpalloc first, any existing preloads kept after it) and the PALLOC_*
 * variables for the options, forks, execs CMD, waits, and passes its exit status through (a
 * death by signal N becomes 128+N, as in shells). Then it says where the profile went: the
 * pid is only known after the fork, so "%p" in the path is expanded here, by libpalloc's own
 * expander (proto/outpath.c).
 *
 * Finding libpalloc.so, first hit wins (documented in --help):
 *   1. $PALLOC_LIB (a file path), so that any build or install can be chosen explicitly;
 *   2. installed layout: the directory of this executable, then ../<libdir>/ relative to it
 *      (libdir as configured, e.g. lib/x86_64-linux-gnu), which survives relocating the prefix;
 *   3. the build tree this binary was built in (PALLOC_BUILD_LIBDIR), if it still exists.
 * The path is made absolute, because the program may chdir and LD_PRELOAD is read by every
 * child process it starts.
 */
#include <elf.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <time.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "options.h"

static const char help[] =
  "usage: palloc run [-o PROFILE] [--rate BYTES] [--interval S] [--trace] -- CMD ARGS...\n"
  "\n"
  "Runs CMD with libpalloc preloaded (LD_PRELOAD), so that it writes a heap profile at exit,\n"
  "and prints where the profile went, then every other profile written by the processes it\n"
  "started (with %p in PROFILE each process writes its own: a make -j2 writes dozens). A\n"
  "statically linked CMD is said to be out of LD_PRELOAD's reach before it runs. The exit status is CMD's (128+N if it died of signal N;\n"
  "127 if it could not be started).\n"
  "\n"
  "  -o, --output PROFILE   where to write the profile (PALLOC_PROFILE); %p is the pid\n"
  "                         (default: palloc.%p.pb.gz)\n"
  "  -r, --rate BYTES       mean bytes between samples (PALLOC_SAMPLE_RATE): 512k, 1MiB;\n"
  "                         1 records every allocation (exact)\n"
  "  -s, --interval S       also write a numbered snapshot every S seconds (0.5 too)\n"
  "                         (PALLOC_PROFILE_INTERVAL): PROFILE with .0001, .0002 ... before .pb.gz\n"
  "  -t, --trace            print the what-if GC trace (PALLOC_TRACE=1)\n"
  "  -l, --leak-check BYTES the leak gate (PALLOC_LEAK_CHECK): at exit, a LeakSanitizer-style\n"
  "                         report of the blocks still live, and exit status 23 when they\n"
  "                         exceed BYTES (1MiB, 0 = any) by more than the sampling noise;\n"
  "                         no heap profile unless -o is given (a test wrapper)\n"
  "      --suppressions F   LeakSanitizer suppressions (leak:PATTERN lines) for the leak gate\n"
  "      --peak PROFILE     also write the peak-heap profile (PALLOC_PEAK_PROFILE)\n"
  "      --lifetimes PROFILE also write the lifetime profile (PALLOC_LIFETIME_PROFILE)\n"
  "  -h, --help             this help\n"
  "\n"
  "libpalloc.so is found in this order: $PALLOC_LIB; next to this program or in\n"
  "../" PALLOC_LIBDIR_REL "/ relative to it (an installed palloc); the build tree it was\n"
  "built in (" PALLOC_BUILD_LIBDIR ").\n";

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Returns a malloc'd absolute path of libpalloc.so, or NULL (after printing why). */
static char *find_lib(void) {
  const char *env = getenv("PALLOC_LIB");
  char buf[PATH_MAX * 2], *abs;
  if (env && *env) {
    if (!is_file(env) || (abs = realpath(env, NULL)) == NULL) {
      fprintf(stderr, "palloc run: PALLOC_LIB=%s: not a readable file\n", env);
      return NULL;
    }
    return abs;
  }
  static const char *names[] = {"libpalloc.so.0", "libpalloc.so"};
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    for (size_t i = 0; i < 2; i++) {
      const char *dirs[] = {exe, NULL};
      char up[PATH_MAX + 64];
      snprintf(up, sizeof up, "%s/../%s", exe, PALLOC_LIBDIR_REL);
      dirs[1] = up;
      for (size_t d = 0; d < 2; d++) {
        snprintf(buf, sizeof buf, "%s/%s", dirs[d], names[i]);
        if (is_file(buf)) return realpath(buf, NULL);
      }
    }
  }
  for (size_t i = 0; i < 2; i++) {
    snprintf(buf, sizeof buf, "%s/%s", PALLOC_BUILD_LIBDIR, names[i]);
    if (is_file(buf)) return realpath(buf, NULL);
  }
  fprintf(stderr, "palloc run: cannot find libpalloc.so (set PALLOC_LIB=/path/to/libpalloc.so)\n");
  return NULL;
}

/* The ELF executable file execvp would run for cmd (PATH searched as execvp does), in out;
 * false if there is none (exec will say why). */
static bool find_cmd(const char *cmd, char *out, size_t n) {
  if (strchr(cmd, '/')) return snprintf(out, n, "%s", cmd) < (int)n;
  const char *path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path;; p++) {
    const char *e = strchr(p, ':');
    size_t k = e ? (size_t)(e - p) : strlen(p);
    if (snprintf(out, n, "%.*s%s%s", (int)k, p, k ? "/" : "", cmd) < (int)n && is_file(out) &&
        access(out, X_OK) == 0)
      return true;
    if (e == NULL) return false;
    p = e;
  }
}

/* 1 if path is an ELF file with a program interpreter (PT_INTERP: the dynamic loader, which
 * reads LD_PRELOAD), copied to interp; 0 if it is an ELF file without one (linked statically,
 * or static-pie); -1 if it is not ELF or cannot be read (a script: its interpreter decides). */
static int elf_interp(const char *path, char *interp, size_t n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  Elf64_Ehdr h;
  int rc = -1;
  if (fread(&h, 1, sizeof h, f) < EI_NIDENT + 4 || memcmp(h.e_ident, ELFMAG, SELFMAG) != 0)
    goto out;
  bool is64 = h.e_ident[EI_CLASS] == ELFCLASS64;
  uint64_t phoff = is64 ? h.e_phoff : ((Elf32_Ehdr *)&h)->e_phoff;
  unsigned phnum = is64 ? h.e_phnum : ((Elf32_Ehdr *)&h)->e_phnum;
  rc = 0;
  for (unsigned i = 0; i < phnum && i < 4096; i++) {
    Elf64_Phdr ph;
    Elf32_Phdr ph32;
    uint64_t off, size;
    uint32_t type;
    if (is64) {
      if (fseek(f, (long)(phoff + (uint64_t)i * sizeof ph), SEEK_SET) != 0 ||
          fread(&ph, sizeof ph, 1, f) != 1)
        break;
      type = ph.p_type, off = ph.p_offset, size = ph.p_filesz;
    } else {
      if (fseek(f, (long)(phoff + (uint64_t)i * sizeof ph32), SEEK_SET) != 0 ||
          fread(&ph32, sizeof ph32, 1, f) != 1)
        break;
      type = ph32.p_type, off = ph32.p_offset, size = ph32.p_filesz;
    }
    if (type != PT_INTERP) continue;
    rc = 1;
    if (size == 0 || size > n || fseek(f, (long)off, SEEK_SET) != 0 ||
        fread(interp, 1, size, f) != size)
      interp[0] = 0;
    else
      interp[size - 1] = 0;
    break;
  }
out:
  fclose(f);
  return rc;
}

/* Whether path is a 64-bit ELF file with a section called name (section headers survive strip). */
static bool elf_has_section(const char *path, const char *name) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return false;
  bool found = false;
  Elf64_Ehdr h;
  Elf64_Shdr strs;
  if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.e_ident, ELFMAG, SELFMAG) != 0 ||
      h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_shentsize != sizeof(Elf64_Shdr) ||
      h.e_shstrndx >= h.e_shnum ||
      fseek(f, (long)(h.e_shoff + (uint64_t)h.e_shstrndx * sizeof strs), SEEK_SET) != 0 ||
      fread(&strs, sizeof strs, 1, f) != 1)
    goto out;
  size_t len = strlen(name) + 1;
  char got[64];
  if (len > sizeof got) goto out;
  for (unsigned i = 0; i < h.e_shnum && !found; i++) {
    Elf64_Shdr sh;
    if (fseek(f, (long)(h.e_shoff + (uint64_t)i * sizeof sh), SEEK_SET) != 0 ||
        fread(&sh, sizeof sh, 1, f) != 1)
      break;
    if (sh.sh_name >= strs.sh_size || strs.sh_size - sh.sh_name < len ||
        fseek(f, (long)(strs.sh_offset + sh.sh_name), SEEK_SET) != 0 ||
        fread(got, 1, len, f) != len)
      continue;
    found = memcmp(got, name, len) == 0;
  }
out:
  fclose(f);
  return found;
}

/* Why LD_PRELOAD cannot reach cmd, or NULL. A static program has no dynamic loader to read
 * LD_PRELOAD (the dynamic loader itself, run as a command, is the exception); a set-user-ID or
 * set-group-ID program that changes the IDs runs in secure mode, where the loader ignores a
 * preloaded path with a slash. */
static const char *unreachable(const char *cmd) {
  char path[PATH_MAX], interp[PATH_MAX], own[PATH_MAX];
  struct stat st;
  if (!find_cmd(cmd, path, sizeof path) || stat(path, &st) != 0) return NULL;
  if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
      ((st.st_mode & S_ISGID) && st.st_gid != getegid()))
    return "is set-user-ID or set-group-ID: the dynamic loader ignores LD_PRELOAD";
  if (elf_interp(path, interp, sizeof interp) != 0) return NULL;
  if (elf_interp("/proc/self/exe", own, sizeof own) == 1 && own[0]) {
    char *a = realpath(path, NULL), *b = realpath(own, NULL);
    bool loader = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    if (loader) return NULL;
  }
  /* A static program that links libpalloc.a has palloc's code (libpalloc puts its allocation
   * path in the palloc_text section) and reads PALLOC_PROFILE itself. */
  if (elf_has_section(path, "palloc_text")) return NULL;
  return "is statically linked: LD_PRELOAD cannot reach it (to profile it, link it with "
         "libpalloc.a: cc -static ... $(pkg-config --static --libs palloc))";
}

/* The glob(7) pattern of the files libpalloc writes for path pattern out: "%p" is any pid,
 * "%%" a '%', glob's special characters quoted; with snapshots=true, the numbered snapshots'
 * names (".0001" before ".pb.gz", or at the end). */
static void profile_glob(const char *out, bool snapshots, char *pat, size_t n) {
  size_t o = 0, len = strlen(out);
  size_t stem = len > 6 && strcmp(out + len - 6, ".pb.gz") == 0 ? len - 6 : len;
  for (size_t i = 0; i <= len && o + 16 < n; i++) {
    if (snapshots && i == stem) {
      memcpy(pat + o, ".[0-9][0-9][0-9][0-9]", 21);
      o += 21;
    }
    if (i == len) break;
    if (out[i] == '%' && out[i + 1] == 'p') {
      pat[o++] = '*';
      i++;
    } else if (out[i] == '%' && out[i + 1] == '%') {
      pat[o++] = '%';
      i++;
    } else {
      if (strchr("*?[]\\", out[i])) pat[o++] = '\\';
      pat[o++] = out[i];
    }
  }
  pat[o] = 0;
}

static int by_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every profile the run wrote: files matching the output pattern (any pid, snapshots too)
 * modified since the run started, other than the one already reported. A `make -j2` or a
 * shell script starts many processes, each writing its own profile (with %p). */
static void list_profiles(const char *out, const char *reported, const struct timespec *start) {
  glob_t g[2];
  size_t nfound = 0;
  for (int k = 0; k < 2; k++) {
    char pat[PATH_MAX * 2 + 64];
    profile_glob(out, k == 1, pat, sizeof pat);
    if (glob(pat, 0, NULL, &g[k]) != 0) g[k].gl_pathc = 0;
  }
  char **found = xcalloc(g[0].gl_pathc + g[1].gl_pathc + 1, sizeof *found);
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < g[k].gl_pathc; i++) {
      struct stat st;
      const char *f = g[k].gl_pathv[i];
      if (strcmp(f, reported) == 0 || stat(f, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (st.st_mtim.tv_sec < start->tv_sec ||
          (st.st_mtim.tv_sec == start->tv_sec && st.st_mtim.tv_nsec < start->tv_nsec))
        continue; /* left by an earlier run */
      found[nfound++] = g[k].gl_pathv[i];
    }
  qsort(found, nfound, sizeof *found, by_str);
  size_t u = 0; /* a snapshot matches both patterns when PROFILE has %p */
  for (size_t i = 0; i < nfound; i++)
    if (u == 0 || strcmp(found[u - 1], found[i]) != 0) found[u++] = found[i];
  nfound = u;
  if (nfound > 0) {
    fprintf(stderr, "palloc: %s%zu profile%s written by the processes it started:\n",
            reported[0] ? "also " : "", nfound, nfound == 1 ? "" : "s");
    for (size_t i = 0; i < nfound; i++) fprintf(stderr, "  %s\n", found[i]);
  }
  free(found);
  if (g[0].gl_pathc) globfree(&g[0]);
  if (g[1].gl_pathc) globfree(&g[1]);
}

int cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
    {"output", required_argument, 0, 'o'}, {"rate", required_argument, 0, 'r'},
    {"interval", required_argument, 0, 's'}, {"trace", no_argument, 0, 't'},
    {"leak-check", required_argument, 0, 'l'}, {"suppressions", required_argument, 0, 'S'},
    {"peak", required_argument, 0, 'P'}, {"lifetimes", required_argument, 0, 'L'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  const char *out = "palloc.%p.pb.gz", *rate = NULL, *interval = NULL;
  const char *leak = NULL, *supp = NULL, *peak = NULL, *life = NULL;
  bool out_given = false;
  bool trace = false;
  int64_t v;
  int c;
  optind = 0;
  opterr = 0;
  /* '+': stop at the first non-option, so CMD's own options are never ours */
  while ((c = getopt_long(argc, argv, "+o:r:s:thl:", opts, NULL)) != -1) {
    switch (c) {
    case 'o':
      if (!*optarg) return usage_error("run", "-o needs a file name");
      out = optarg;
      out_given = true;
      break;
    case 'l':
      if (palloc_option_parse(PALLOC_OPT_LEAK_CHECK, optarg, &v) != PALLOC_OPT_OK)
        return usage_error("run", "--leak-check needs a size in bytes (1MiB, 64K, 0), not '%s'", optarg);
      leak = optarg;
      break;
    case 'S': supp = optarg; break;
    case 'P': peak = optarg; break;
    case 'L': life = optarg; break;
    case 'r':
      /* libpalloc's own rule for PALLOC_SAMPLE_RATE (alloc/options.c): refused here, not in
       * the child where it would be one palloc: line and the default rate */
      if (palloc_option_parse(PALLOC_OPT_SAMPLE_RATE, optarg, &v) != PALLOC_OPT_OK)
        return usage_error("run", "--rate needs a size in bytes (512K, 1MiB, 1), not '%s'", optarg);
      rate = optarg;
      break;
    case 's':
      if (palloc_option_parse(PALLOC_OPT_PROFILE_INTERVAL, optarg, &v) != PALLOC_OPT_OK)
        return usage_error("run", "--interval needs seconds (60, 0.5; at least 0.001), not '%s'", optarg);
      interval = optarg;
      break;
    case 't': trace = true; break;
    case 'h': fputs(help, stdout); return 0;
    default: return usage_error("run", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return usage_error("run", "missing the command to run (palloc run -- CMD ARGS...)");
  char *lib = find_lib();
  if (lib == NULL) return EXIT_CHECK;
  const char *why = unreachable(argv[optind]);
  if (why) fprintf(stderr, "palloc: %s %s\n", argv[optind], why);
  const char *old = getenv("LD_PRELOAD");
  size_t len = strlen(lib) + (old ? strlen(old) : 0) + 2;
  char *preload = xmalloc(len);
  snprintf(preload, len, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
  fflush(NULL);
  /* file times are the kernel's coarse clock: one tick (<= 10 ms) of slack */
  struct timespec start;
  clock_gettime(CLOCK_REALTIME_COARSE, &start);
  if (start.tv_nsec >= 10000000) start.tv_nsec -= 10000000;
  else start.tv_sec--, start.tv_nsec += 990000000;
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "palloc run: fork: %s\n", strerror(errno));
    return EXIT_CHECK;
  }
  if (pid == 0) {
    setenv("LD_PRELOAD", preload, 1);
    if (leak == NULL || out_given) setenv("PALLOC_PROFILE", out, 1);
    if (leak) setenv("PALLOC_LEAK_CHECK", leak, 1);
    if (supp) setenv("PALLOC_LEAK_SUPPRESSIONS", supp, 1);
    if (peak) setenv("PALLOC_PEAK_PROFILE", peak, 1);
    if (life) setenv("PALLOC_LIFETIME_PROFILE", life, 1);
    if (rate) setenv("PALLOC_SAMPLE_RATE", rate, 1);
    if (interval) setenv("PALLOC_PROFILE_INTERVAL", interval, 1);
    if (trace) setenv("PALLOC_TRACE", "1", 1);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "palloc run: cannot run %s: %s\n", argv[optind], strerror(errno));
    _exit(127);
  }
  /* The child gets the terminal's ^C; we wait for it and report what it left behind. */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "palloc run: waitpid: %s\n", strerror(errno));
      return EXIT_CHECK;
    }
  }
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (WIFEXITED(st) && code == 127) {
    free(preload);
    free(lib);
    return code; /* exec failed (already said), or the program's own 127 */
  }
  if (leak && code == PALLOC_LEAK_EXIT_CODE)
    fprintf(stderr, "palloc: leak check failed: %s exited with status %d (leaks over %s)\n",
            argv[optind], code, leak);
  if (leak && !out_given) {
    free(preload);
    free(lib);
    return code;
  }
  char path[PATH_MAX];
  struct stat pst;
  if (!palloc_proto_expand_pid(out, (long)pid, path, sizeof path))
    snprintf(path, sizeof path, "%s", out); /* libpalloc refused it as too long, and said so */
  bool reported = false;
  if (stat(path, &pst) == 0 && (S_ISFIFO(pst.st_mode) || S_ISCHR(pst.st_mode)))
    ; /* written to a reader or a device, as it is: libpalloc said so if that failed */
  else if (is_file(path))
    fprintf(stderr, "palloc: profile written to %s\n", path), reported = true;
  else if (!WIFEXITED(st))
    fprintf(stderr, "palloc: %s died of signal %d; no profile at %s\n", argv[optind],
            WTERMSIG(st), path);
  else if (why)
    fprintf(stderr, "palloc: no profile at %s\n", path);
  else
    fprintf(stderr, "palloc: no profile at %s (did the program exit through _exit or exec?)\n",
            path);
  if (interval) fprintf(stderr, "palloc: snapshots every %ss next to it, numbered .0001, .0002, ...\n", interval);
  if (!(stat(path, &pst) == 0 && (S_ISFIFO(pst.st_mode) || S_ISCHR(pst.st_mode))))
    list_profiles(out, reported ? path : "", &start);
  free(preload);
  free(lib);
  return code;
}
