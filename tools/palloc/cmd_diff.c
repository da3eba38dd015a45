/* cmd_diff.c - `palloc diff BASE NEW`: what grew between two heap profiles.
 *
 * The leak-hunting workflow: two snapshots of one long-running process, the later one minus the
 * earlier one, per function. Both profiles are read with the same sample type; functions are
 * matched by name (addresses differ between runs, names do not), so the figures equal pprof's
 * `-top -diff_base BASE NEW`. Rows are the functions whose flat or cum changed, largest growth
 * first (by flat, or by cum with --cum), shrinkage last. --fail-over turns the report into a
 * check: exit 1 when the total grew by more than the limit.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char help[] =
  "usage: palloc diff [-n N] [--sample-index TYPE] [--cum] [--fail-over BYTES] [--unit U]\n"
  "                   [VIEW OPTIONS] BASE NEW\n"
  "\n"
  "Shows what grew from profile BASE to profile NEW (e.g. two snapshots of one process taken\n"
  "with PALLOC_PROFILE_INTERVAL or PALLOC_PROFILE_SIGNAL), per function, largest growth\n"
  "first: flat+ is the change of what the function allocated itself, cum+ of what it and its\n"
  "callees allocated; then the NEW and BASE flat values. When either profile is sampled,\n"
  "\"noise\" is twice the standard error of flat+ (each side's flat/sqrt(samples behind it),\n"
  "Poisson counts) and a '*' before the function marks a change larger than that: one that\n"
  "sampling alone would produce less than 5% of the time.\n"
  "\n"
  "  -n, --nodes N          show the first N rows only\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "                         (default: inuse_space, what is still allocated)\n"
  "  -c, --cum              sort by the growth of cum instead of flat\n"
  "  -f, --fail-over B      exit 1 if the total grew by more than B (512, 64k, 10MiB ...)\n"
  "  -u, --unit U           print bytes in unit U (B, kB, MB, GB, TB) instead of choosing one\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "Exit status: 0 ok, 1 unreadable profile or growth over the --fail-over limit, 2 usage.\n";

typedef struct {
  const char *name;
  int64_t bflat, bcum, nflat, ncum;
  double bvar, nvar;  /* variance of bflat and nflat (flat^2 / samples), 0 if exact */
} row_t;

static bool by_cum;

static int cmp_rows(const void *a, const void *b) {
  const row_t *x = a, *y = b;
  int64_t dx = by_cum ? x->ncum - x->bcum : x->nflat - x->bflat;
  int64_t dy = by_cum ? y->ncum - y->bcum : y->nflat - y->bflat;
  if (dx != dy) return dx > dy ? -1 : 1;
  int64_t ex = by_cum ? x->nflat - x->bflat : x->ncum - x->bcum;
  int64_t ey = by_cum ? y->nflat - y->bflat : y->ncum - y->bcum;
  if (ex != ey) return ex > ey ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const row_t *)a)->name, ((const row_t *)b)->name);
}

/* One row per function of v, sorted by name. */
static row_t *rows_of(const view_t *v, bool is_new) {
  int64_t *flat = xmalloc((v->nnodes + 1) * sizeof *flat);
  int64_t *cum = xmalloc((v->nnodes + 1) * sizeof *cum);
  view_flat_cum(v, flat, cum);
  double *nraw = xcalloc(v->nnodes + 1, sizeof *nraw);
  if (v->err_cvi >= 0) {
    uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
    for (size_t i = 0; i < v->p->n_sample; i++) {
      const Perftools__Profiles__Sample *s = v->p->sample[i];
      if (s->value[v->vi] != 0 && view_stack(v, s, stack, NULL) > 0)
        nraw[stack[0]] += view_raw_samples(v, s);
    }
    free(stack);
  }
  row_t *r = xcalloc(v->nnodes + 1, sizeof *r);
  for (uint32_t i = 0; i < v->nnodes; i++) {
    r[i].name = v->names[i];
    /* a row without samples behind a nonzero value (cannot happen in palloc's profiles) counts
     * as one sample: its whole value is noise */
    double var = v->err_cvi < 0 || flat[i] == 0 ? 0.0
                 : (double)flat[i] * (double)flat[i] / (nraw[i] > 1.0 ? nraw[i] : 1.0);
    if (is_new) r[i].nflat = flat[i], r[i].ncum = cum[i], r[i].nvar = var;
    else r[i].bflat = flat[i], r[i].bcum = cum[i], r[i].bvar = var;
  }
  free(nraw);
  qsort(r, v->nnodes, sizeof *r, by_name);
  free(flat);
  free(cum);
  return r;
}

