/* view.c - a profile as the reports see it: one value per sample, stacks of function nodes.
 *
 * Naming follows upstream pprof at its default granularity ("functions", inline frames kept),
 * because `palloc top` must agree with `pprof -top` row for row:
 *  - a location contributes one frame per Line, line[0] innermost (the inlined callee first);
 *  - a frame is named by its function's name; a frame without a name (no line, or a function
 *    with an empty name) is "[basename of the mapping's file]", or "<unknown>" without a mapping;
 *  - frames with equal names are one node, wherever they occur.
 * The profile was validated by proto/ (every id resolves, every string index is in range), so
 * lookups here cannot fail; the id->index tables exist only to make them O(1).
 *
 * A heap profile is one with at least one sample type measured in bytes; anything else (a CPU
 * profile, a contention profile) is refused with a one-line error rather than summarized wrongly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

typedef Perftools__Profiles__Profile Profile;

static uint64_t hash64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* id -> index table for ids of one kind (locations, functions, mappings). */
typedef struct {
  uint64_t *keys;
  uint32_t *vals;
  size_t cap;
} idtab_t;

static void idtab_init(idtab_t *t, size_t n) {
  t->cap = 16;
  while (t->cap < n * 2) t->cap *= 2;
  t->keys = xcalloc(t->cap, sizeof *t->keys);
  t->vals = xcalloc(t->cap, sizeof *t->vals);
}

static void idtab_put(idtab_t *t, uint64_t id, uint32_t idx) {
  size_t i = hash64(id) & (t->cap - 1);
  while (t->keys[i] != 0 && t->keys[i] != id) i = (i + 1) & (t->cap - 1);
  t->keys[i] = id;
  t->vals[i] = idx;
}

static uint32_t idtab_get(const uint64_t *keys, const uint32_t *vals, size_t cap, uint64_t id) {
  size_t i = hash64(id) & (cap - 1);
  while (keys[i] != id) {
    if (keys[i] == 0) return UINT32_MAX;
    i = (i + 1) & (cap - 1);
  }
  return vals[i];
}

/* Interns printable names into node ids. */
typedef struct {
  view_t *v;
  uint32_t *slots; /* node id + 1 */
  size_t cap, ncap;
} names_t;

static uint32_t intern(names_t *n, const char *s) {
  view_t *v = n->v;
  if ((v->nnodes + 1) * 2 > n->cap) {
    size_t cap = n->cap ? n->cap * 2 : 1024;
    uint32_t *slots = xcalloc(cap, sizeof *slots);
    for (uint32_t k = 0; k < v->nnodes; k++) {
      size_t i = hash_str(v->names[k]) & (cap - 1);
      while (slots[i]) i = (i + 1) & (cap - 1);
      slots[i] = k + 1;
    }
    free(n->slots);
    n->slots = slots;
    n->cap = cap;
  }
  size_t i = hash_str(s) & (n->cap - 1);
  while (n->slots[i]) {
    if (strcmp(v->names[n->slots[i] - 1], s) == 0) return n->slots[i] - 1;
    i = (i + 1) & (n->cap - 1);
  }
  if (v->nnodes == n->ncap) {
    n->ncap = n->ncap ? n->ncap * 2 : 256;
    v->names = xrealloc(v->names, n->ncap * sizeof *v->names);
  }
  v->names[v->nnodes] = xstrdup(s);
  n->slots[i] = v->nnodes + 1;
  return v->nnodes++;
}

