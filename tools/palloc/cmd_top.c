/* cmd_top.c - `palloc top`: the pprof-style table of the functions that hold the most memory.
 *
 * Same figures and layout as upstream `pprof -top` (flat, flat%, sum%, cum, cum%, name), built
 * the same way: weights from view_flat_cum, nodes whose cum is under 0.5% of the total dropped
 * (pprof's default nodefraction; --all keeps them), sorted by flat (or cum with --cum) then by
 * name, one unit for the whole table. Percentages are of the total over all samples, so sum%
 * of a trimmed table stays below 100%.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char help[] =
  "usage: palloc top [-n N] [--sample-index TYPE] [--cum] [--all] [--unit U] [VIEW OPTIONS]\n"
  "                  PROFILE\n"
  "\n"
  "Prints the functions that allocated the most (pprof -top): flat is what a function\n"
  "allocated itself, cum what it and its callees allocated. Values are in B, kB, MB, GB\n"
  "(binary multiples), percentages of the profile's total. In a sampled profile, the ±\n"
  "column is flat's standard error (flat/sqrt(samples behind the row), a Poisson count):\n"
  "two rows whose flat differ by less than about twice that are not told apart by the\n"
  "profile. An exact profile (PALLOC_SAMPLE_RATE=1) has no such column.\n"
  "\n"
  "  -n, --nodes N          show the first N rows only\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "                         (default: the profile's default type, else its last: inuse_space)\n"
  "  -c, --cum              sort by cum instead of flat\n"
  "  -a, --all              keep rows under 0.5% of the total (pprof -nodefraction=0)\n"
  "  -u, --unit U           print bytes in unit U (B, kB, MB, GB, TB) instead of choosing one\n"
  "      --lifetimes        a lifetime profile (PALLOC_LIFETIME_PROFILE): lifetimes by stack\n"
  "      --temporaries      a lifetime profile: the bytes freed within its threshold, by stack\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "PROFILE is a pprof profile.proto file, gzip-compressed or not (palloc's or any heap\n"
  "profile). Exit status: 0 ok, 1 unreadable or not a heap profile, 2 usage error.\n";

static const view_t *sort_view;
static const int64_t *sort_key, *sort_second;

static int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

static int by_key(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  int64_t kx = abs64(sort_key[x]), ky = abs64(sort_key[y]);
  if (kx != ky) return kx > ky ? -1 : 1;
  int c = strcmp(sort_view->names[x], sort_view->names[y]);
  if (c) return c;
  int64_t sx = abs64(sort_second[x]), sy = abs64(sort_second[y]);
  return sx > sy ? -1 : sx < sy;
}

/* pprof's inline labels: an edge caller->callee is inline if every time it occurs the callee
 * was inlined into the caller (same location); a row is "(inline)" if all its incoming edges
 * are inline, "(partial-inline)" if some are. Edges are those of the shown rows only (pprof
 * rebuilds its graph after trimming, so callers hidden by the cutoff are skipped over), and an
 * edge counts only at its first occurrence in a sample. An edge whose weight (the values of the
 * samples it occurs in) is under edge_cutoff is no edge (pprof's TrimLowFrequencyEdges, at
 * -edgefraction 0.001 of the graph's total: a small sample's caller then gives no label). */
typedef struct {
  uint64_t key;    /* (caller << 32 | callee) + 1; 0: empty */
  int64_t weight;  /* the values of the samples the edge occurs in */
  uint32_t seen;   /* sample + 1 that last counted the edge */
  uint8_t how;     /* 1 inline so far, 2 not inline at some occurrence */
} edge_t;

/* The slot of key in an open-addressed table of cap (a power of two) edges: its own or empty. */
static edge_t *edge_slot(edge_t *e, size_t cap, uint64_t key) {
  size_t h = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
  while (e[h].key && e[h].key != key) h = (h + 1) & (cap - 1);
  return &e[h];
}

