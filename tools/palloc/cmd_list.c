/* cmd_list.c - `palloc list REGEX PROFILE`: the source of the matching functions, each line with
 * the bytes allocated there (flat) and through it (cum): pprof -list, the same listing.
 *
 * As pprof: the profile is viewed at the lines granularity (a node per function, file and line);
 * the functions whose name matches REGEX are listed by name, each once per source file it has
 * lines in (files by name). A file's listing runs from 5 lines before the first line with
 * samples to 5 after the last (pprof's margin, extended by every sampled line in the
 * asymmetric way pprof extends it: a line before the start moves the start, otherwise a line
 * after the end moves the end), cut at the end of the file. Values are each in their own best
 * unit, "." for none. Sources are read from the path in the profile (relative paths from the
 * current directory and its parents); a file that is not there gets one " Error:" line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"

static const char help[] =
  "usage: palloc list [--sample-index TYPE] [VIEW OPTIONS] REGEX PROFILE\n"
  "\n"
  "Prints the source of every function whose name matches REGEX, each line annotated with\n"
  "what was allocated on it (flat) and through it (cum), 5 lines of context around the\n"
  "sampled ones (pprof -list REGEX). The sources must be on disk at the paths the profile\n"
  "names (relative ones are looked for from the current directory up).\n"
  "\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "Exit status: 0 ok, 1 unreadable profile or no function matches, 2 usage error.\n";

typedef struct {
  uint32_t node;
  uint32_t func;   /* function index of the node's first frame */
  int64_t line;
} lnode_t;

static const view_t *lv;

static int by_name_file(const void *a, const void *b) {
  const lnode_t *x = a, *y = b;
  int c = strcmp(lv->fnames[x->func], lv->fnames[y->func]);
  if (c) return c;
  c = strcmp(lv->ffiles[x->func], lv->ffiles[y->func]);
  if (c) return c;
  return x->node < y->node ? -1 : x->node > y->node; /* first seen first (pprof's node order) */
}

/* The file's lines (lines[1..n]), read up to the last line the listing shows. */
typedef struct {
  char *text;
  char **lines;
  size_t n;
} source_t;

/* A listing reads at most this much of a source file: the file is named by the profile, which
 * may come from anywhere, and a 10 GB file (or one without newlines) must not be read whole to
 * show a few lines. Lines past the bound are not listed. */
#define SOURCE_MAX ((size_t)64 << 20)

/* path opened for reading if it is a regular file, else -1 with *why set. O_NONBLOCK: a FIFO
 * named by the profile must not block the open; a FIFO or a device (/dev/zero, which never
 * ends) is refused. */
static int open_regular(const char *path, const char **why) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *why = strerror(errno);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    close(fd);
    return -1;
  }
  return fd;
}

static int open_source(const char *path, const char **why) {
  if (path[0] == '/') return open_regular(path, why);
  char dir[4096];
  if (getcwd(dir, sizeof dir) == NULL) return -1;
  for (;;) {
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, path);
    int fd = open_regular(p, why);
    if (fd >= 0) return fd;
    char *s = strrchr(dir, '/');
    if (s == NULL || s == dir) {
      if (strcmp(dir, "/") == 0) return -1;
      strcpy(dir, "/");
    } else {
      *s = 0;
    }
  }
}

/* Reads path's lines 1..last (fewer if the file is shorter, or longer than SOURCE_MAX before
 * them); false and *why if it cannot be opened. */
static bool read_source(const char *path, int64_t last, source_t *src, const char **why) {
  memset(src, 0, sizeof *src);
  int fd = open_source(path, why);
  if (fd < 0) return false;
  size_t cap = 1 << 16, len = 0, nl = 0;
  src->text = xmalloc(cap);
  while (len < SOURCE_MAX && (int64_t)nl < last) {
    if (len + 1 == cap) src->text = xrealloc(src->text, cap *= 2);
    size_t want = cap - len - 1;
    if (want > SOURCE_MAX - len) want = SOURCE_MAX - len;
    ssize_t k = read(fd, src->text + len, want);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    for (ssize_t i = 0; i < k; i++) nl += src->text[len + (size_t)i] == '\n';
    len += (size_t)k;
  }
  close(fd);
  src->text[len] = 0;
  size_t lcap = 1024;
  src->lines = xmalloc(lcap * sizeof *src->lines);
  src->lines[0] = NULL;
  src->n = 0;
  for (char *p = src->text; *p;) {
    char *e = strchr(p, '\n');
    if (src->n + 2 >= lcap) src->lines = xrealloc(src->lines, (lcap *= 2) * sizeof *src->lines);
    src->lines[++src->n] = p;
    if (e == NULL) break;
    *e = 0;
    if (e > p && e[-1] == '\r') e[-1] = 0; /* bufio.ScanLines drops a trailing \r */
    p = e + 1;
  }
  return true;
}