static const char *base_name(const char *path) {
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

/* "[objfile]" or "<unknown>" for a frame without a function name. */
static uint32_t anonymous(names_t *n, const Profile *p, idtab_t *maps, uint64_t mapping_id) {
  if (mapping_id != 0) {
    uint32_t mi = idtab_get(maps->keys, maps->vals, maps->cap, mapping_id);
    const char *file = p->string_table[p->mapping[mi]->filename];
    if (file[0]) {
      char buf[4096];
      snprintf(buf, sizeof buf, "[%s]", base_name(file));
      return intern(n, buf);
    }
  }
  return intern(n, "<unknown>");
}

static int select_index(view_t *v, const char *want) {
  const Profile *p = v->p;
  if (want == NULL) {
    v->vi = (int)p->n_sample_type - 1;
    const char *dst = p->string_table[p->default_sample_type];
    for (size_t i = 0; dst[0] && i < p->n_sample_type; i++)
      if (strcmp(p->string_table[p->sample_type[i]->type], dst) == 0) v->vi = (int)i;
    return 0;
  }
  /* pprof also accepts "inuse_X" for a legacy type named "X". */
  const char *noinuse = strncmp(want, "inuse_", 6) == 0 ? want + 6 : want;
  for (size_t i = 0; i < p->n_sample_type; i++) {
    const char *t = p->string_table[p->sample_type[i]->type];
    if (strcmp(t, want) == 0 || strcmp(t, noinuse) == 0) {
      v->vi = (int)i;
      return 0;
    }
  }
  return -1;
}

/* "alloc_objects/count, ..." for error messages. */
static void describe_types(const Profile *p, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (size_t i = 0; i < p->n_sample_type && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%s/%s", i ? ", " : "",
                             p->string_table[p->sample_type[i]->type],
                             p->string_table[p->sample_type[i]->unit]);
}

FILE *view_diag;

static int fail(view_t *v, const char *fmt, const char *arg) {
  FILE *out = view_diag ? view_diag : stderr;
  fprintf(out, "palloc: %s: ", v->path);
  fprintf(out, fmt, arg);
  fputc('\n', out);
  view_close(v);
  return EXIT_CHECK;
}

int view_open(view_t *v, const char *path, const char *sample_index) {
  char err[PALLOC_PROTO_ERRLEN];
  if (fetch_is_url(path)) { /* a live process's endpoint (fetch.c) */
    uint8_t *data;
    size_t len;
    palloc_pb_profile_t *p = NULL;
    if (fetch_url(path, &data, &len, err, sizeof err) == 0) {
      p = palloc_proto_decode(data, len, NULL, err);
      free(data);
    }
    if (p == NULL) {
      fprintf(stderr, "palloc: %s: %s\n", path, err);
      return EXIT_CHECK;
    }
    return view_from(v, p, path, sample_index);
  }
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  if (p == NULL) {
    fprintf(stderr, "palloc: %s: %s\n", path, err);
    return EXIT_CHECK;
  }
  return view_from(v, p, path, sample_index);
}

int view_from(view_t *v, palloc_pb_profile_t *prof, const char *path, const char *sample_index) {
  memset(v, 0, sizeof *v);
  v->path = path;
  v->p = prof;
  const Profile *p = v->p;
  char types[512];
  describe_types(p, types, sizeof types);
  if (p->n_sample_type == 0) return fail(v, "%s", "not a heap profile (no sample types)");
  bool heap = false;
  for (size_t i = 0; i < p->n_sample_type; i++)
    heap |= unit_is_bytes(p->string_table[p->sample_type[i]->unit]);
  if (!heap) return fail(v, "not a heap profile (sample types: %s)", types);
  if (select_index(v, sample_index) != 0) {
    char msg[700];
    snprintf(msg, sizeof msg, "no sample type \"%s\" (has %s)", sample_index, types);
    return fail(v, "%s", msg);
  }
  v->type = p->string_table[p->sample_type[v->vi]->type];
  v->unit = p->string_table[p->sample_type[v->vi]->unit];

  idtab_t maps, funcs, locs;
  idtab_init(&maps, p->n_mapping);
  for (size_t i = 0; i < p->n_mapping; i++) idtab_put(&maps, p->mapping[i]->id, (uint32_t)i);
  idtab_init(&funcs, p->n_function);
  for (size_t i = 0; i < p->n_function; i++) idtab_put(&funcs, p->function[i]->id, (uint32_t)i);
  idtab_init(&locs, p->n_location);
  names_t names = {.v = v};
  size_t nframes = 0;
  for (size_t i = 0; i < p->n_location; i++) {
    idtab_put(&locs, p->location[i]->id, (uint32_t)i);
    nframes += p->location[i]->n_line ? p->location[i]->n_line : 1;
  }
  v->frames = xmalloc((nframes + 1) * sizeof *v->frames);
  v->fstart = xmalloc((p->n_location + 1) * sizeof *v->fstart);
  size_t f = 0, maxlines = 1;
  for (size_t i = 0; i < p->n_location; i++) {
    const Perftools__Profiles__Location *l = p->location[i];
    v->fstart[i] = (uint32_t)f;
    if (l->n_line > maxlines) maxlines = l->n_line;
    if (l->n_line == 0) v->frames[f++] = anonymous(&names, p, &maps, l->mapping_id);
    for (size_t j = 0; j < l->n_line; j++) {
      uint32_t fi = idtab_get(funcs.keys, funcs.vals, funcs.cap, l->line[j]->function_id);
      const char *name = p->string_table[p->function[fi]->name];
      v->frames[f++] = name[0] ? intern(&names, name) : anonymous(&names, p, &maps, l->mapping_id);
    }
  }
  v->fstart[p->n_location] = (uint32_t)f;
  size_t maxlocs = 0;
  for (size_t i = 0; i < p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = p->sample[i];
    if (s->n_location_id > maxlocs) maxlocs = s->n_location_id;
    int64_t x = s->value[v->vi];
    v->total += x < 0 ? -x : x;
  }
  v->maxdepth = maxlocs * maxlines + 1;
  v->lkeys = locs.keys;
  v->lvals = locs.vals;
  v->lcap = locs.cap;
  free(maps.keys);
  free(maps.vals);
  free(funcs.keys);
  free(funcs.vals);
  free(names.slots);
  return 0;
}

size_t view_stack(const view_t *v, const Perftools__Profiles__Sample *s, uint32_t *out,
                  uint8_t *inl) {
  size_t n = 0;
  for (size_t i = 0; i < s->n_location_id; i++) {
    uint32_t li = idtab_get(v->lkeys, v->lvals, v->lcap, s->location_id[i]);
    for (uint32_t f = v->fstart[li]; f < v->fstart[li + 1]; f++) {
      if (inl) inl[n] = f + 1 < v->fstart[li + 1];
      out[n++] = v->frames[f];
    }
  }
  return n;
}

void view_close(view_t *v) {
  palloc_proto_free(v->p, NULL);
  for (uint32_t i = 0; i < v->nnodes; i++) free(v->names[i]);
  free(v->names);
  free(v->frames);
  free(v->fstart);
  free(v->lkeys);
  free(v->lvals);
  memset(v, 0, sizeof *v);
}

/* pprof's graph weights: flat goes to the leaf frame, cum once to every distinct node of the
 * stack (recursion is not counted twice); samples whose value is 0 are skipped. */
void view_flat_cum(const view_t *v, int64_t *flat, int64_t *cum) {
  uint32_t *stack = xmalloc(v->maxdepth * sizeof *stack);
  uint32_t *stamp = xcalloc(v->nnodes, sizeof *stamp);
  memset(flat, 0, v->nnodes * sizeof *flat);
  memset(cum, 0, v->nnodes * sizeof *cum);
  for (size_t i = 0; i < v->p->n_sample; i++) {
    const Perftools__Profiles__Sample *s = v->p->sample[i];
    int64_t w = s->value[v->vi];
    if (w == 0) continue;
    size_t n = view_stack(v, s, stack, NULL);
    if (n == 0) continue;
    flat[stack[0]] += w;
    for (size_t k = 0; k < n; k++) {
      if (stamp[stack[k]] == (uint32_t)i + 1) continue;
      stamp[stack[k]] = (uint32_t)i + 1;
      cum[stack[k]] += w;
    }
  }
  free(stack);
  free(stamp);
}

void view_print_header(const view_t *v, FILE *out) {
  const Profile *p = v->p;
  if (p->n_mapping > 0 && p->string_table[p->mapping[0]->filename][0])
    fprintf(out, "File: %s\n", base_name(p->string_table[p->mapping[0]->filename]));
  for (size_t i = 0; i < p->n_comment; i++) /* pprof shows comments not starting with '#' */
    if (p->string_table[p->comment[i]][0] != '#') fprintf(out, "%s\n", p->string_table[p->comment[i]]);
  fprintf(out, "Type: %s\n", v->type);
  if (p->time_nanos != 0) {
    time_t t = (time_t)(p->time_nanos / 1000000000);
    struct tm tm;
    char buf[64];
    if (localtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm))
      fprintf(out, "Time: %s\n", buf);
  }
  if (p->period_type && unit_is_bytes(p->string_table[p->period_type->unit])) {
    char buf[64];
    if (p->period <= 1)
      fprintf(out, "Sampling: every allocation (exact)\n");
    else
      fprintf(out, "Sampling: one sample every %s allocated on average (values are unsampled estimates)\n",
              unit_auto(buf, sizeof buf, p->period, "bytes"));
  } else if (p->period_type) {
    fprintf(out, "Period: %lld %s\n", (long long)p->period,
            p->string_table[p->period_type->unit]);
  }
}

int view_open_operand(view_t *v, const char *cmd, int argc, char **argv, const char *sample_index) {
  if (argc - optind != 1)
    return usage_error(cmd, argc == optind ? "missing PROFILE" : "one PROFILE expected");
  return view_open(v, argv[optind], sample_index);
}