static void inline_labels(const view_t *v, const bool *kept, int64_t edge_cutoff, uint8_t *label) {
  size_t cap = 1024, used = 0;
  edge_t *edges = xcalloc(cap, sizeof *edges);
  uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
  uint8_t *inl = xmalloc(v->maxdepth);
  for (size_t i = 0; i < v->p->n_sample; i++) {
    if (v->p->sample[i]->value[v->vi] == 0) continue;
    size_t n = view_stack(v, v->p->sample[i], stack, inl);
    uint32_t parent = UINT32_MAX;
    for (size_t k = n; k-- > 0;) {
      uint32_t node = stack[k];
      if (!kept[node]) continue;
      if (parent != UINT32_MAX && parent != node) {
        if ((used + 1) * 2 > cap) {
          edge_t *old = edges;
          size_t ocap = cap;
          cap *= 2;
          edges = xcalloc(cap, sizeof *edges);
          for (size_t j = 0; j < ocap; j++)
            if (old[j].key) *edge_slot(edges, cap, old[j].key) = old[j];
          free(old);
        }
        uint64_t key = ((uint64_t)parent << 32 | node) + 1;
        edge_t *e = edge_slot(edges, cap, key);
        if (!e->key) e->key = key, e->how = 1, used++;
        /* like pprof, only an edge's first occurrence in a sample counts (recursion) */
        if (e->seen != (uint32_t)i + 1) {
          e->seen = (uint32_t)i + 1;
          e->weight += v->p->sample[i]->value[v->vi];
          if (!inl[k]) e->how = 2;
        }
      }
      parent = node;
    }
  }
  for (size_t j = 0; j < cap; j++)
    if (edges[j].key && abs64(edges[j].weight) >= edge_cutoff)
      label[(uint32_t)((edges[j].key - 1) & 0xffffffffu)] |= edges[j].how; /* 1 inline, 2 not */
  free(edges);
  free(stack);
  free(inl);
}

/* Per node, the number of samples actually taken behind its flat value (view_raw_samples). */
static double *flat_samples(const view_t *v) {
  double *n = xcalloc(v->nnodes + 1, sizeof *n);
  uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
  for (size_t i = 0; i < v->p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = v->p->sample[i];
    if (s->value[v->vi] == 0 || view_stack(v, s, stack, NULL) == 0) continue;
    n[stack[0]] += view_raw_samples(v, s);
  }
  free(stack);
  return n;
}

/* "±12.5kB": value/sqrt(samples), in the table's unit; "±?" for a value without samples. */
static const char *error_format(char *buf, size_t len, int64_t value, double samples, unit_t u) {
  if (value == 0) return snprintf(buf, len, "-"), buf;
  if (samples <= 0) return snprintf(buf, len, "\u00b1?"), buf;
  double e = (double)(value < 0 ? -value : value) / sqrt(samples);
  char tmp[48];
  unit_format(tmp, sizeof tmp, (int64_t)(e + 0.5), u);
  snprintf(buf, len, "\u00b1%s", tmp);
  return buf;
}

bool parse_sample_index(const char *cmd, const char *s) {
  static const char *ok[] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
  for (size_t i = 0; i < 4; i++)
    if (strcmp(s, ok[i]) == 0) return true;
  usage_error(cmd, "unknown sample index '%s' (alloc_objects, alloc_space, inuse_objects, "
              "inuse_space)", s);
  return false;
}