/* A change beyond twice its standard error (exact profiles: any change). */
static bool significant(const row_t *r) {
  double d = (double)(r->nflat - r->bflat);
  return d * d > 4.0 * (r->bvar + r->nvar);
}

static const char *signed_fmt(char *buf, size_t n, int64_t v, unit_t u) {
  char tmp[48];
  unit_format(tmp, sizeof tmp, v, u);
  snprintf(buf, n, "%s%s", v > 0 ? "+" : "", tmp);
  return buf;
}

int cmd_diff(int argc, char **argv) {
  static const struct option opts[] = {
    {"nodes", required_argument, 0, 'n'}, {"sample-index", required_argument, 0, 'i'},
    {"cum", no_argument, 0, 'c'}, {"fail-over", required_argument, 0, 'f'},
    {"unit", required_argument, 0, 'u'}, {"help", no_argument, 0, 'h'}, VIEW_LONG_OPTIONS,
    {0, 0, 0, 0}};
  view_opts_t vo = {0};
  long limit = 0;
  int64_t fail_over = -1;
  const char *si = "inuse_space";
  unit_t forced = {1.0, "B"};
  bool has_unit = false;
  int c;
  optind = 0;
  opterr = 0;
  by_cum = false;
  while ((c = getopt_long(argc, argv, "+n:i:cf:u:h", opts, NULL)) != -1) {
    switch (c) {
    case 'n': {
      char *end;
      limit = strtol(optarg, &end, 10);
      if (*end || limit <= 0) return usage_error("diff", "-n needs a positive number, not '%s'", optarg);
      break;
    }
    case 'i':
      if (!parse_sample_index("diff", optarg)) return EXIT_USAGE;
      si = optarg;
      break;
    case 'c': by_cum = true; break;
    case 'f':
      if ((fail_over = parse_bytes(optarg)) < 0)
        return usage_error("diff", "--fail-over needs a size (4096, 64k, 10MiB), not '%s'", optarg);
      break;
    case 'u':
      if (!unit_named(optarg, &forced))
        return usage_error("diff", "unknown unit '%s' (B, kB, MB, GB, TB, PB)", optarg);
      has_unit = true;
      break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "diff", c, optarg);
      if (r < 0) return usage_error("diff", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  if (argc - optind != 2) return usage_error("diff", "two profiles expected: BASE NEW");
  view_t base, cur;
  vo.sample_index = si;
  int rc = view_open_opts(&base, argv[optind], &vo);
  if (rc) return rc;
  if ((rc = view_open_opts(&cur, argv[optind + 1], &vo)) != 0) {
    view_close(&base);
    return rc;
  }
  if (strcmp(base.unit, cur.unit) != 0) {
    fprintf(stderr, "palloc: %s: %s is in %s but %s has it in %s\n", cur.path, si, cur.unit,
            base.path, base.unit);
    view_close(&base);
    view_close(&cur);
    return EXIT_CHECK;
  }
  row_t *b = rows_of(&base, false), *n = rows_of(&cur, true);
  row_t *all = xcalloc(base.nnodes + cur.nnodes + 1, sizeof *all);
  size_t nb = base.nnodes, nn = cur.nnodes, i = 0, j = 0, k = 0;
  while (i < nb || j < nn) {
    int cmp = i == nb ? 1 : j == nn ? -1 : strcmp(b[i].name, n[j].name);
    row_t r = cmp < 0 ? b[i] : n[j];
    if (cmp == 0) r.bflat = b[i].bflat, r.bcum = b[i].bcum, r.bvar = b[i].bvar;
    if (cmp <= 0) i++;
    if (cmp >= 0) j++;
    if (r.nflat != r.bflat || r.ncum != r.bcum) all[k++] = r;
  }
  qsort(all, k, sizeof *all, cmp_rows);
  size_t shown = limit > 0 && (size_t)limit < k ? (size_t)limit : k;
  int64_t growth = cur.total - base.total, minv = 0;
  for (size_t r = 0; r < shown; r++) {
    int64_t d = llabs(all[r].nflat - all[r].bflat);
    if (d == 0) d = llabs(all[r].ncum - all[r].bcum);
    if (d > 0 && (minv == 0 || d < minv)) minv = d;
  }
  int64_t big = base.total > cur.total ? base.total : cur.total;
  unit_t u = has_unit && unit_is_bytes(cur.unit) ? forced : unit_select(cur.unit, minv, big);
  char s1[64], s2[64], s3[64], s4[64], p[48];
  printf("Type: %s\n", cur.type);
  printf("Base: %s, total %s\n", base.path, unit_auto(s1, sizeof s1, base.total, cur.unit));
  printf("New:  %s, total %s\n", cur.path, unit_auto(s1, sizeof s1, cur.total, cur.unit));
  snprintf(p, sizeof p, base.total ? "%+.1f%%" : "new", base.total ? 100.0 * (double)growth / (double)base.total : 0.0);
  printf("Growth: %s%s (%s)\n", growth > 0 ? "+" : "", unit_auto(s1, sizeof s1, growth, cur.unit), p);
  printf("%zu function%s changed%s, sorted by %s growth\n", k, k == 1 ? "" : "s",
         shown < k ? (snprintf(s4, sizeof s4, ", showing %zu", shown), s4) : "", by_cum ? "cum" : "flat");
  bool sampled = base.err_cvi >= 0 || cur.err_cvi >= 0;
  if (sampled) {
    size_t sig = 0;
    for (size_t r = 0; r < k; r++) sig += significant(&all[r]);
    printf("%zu of them by more than their noise (*)\n", sig);
    printf("%10s %10s %10s %10s %10s  %s\n", "flat+", "cum+", "new flat", "base flat", "noise",
           "function");
  } else {
    printf("%10s %10s %10s %10s  %s\n", "flat+", "cum+", "new flat", "base flat", "function");
  }
  for (size_t r = 0; r < shown; r++) {
    printf("%10s %10s %10s %10s ", signed_fmt(s1, sizeof s1, all[r].nflat - all[r].bflat, u),
           signed_fmt(s2, sizeof s2, all[r].ncum - all[r].bcum, u),
           unit_format(s3, sizeof s3, all[r].nflat, u), unit_format(s4, sizeof s4, all[r].bflat, u));
    if (sampled) {
      double noise = 2.0 * sqrt(all[r].bvar + all[r].nvar);
      char t[48];
      snprintf(s1, sizeof s1, "\u00b1%s", unit_format(t, sizeof t, (int64_t)(noise + 0.5), u));
      printf("%11s %c ", s1, significant(&all[r]) ? '*' : ' ');
    } else {
      printf(" ");
    }
    printf("%s\n", all[r].name);
  }
  free(all);
  free(b);
  free(n);
  rc = 0;
  if (fail_over >= 0 && growth > fail_over) {
    fprintf(stderr, "palloc diff: %s grew by %s, more than the limit of %s\n", cur.type,
            unit_auto(s1, sizeof s1, growth, cur.unit), unit_auto(s2, sizeof s2, fail_over, "bytes"));
    rc = EXIT_CHECK;
  }
  view_close(&base);
  view_close(&cur);
  return rc;
}
