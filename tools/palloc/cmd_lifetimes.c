/* cmd_lifetimes.c - `palloc top --lifetimes` and `palloc top --temporaries`: the lifetime
 * profile (alloc/lifetime.c: PALLOC_LIFETIME_PROFILE, palloc_lifetime_profile_write) by stack.
 *
 * --lifetimes: per allocation stack, the freed blocks (count, bytes), their lifetimes (mean,
 * standard deviation, min, max) and the blocks still live when the profile was written
 * (censored: their count, bytes and mean age so far), shortest mean lifetime first.
 * --temporaries: per stack, the bytes of the blocks freed within the profile's threshold
 * (PALLOC_TEMP_THRESHOLD at run time, 1 ms by default; the profile's comment says which), with
 * their 95% interval (proto/poisson.h; exact at rate 1), largest first: the heap traffic that a
 * stack buffer or an arena would absorb.
 *
 * Samples of one stack (one per size class) are summed: counts and bytes add; the mean lifetime
 * is the summed lifetime / the summed freed objects; the standard deviation pools the samples'
 * (weighted by their freed objects); min and max are the extremes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "poisson.h"

enum { F_OBJ, F_SPACE, F_LIFE, T_OBJ, T_SPACE, L_OBJ, L_SPACE, L_AGE, NV };
static const char *const want[NV] = {"freed_objects", "freed_space", "lifetime", "temp_objects",
                                     "temp_space", "live_objects", "live_space", "live_age"};

typedef struct {
  uint32_t *stk;
  size_t n;
  double v[NV];
  double w, wm, sq;   /* over samples with lifetimes: sums of freed, freed * mean, and
                       * freed * (stddev^2 + mean^2), for the pooled standard deviation */
  double min, max;
  bool has_minmax;
  palloc_est_t temp;  /* temp_space's estimate, summed */
} site_t;

static const site_t *sort_sites;
static bool sort_temp;
/* The mean lifetime of a stack's freed blocks: from its samples' lifetime_mean labels (exact
 * means of the sampled blocks), weighted by what each sample stands for; without labels, the
 * lifetime total over the freed count, which rounds: each is unsampled on its own, and with few
 * samples their ratio was seen 1.6x off the mean (a mean of 150 us where min = max = 95 us). */
static double mean_of(const site_t *s) {
  if (s->w > 0) return s->wm / s->w;
  return s->v[F_OBJ] > 0 ? s->v[F_LIFE] / s->v[F_OBJ] : -1;
}
static int by_rank(const void *a, const void *b) {
  const site_t *x = &sort_sites[*(const uint32_t *)a], *y = &sort_sites[*(const uint32_t *)b];
  if (sort_temp) return x->v[T_SPACE] > y->v[T_SPACE] ? -1 : x->v[T_SPACE] < y->v[T_SPACE];
  /* freed stacks by mean lifetime, shortest first; never-freed (censored only) last */
  double mx = mean_of(x), my = mean_of(y);
  if ((mx < 0) != (my < 0)) return mx < 0 ? 1 : -1;
  if (mx != my) return mx < my ? -1 : 1;
  return x->v[L_SPACE] > y->v[L_SPACE] ? -1 : x->v[L_SPACE] < y->v[L_SPACE];
}

static const char *dur(char *buf, size_t n, double ns) {
  if (ns < 0) snprintf(buf, n, "-");
  else if (ns < 1e3) snprintf(buf, n, "%.0fns", ns);
  else if (ns < 1e6) snprintf(buf, n, "%.1fus", ns / 1e3);
  else if (ns < 1e9) snprintf(buf, n, "%.1fms", ns / 1e6);
  else snprintf(buf, n, "%.2fs", ns / 1e9);
  return buf;
}

static int64_t label_num(const palloc_pb_profile_t *p, const Perftools__Profiles__Sample *s,
                         const char *key, bool *found) {
  for (size_t i = 0; i < s->n_label; i++)
    if (strcmp(p->string_table[s->label[i]->key], key) == 0) {
      *found = true;
      return s->label[i]->num;
    }
  *found = false;
  return 0;
}