int cmd_top(int argc, char **argv) {
  static const struct option opts[] = {
    {"nodes", required_argument, 0, 'n'}, {"sample-index", required_argument, 0, 'i'},
    {"cum", no_argument, 0, 'c'}, {"all", no_argument, 0, 'a'}, {"unit", required_argument, 0, 'u'}, {"help", no_argument, 0, 'h'},
    VIEW_LONG_OPTIONS, {0, 0, 0, 0}};
  view_opts_t vo = {0};
  long limit = 0;
  const char *si = NULL;
  bool cum_sort = false, all = false;
  unit_t forced = {1.0, "B"};
  bool has_unit = false;
  int c;
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) /* a lifetime profile's views */
    if (strcmp(argv[i], "--lifetimes") == 0 || strcmp(argv[i], "--temporaries") == 0)
      return cmd_lifetimes(argc, argv);
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+n:i:cau:h", opts, NULL)) != -1) {
    switch (c) {
    case 'n': {
      char *end;
      limit = strtol(optarg, &end, 10);
      if (*end || limit <= 0) return usage_error("top", "-n needs a positive number, not '%s'", optarg);
      break;
    }
    case 'i':
      if (!parse_sample_index("top", optarg)) return EXIT_USAGE;
      si = optarg;
      break;
    case 'c': cum_sort = true; break;
    case 'a': all = true; break;
    case 'u':
      if (!unit_named(optarg, &forced))
        return usage_error("top", "unknown unit '%s' (B, kB, MB, GB, TB, PB)", optarg);
      has_unit = true;
      break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "top", c, optarg);
      if (r < 0) return usage_error("top", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  view_t v;
  vo.sample_index = si;
  if (argc - optind != 1)
    return usage_error("top", argc == optind ? "missing PROFILE" : "one PROFILE expected");
  int rc = view_open_opts(&v, argv[optind], &vo);
  if (rc) return rc;

  int64_t *flat = xmalloc((v.nnodes + 1) * sizeof *flat);
  int64_t *cum = xmalloc((v.nnodes + 1) * sizeof *cum);
  view_flat_cum(&v, flat, cum);
  double *nraw = v.err_cvi >= 0 ? flat_samples(&v) : NULL;
  /* pprof drops nodes under 0.5% of the flat sum of the (filtered) graph, but its "Dropped"
   * line shows 0.5% of the profile's total: the two differ under --focus/--ignore/--hide */
  int64_t graph_total = 0;
  for (uint32_t i = 0; i < v.nnodes; i++) graph_total += flat[i];
  int64_t cutoff = all ? 0 : abs64((int64_t)((double)graph_total * 0.005));
  int64_t shown_cutoff = abs64((int64_t)((double)v.total * 0.005));
  uint32_t *rows = xmalloc((v.nnodes + 1) * sizeof *rows);
  size_t n = 0, nonzero = 0;
  for (uint32_t i = 0; i < v.nnodes; i++) {
    if (flat[i] == 0 && cum[i] == 0) continue;
    nonzero++;
    if (abs64(cum[i]) >= cutoff) rows[n++] = i;
  }
  size_t dropped = nonzero - n, orig = n;
  sort_view = &v;
  sort_key = cum_sort ? cum : flat;
  sort_second = cum_sort ? flat : cum;
  qsort(rows, n, sizeof *rows, by_key);
  if (limit > 0 && (size_t)limit < n) n = (size_t)limit;

  bool *kept = xcalloc(v.nnodes + 1, sizeof *kept);
  uint8_t *label = xcalloc(v.nnodes + 1, 1);
  for (size_t k = 0; k < n; k++) kept[rows[k]] = true;
  inline_labels(&v, kept, abs64((int64_t)((double)graph_total * 0.001)), label);
  int64_t minv = 0, shown = 0;
  for (size_t k = 0; k < n; k++) {
    int64_t m = abs64(flat[rows[k]]) ? abs64(flat[rows[k]]) : abs64(cum[rows[k]]);
    if (m > 0 && (minv == 0 || m < minv)) minv = m;
    shown += flat[rows[k]];
  }
  unit_t u = has_unit && unit_is_bytes(v.unit) ? forced : unit_select(v.unit, minv, v.total);
  char a[64], b[64], d[64], e[64], f[64];
  view_print_header(&v, stdout);
  view_print_filters(&v, stdout);
  percent(b, sizeof b, shown, v.total);
  printf("Showing nodes accounting for %s, %s of %s total\n", unit_format(a, sizeof a, shown, u),
         b + strspn(b, " "), unit_format(d, sizeof d, v.total, u));
  if (dropped > 0 && v.total != 0)
    printf("Dropped %zu node%s (cum <= %s)\n", dropped, dropped == 1 ? "" : "s",
           unit_format(a, sizeof a, shown_cutoff, u));
  if (n > 0 && n < orig) printf("Showing top %zu nodes out of %zu\n", n, orig);
  if (nraw) printf("%10s %11s %5s%% %5s%% %10s %5s%%\n", "flat", "\u00b1flat", "flat", "sum", "cum", "cum");
  else printf("%10s %5s%% %5s%% %10s %5s%%\n", "flat", "flat", "sum", "cum", "cum");
  int64_t sum = 0;
  for (size_t k = 0; k < n; k++) {
    uint32_t i = rows[k];
    sum += flat[i];
    printf("%10s ", unit_format(a, sizeof a, flat[i], u));
    if (nraw) printf("%11s ", error_format(a, sizeof a, flat[i], nraw[i], u));
    printf("%s %s %10s %s  %s%s\n",
           percent(b, sizeof b, flat[i], v.total), percent(d, sizeof d, sum, v.total),
           unit_format(e, sizeof e, cum[i], u), percent(f, sizeof f, cum[i], v.total), v.names[i],
           label[i] == 1 ? " (inline)" : label[i] == 3 ? " (partial-inline)" : "");
  }
  free(nraw);
  free(kept);
  free(label);
  free(rows);
  free(flat);
  free(cum);
  view_close(&v);
  return 0;
}