static int by_line(const void *a, const void *b) {
  const lnode_t *x = a, *y = b;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* line - 5 and line + 5 without overflow (a profile's line numbers are any int64) */
static int64_t line_minus5(int64_t l) { return l < INT64_MIN + 5 ? INT64_MIN : l - 5; }
static int64_t line_plus5(int64_t l) { return l > INT64_MAX - 5 ? INT64_MAX : l + 5; }

int cmd_list(int argc, char **argv) {
  static const struct option opts[] = {
    {"sample-index", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'}, VIEW_LONG_OPTIONS,
    {0, 0, 0, 0}};
  view_opts_t vo = {0};
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+i:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_sample_index("list", optarg)) return EXIT_USAGE;
      vo.sample_index = optarg;
      break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "list", c, optarg);
      if (r < 0) return usage_error("list", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  vo.gran = VIEW_LINES; /* pprof's list works on lines */
  regex_t rx;
  view_t v;
  int rc = view_open_regex(&v, &rx, "list", argc, argv, &vo);
  if (rc) return rc;
  int64_t *flat = xmalloc((v.nnodes + 1) * sizeof *flat), *cum = xmalloc((v.nnodes + 1) * sizeof *cum);
  view_flat_cum(&v, flat, cum);
  /* each node's function and line, from the first frame that names it */
  lnode_t *info = xmalloc((v.nnodes + 1) * sizeof *info);
  for (uint32_t k = 0; k < v.nnodes; k++) info[k] = (lnode_t){k, UINT32_MAX, 0};
  for (size_t f = 0; f < v.nframes; f++)
    if (info[v.frames[f]].func == UINT32_MAX && v.ffunc[f] != UINT32_MAX)
      info[v.frames[f]].func = v.ffunc[f], info[v.frames[f]].line = v.fline[f];
  lnode_t *sel = xmalloc((v.nnodes + 1) * sizeof *sel);
  size_t nsel = 0;
  for (uint32_t k = 0; k < v.nnodes; k++)
    if ((flat[k] || cum[k]) && info[k].func != UINT32_MAX &&
        regexec(&rx, v.fnames[info[k].func], 0, NULL, 0) == 0)
      sel[nsel++] = info[k];
  lv = &v;
  qsort(sel, nsel, sizeof *sel, by_name_file);
  char a[64], b[64], pc[32];
  if (nsel == 0) {
    fprintf(stderr, "palloc: %s: no function matches '%s'\n", v.path, argv[optind]);
    rc = EXIT_CHECK;
  } else {
    printf("Total: %s\n", unit_auto(a, sizeof a, v.total, v.unit));
  }
  for (size_t i = 0; i < nsel;) {
    const char *name = v.fnames[sel[i].func];
    size_t j = i;
    while (j < nsel && strcmp(v.fnames[sel[j].func], name) == 0) j++;
    bool any_file = false;
    for (size_t k = i; k < j; k++) any_file |= v.ffiles[sel[k].func][0] != 0;
    if (!any_file) printf("No source information for %s\n", name);
    for (size_t k = i; k < j;) {
      const char *file = v.ffiles[sel[k].func];
      size_t e = k;
      while (e < j && strcmp(v.ffiles[sel[e].func], file) == 0) e++;
      if (file[0] == 0) {
        k = e;
        continue;
      }
      int64_t fsum = 0, csum = 0;
      for (size_t m = k; m < e; m++) fsum += flat[sel[m].node], csum += cum[sel[m].node];
      /* pprof's range: from the first node's line - 5 to its line + 5, widened */
      int64_t start = line_minus5(sel[k].line), end = line_plus5(sel[k].line);
      for (size_t m = k; m < e; m++) {
        int64_t ns = line_minus5(sel[m].line), ne = line_plus5(sel[m].line);
        if (ns < start) start = ns;
        else if (ne > end) end = ne;
      }
      if (start < 1) start = 1;
      printf("ROUTINE ======================== %s in %s\n", name, file);
      printf("%10s %10s (flat, cum) %s of Total\n", unit_auto(a, sizeof a, fsum, v.unit),
             unit_auto(b, sizeof b, csum, v.unit), percent(pc, sizeof pc, csum, v.total));
      source_t src;
      const char *why = "no such file";
      if (!read_source(file, end, &src, &why)) {
        /* pprof's words: Go's os.Open error for an absolute path, its search's otherwise */
        char cwd[4096], err[128];
        snprintf(err, sizeof err, "%s", why);
        err[0] = (char)tolower((unsigned char)err[0]);
        if (file[0] == '/') printf(" Error: open %s: %s\n", file, err);
        else printf(" Error: could not find file %s on path %s\n", file,
                    getcwd(cwd, sizeof cwd) ? cwd : ".");
        k = e;
        continue;
      }
      /* the nodes by line, walked along with the listing: lines x nodes would be quadratic */
      qsort(sel + k, e - k, sizeof *sel, by_line);
      size_t m = k;
      for (int64_t ln = start; ln <= end && (size_t)ln <= src.n; ln++) {
        int64_t lf = 0, lc = 0;
        while (m < e && sel[m].line < ln) m++;
        for (; m < e && sel[m].line == ln; m++) lf += flat[sel[m].node], lc += cum[sel[m].node];
        printf("%10s %10s %6lld:%s\n", lf ? unit_auto(a, sizeof a, lf, v.unit) : ".",
               lc ? unit_auto(b, sizeof b, lc, v.unit) : ".", (long long)ln, src.lines[ln]);
      }
      free(src.text);
      free(src.lines);
      k = e;
    }
    i = j;
  }
  free(sel);
  free(info);
  free(flat);
  free(cum);
  regfree(&rx);
  view_close(&v);
  return rc;
}
