/* cmd_peek.c - `palloc peek REGEX PROFILE`: who calls the matching functions and whom they
 * call, with the bytes through each edge (pprof -peek, the same table).
 *
 * As pprof's peek: no node is dropped (no 0.5% cutoff); nodes are sorted as in top (flat, or
 * cum with --cum, then name); for each node whose name matches REGEX, its callers (edge weight
 * and share of the node's cum), the node itself (flat, flat%, sum%, cum, cum%), then its callees.
 * An edge caller->callee weighs the samples in which the callee is called from the caller,
 * counted once per sample (recursion); it is "(inline)" if the callee was inlined into the caller
 * everywhere.
 */
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char help[] =
  "usage: palloc peek [--sample-index TYPE] [--cum] [--unit U] [VIEW OPTIONS] REGEX PROFILE\n"
  "\n"
  "For every function whose name matches REGEX (POSIX extended, anywhere in the name): its\n"
  "callers above it, with the bytes each one allocated through it and their share of its cum,\n"
  "then the function's own line (flat, flat%, sum%, cum, cum% as in top), then its callees\n"
  "with the bytes allocated through each. pprof -peek REGEX, row for row.\n"
  "\n"
  "  -i, --sample-index T   alloc_objects, alloc_space, inuse_objects or inuse_space\n"
  "  -c, --cum              order the functions by cum instead of flat\n"
  "  -u, --unit U           print bytes in unit U (B, kB, MB, GB, TB) instead of choosing one\n"
  "  -h, --help             this help\n"
  "@VIEW@"
  "\n"
  "Exit status: 0 ok, 1 unreadable profile or no function matches, 2 usage error.\n";

typedef struct {
  uint32_t from, to;
  int64_t w;
  uint8_t notinline; /* 1 once an occurrence was not inlined */
  uint32_t seen;     /* sample + 1 that last counted it */
} edge_t;

typedef struct {
  edge_t *e;
  size_t len, cap;
  uint32_t *slots; /* index + 1 */
  size_t nslots;
} edges_t;

static size_t edge_slot(const edges_t *t, uint32_t from, uint32_t to) {
  uint64_t k = ((uint64_t)from << 32 | to) * 0x9e3779b97f4a7c15ull;
  size_t i = (size_t)(k >> 17) & (t->nslots - 1);
  while (t->slots[i]) {
    const edge_t *e = &t->e[t->slots[i] - 1];
    if (e->from == from && e->to == to) break;
    i = (i + 1) & (t->nslots - 1);
  }
  return i;
}

static edge_t *edge_get(edges_t *t, uint32_t from, uint32_t to) {
  if ((t->len + 1) * 2 > t->nslots) {
    free(t->slots);
    t->nslots = t->nslots ? t->nslots * 2 : 1024;
    t->slots = xcalloc(t->nslots, sizeof *t->slots);
    for (size_t k = 0; k < t->len; k++) t->slots[edge_slot(t, t->e[k].from, t->e[k].to)] = (uint32_t)k + 1;
  }
  size_t i = edge_slot(t, from, to);
  if (t->slots[i]) return &t->e[t->slots[i] - 1];
  if (t->len == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 256;
    t->e = xrealloc(t->e, t->cap * sizeof *t->e);
  }
  t->e[t->len] = (edge_t){.from = from, .to = to};
  t->slots[i] = (uint32_t)t->len + 1;
  return &t->e[t->len++];
}

static const view_t *sv;
static const int64_t *skey, *ssecond;

static int64_t abs64(int64_t x) { return x < 0 ? -x : x; }

static int node_order(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  if (abs64(skey[x]) != abs64(skey[y])) return abs64(skey[x]) > abs64(skey[y]) ? -1 : 1;
  int c = strcmp(sv->names[x], sv->names[y]);
  if (c) return c;
  return abs64(ssecond[x]) > abs64(ssecond[y]) ? -1 : abs64(ssecond[x]) < abs64(ssecond[y]);
}