int cmd_lifetimes(int argc, char **argv) {
  static const struct option opts[] = {
    {"lifetimes", no_argument, 0, 'L'}, {"temporaries", no_argument, 0, 'T'},
    {"nodes", required_argument, 0, 'n'}, {"depth", required_argument, 0, 'd'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  bool temp = false;
  long limit = 0, depth = 4;
  int c;
  optind = 0;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+LTn:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'L': temp = false; break;
    case 'T': temp = true; break;
    case 'n':
    case 'd': {
      char *end;
      long x = strtol(optarg, &end, 10);
      if (*end || x <= 0) return usage_error("top", "-%c needs a positive number, not '%s'", c, optarg);
      *(c == 'n' ? &limit : &depth) = x;
      break;
    }
    case 'h':
      fputs("usage: palloc top --lifetimes|--temporaries [-n N] [--depth D] LIFETIME_PROFILE\n"
            "\n"
            "Reads a lifetime profile (PALLOC_LIFETIME_PROFILE). --lifetimes: per stack, freed\n"
            "blocks and their lifetimes (mean, stddev, min, max), and the blocks still live\n"
            "(censored), shortest mean lifetime first. --temporaries: the bytes freed within\n"
            "the profile's threshold (PALLOC_TEMP_THRESHOLD, 1ms), largest first, +- its 95%\n"
            "interval. Stacks show D frames (default 4), leaf first.\n", stdout);
      return 0;
    default: return usage_error("top", "unknown option '%s'", argv[optind - 1]);
    }
  }
  view_t v;
  int rc = view_open_operand(&v, "top", argc, argv, "freed_space");
  if (rc) return rc;
  const palloc_pb_profile_t *p = v.p;
  int idx[NV];
  for (int k = 0; k < NV; k++) {
    idx[k] = -1;
    for (size_t i = 0; i < p->n_sample_type; i++)
      if (strcmp(p->string_table[p->sample_type[i]->type], want[k]) == 0) idx[k] = (int)i;
    if (idx[k] < 0) {
      fprintf(stderr, "palloc: %s: not a lifetime profile (no sample type %s)\n", v.path, want[k]);
      view_close(&v);
      return EXIT_CHECK;
    }
  }
  int64_t rate = p->period;
  site_t *sites = xcalloc(p->n_sample + 1, sizeof *sites);
  size_t ns = 0;
  uint32_t *stack = xmalloc((v.maxdepth + 1) * sizeof *stack);
  /* stack -> site, hashed: a scan of the sites per sample was quadratic (100k stacks: minutes) */
  size_t nslots = 16;
  while (nslots < 2 * (p->n_sample + 1)) nslots *= 2;
  uint32_t *slots = xcalloc(nslots, sizeof *slots); /* site index + 1 */
  for (size_t i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = p->sample[i];
    size_t n = view_stack(&v, s, stack, NULL);
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < n; k++) h = (h ^ stack[k]) * 1099511628211ull;
    size_t at = (size_t)(h ^ h >> 29) & (nslots - 1);
    site_t *t = NULL;
    for (; slots[at] && !t; at = (at + 1) & (nslots - 1)) {
      site_t *c = &sites[slots[at] - 1];
      if (c->n == n && memcmp(c->stk, stack, n * sizeof *stack) == 0) t = c;
    }
    if (!t) {
      slots[at] = (uint32_t)ns + 1;
      t = &sites[ns++];
      t->stk = xmalloc((n + 1) * sizeof *stack);
      memcpy(t->stk, stack, n * sizeof *stack);
      t->n = n;
    }
    for (int k = 0; k < NV; k++) t->v[k] += (double)s->value[idx[k]];
    palloc_est_t e = palloc_est_scaled(s->value[idx[T_OBJ]], s->value[idx[T_SPACE]], rate,
                                       PALLOC_EST_BYTES, PALLOC_Z95);
    palloc_est_add(&t->temp, &e);
    bool f1, f2, f3, f4;
    double mean = (double)label_num(p, s, "lifetime_mean", &f1);
    double sd = (double)label_num(p, s, "lifetime_stddev", &f2);
    double mn = (double)label_num(p, s, "lifetime_min", &f3);
    double mx = (double)label_num(p, s, "lifetime_max", &f4);
    if (f1 && f2) {
      double w = (double)s->value[idx[F_OBJ]];
      t->w += w;
      t->wm += w * mean;
      t->sq += w * (sd * sd + mean * mean);
    }
    if (f3 && f4) {
      if (!t->has_minmax || mn < t->min) t->min = mn;
      if (!t->has_minmax || mx > t->max) t->max = mx;
      t->has_minmax = true;
    }
  }
  uint32_t *rows = xmalloc((ns + 1) * sizeof *rows);
  size_t nr = 0;
  for (size_t j = 0; j < ns; j++)
    if (temp ? sites[j].v[T_SPACE] > 0 : sites[j].v[F_OBJ] > 0 || sites[j].v[L_OBJ] > 0)
      rows[nr++] = (uint32_t)j;
  sort_sites = sites;
  sort_temp = temp;
  qsort(rows, nr, sizeof *rows, by_rank);
  if (limit > 0 && (size_t)limit < nr) nr = (size_t)limit;
  for (size_t i = 0; i < p->n_comment; i++) printf("%s\n", p->string_table[p->comment[i]]);
  char a[32], b[32], d[32], e[32], f[32], g[32], h[32];
  bool exact = rate <= 1;
  if (temp) {
    double total = 0;
    for (size_t j = 0; j < ns; j++) total += sites[j].v[T_SPACE];
    printf("Temporaries: %s in blocks freed within the threshold%s\n",
           unit_auto(a, sizeof a, (int64_t)total, "bytes"), exact ? " (exact, rate 1)" : "");
    printf("%12s %10s %10s %7s %9s  %s\n", "temp_space", exact ? "" : "+-95%", "temp_objs",
           "%freed", "mean", "stack (leaf first)");
  } else {
    printf("Lifetimes of freed blocks, and blocks still live (censored)%s\n",
           exact ? " (exact, rate 1)" : "");
    printf("%10s %10s %9s %9s %9s %9s %10s %10s %9s  %s\n", "freed", "freed_sp", "mean", "stddev",
           "min", "max", "live", "live_sp", "live_age", "stack (leaf first)");
  }
  for (size_t r = 0; r < nr; r++) {
    const site_t *t = &sites[rows[r]];
    double mean = mean_of(t);
    if (temp) {
      palloc_est_t te = t->temp;
      palloc_est_close(&te, PALLOC_Z95);
      if (exact) b[0] = 0;
      else unit_auto(b, sizeof b, (int64_t)(PALLOC_Z95 * palloc_est_se(&te)), "bytes");
      printf("%12s %10s %10.0f %6.1f%% %9s  ", unit_auto(a, sizeof a, (int64_t)t->v[T_SPACE], "bytes"),
             b, t->v[T_OBJ], t->v[F_OBJ] > 0 ? 100 * t->v[T_OBJ] / t->v[F_OBJ] : 0,
             dur(d, sizeof d, mean));
    } else {
      double pm = t->w > 0 ? t->wm / t->w : 0;
      double var = t->w > 0 ? t->sq / t->w - pm * pm : 0;
      double sd = var > 0 ? __builtin_sqrt(var) : 0;
      printf("%10.0f %10s %9s %9s %9s %9s %10.0f %10s %9s  ", t->v[F_OBJ],
             unit_auto(a, sizeof a, (int64_t)t->v[F_SPACE], "bytes"), dur(b, sizeof b, mean),
             dur(d, sizeof d, t->v[F_OBJ] > 0 ? sd : -1),
             dur(e, sizeof e, t->has_minmax ? t->min : -1),
             dur(f, sizeof f, t->has_minmax ? t->max : -1), t->v[L_OBJ],
             unit_auto(g, sizeof g, (int64_t)t->v[L_SPACE], "bytes"),
             dur(h, sizeof h, t->v[L_OBJ] > 0 ? t->v[L_AGE] / t->v[L_OBJ] : -1));
    }
    for (size_t k = 0; k < t->n && k < (size_t)depth; k++)
      printf("%s%s", k ? " < " : "", v.names[t->stk[k]]);
    printf("%s\n", t->n > (size_t)depth ? " < ..." : "");
  }
  for (size_t j = 0; j < ns; j++) free(sites[j].stk);
  free(sites);
  free(slots);
  free(rows);
  free(stack);
  view_close(&v);
  return 0;
}