/* pprof's edgeList order: weight, then source name, then destination name */
static int edge_order(const void *a, const void *b) {
  const edge_t *x = *(edge_t *const *)a, *y = *(edge_t *const *)b;
  if (x->w != y->w) return abs64(x->w) > abs64(y->w) ? -1 : 1;
  int c = strcmp(sv->names[x->from], sv->names[y->from]);
  return c ? c : strcmp(sv->names[x->to], sv->names[y->to]);
}

int cmd_peek(int argc, char **argv) {
  static const struct option opts[] = {
    {"sample-index", required_argument, 0, 'i'}, {"cum", no_argument, 0, 'c'},
    {"unit", required_argument, 0, 'u'}, {"help", no_argument, 0, 'h'}, VIEW_LONG_OPTIONS,
    {0, 0, 0, 0}};
  view_opts_t vo = {0};
  bool cum_sort = false, has_unit = false;
  unit_t forced = {1.0, "B"};
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+i:cu:h", opts, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_sample_index("peek", optarg)) return EXIT_USAGE;
      vo.sample_index = optarg;
      break;
    case 'c': cum_sort = true; break;
    case 'u':
      if (!unit_named(optarg, &forced))
        return usage_error("peek", "unknown unit '%s' (B, kB, MB, GB, TB, PB)", optarg);
      has_unit = true;
      break;
    case 'h': print_help(help); return 0;
    default: {
      int r = view_option(&vo, "peek", c, optarg);
      if (r < 0) return usage_error("peek", "unknown option '%s'", argv[optind - 1]);
      if (r > 0) return r;
    }
    }
  }
  regex_t rx;
  view_t v;
  int rc = view_open_regex(&v, &rx, "peek", argc, argv, &vo);
  if (rc) return rc;
  int64_t *flat = xmalloc((v.nnodes + 1) * sizeof *flat), *cum = xmalloc((v.nnodes + 1) * sizeof *cum);
  view_flat_cum(&v, flat, cum);
  edges_t E = {0};
  uint32_t *stack = xmalloc(v.maxdepth * sizeof *stack);
  uint8_t *inl = xmalloc(v.maxdepth);
  for (size_t i = 0; i < v.p->n_sample; i++) {
    int64_t w = v.p->sample[i]->value[v.vi];
    if (w == 0) continue;
    size_t n = view_stack(&v, v.p->sample[i], stack, inl);
    for (size_t k = n; k-- > 1;) {
      if (stack[k] == stack[k - 1]) continue;
      edge_t *e = edge_get(&E, stack[k], stack[k - 1]);
      if (e->seen == (uint32_t)i + 1) continue;
      e->seen = (uint32_t)i + 1;
      e->w += w;
      if (!inl[k - 1]) e->notinline = 1;
    }
  }
  free(stack);
  free(inl);
  uint32_t *rows = xmalloc((v.nnodes + 1) * sizeof *rows);
  size_t nrows = 0;
  int64_t minv = 0, flat_sum = 0;
  for (uint32_t i = 0; i < v.nnodes; i++) {
    if (flat[i] == 0 && cum[i] == 0) continue;
    rows[nrows++] = i;
    int64_t m = abs64(flat[i]) ? abs64(flat[i]) : abs64(cum[i]);
    if (m > 0 && (minv == 0 || m < minv)) minv = m;
    flat_sum += flat[i];
  }
  sv = &v;
  skey = cum_sort ? cum : flat;
  ssecond = cum_sort ? flat : cum;
  qsort(rows, nrows, sizeof *rows, node_order);
  unit_t u = has_unit && unit_is_bytes(v.unit) ? forced : unit_select(v.unit, minv, v.total);
  /* edges into and out of each node, as index lists */
  edge_t **in = xmalloc((E.len + 1) * sizeof *in), **out = xmalloc((E.len + 1) * sizeof *out);
  /* edges grouped by destination and by source (counting sort), so that each node's callers
   * and callees are found without a scan of all edges */
  uint32_t *in_start = xcalloc(v.nnodes + 2, sizeof *in_start);
  uint32_t *out_start = xcalloc(v.nnodes + 2, sizeof *out_start);
  uint32_t *by_to = xmalloc((E.len + 1) * sizeof *by_to), *by_from = xmalloc((E.len + 1) * sizeof *by_from);
  for (size_t k = 0; k < E.len; k++) in_start[E.e[k].to + 1]++, out_start[E.e[k].from + 1]++;
  for (uint32_t k = 0; k < v.nnodes; k++) in_start[k + 1] += in_start[k], out_start[k + 1] += out_start[k];
  {
    uint32_t *ti = xmalloc((v.nnodes + 1) * sizeof *ti), *fi = xmalloc((v.nnodes + 1) * sizeof *fi);
    memcpy(ti, in_start, v.nnodes * sizeof *ti);
    memcpy(fi, out_start, v.nnodes * sizeof *fi);
    for (size_t k = 0; k < E.len; k++) by_to[ti[E.e[k].to]++] = (uint32_t)k, by_from[fi[E.e[k].from]++] = (uint32_t)k;
    free(ti);
    free(fi);
  }
  char a[64], b[64], d[64], e[64], f[64];
  static const char sep[] = "----------------------------------------------------------+-------------";
  view_print_header(&v, stdout);
  view_print_filters(&v, stdout);
  percent(b, sizeof b, flat_sum, v.total);
  printf("Showing nodes accounting for %s, %s of %s total\n", unit_format(a, sizeof a, flat_sum, u),
         b + strspn(b, " "), unit_format(d, sizeof d, v.total, u));
  printf("%s\n      flat  flat%%   sum%%        cum   cum%%   calls calls%% + context \t \t \n", sep);
  int64_t sum = 0;
  size_t matched = 0;
  for (size_t r = 0; r < nrows; r++) {
    uint32_t x = rows[r];
    if (regexec(&rx, v.names[x], 0, NULL, 0) != 0) continue;
    matched++;
    size_t ni = 0, no = 0;
    for (uint32_t k = in_start[x]; k < in_start[x + 1]; k++) in[ni++] = &E.e[by_to[k]];
    for (uint32_t k = out_start[x]; k < out_start[x + 1]; k++) out[no++] = &E.e[by_from[k]];
    qsort(in, ni, sizeof *in, edge_order);
    qsort(out, no, sizeof *out, edge_order);
    printf("%s\n", sep);
    for (size_t k = 0; k < ni; k++)
      printf("%50s %s |   %s%s\n", unit_format(a, sizeof a, in[k]->w, u),
             percent(b, sizeof b, in[k]->w, cum[x]), v.names[in[k]->from],
             in[k]->notinline ? "" : " (inline)");
    sum += flat[x];
    printf("%10s %s %s %10s %s                | %s\n", unit_format(a, sizeof a, flat[x], u),
           percent(b, sizeof b, flat[x], v.total), percent(d, sizeof d, sum, v.total),
           unit_format(e, sizeof e, cum[x], u), percent(f, sizeof f, cum[x], v.total), v.names[x]);
    for (size_t k = 0; k < no; k++)
      printf("%50s %s |   %s%s\n", unit_format(a, sizeof a, out[k]->w, u),
             percent(b, sizeof b, out[k]->w, cum[x]), v.names[out[k]->to],
             out[k]->notinline ? "" : " (inline)");
  }
  if (nrows > 0) printf("%s\n", sep);
  rc = 0;
  if (matched == 0) {
    fprintf(stderr, "palloc: %s: no function matches '%s'\n", v.path, argv[optind]);
    rc = EXIT_CHECK;
  }
  free(in);
  free(out);
  free(in_start);
  free(out_start);
  free(by_to);
  free(by_from);
  free(E.e);
  free(E.slots);
  free(rows);
  free(flat);
  free(cum);
  regfree(&rx);
  view_close(&v);
  return rc;
}
