/* profile.c - ranking stack candidates by a heap profile (--profile heap.pb.gz).
 *
 * Each sample is attributed to its leaf-most frame whose source file is one of the analyzed
 * files (libpalloc drops its own frames; an allocation wrapper in another file is walked past).
 * Locations without file:line (a profile written with PALLOC_SYMBOLIZE=none, or by another
 * profiler) are symbolized here with libdw from the mapping's binary: address -> file:line
 * (proto/dwsym.c, shared with `palloc symbolize`).
 * Profilers record return addresses, and libpalloc stores return address - 1, which lies in the
 * call instruction, so the line is the call's line (for a macro, the invocation's line, which
 * is where the compiler and we both put it).
 *
 * A sample whose frame is the allocation inside an allocation wrapper (xmalloc's malloc) goes
 * to the wrapper's call in the caller's frame, the allocation site as the caller sees it.
 *
 * Printed: the stack candidates by bytes allocated, then the escaping allocation sites that
 * allocate the most (--top), each with the reason and the flow that makes it escape, in
 * human units; when there is no candidate, that is said, and the hot sites still follow.
 *
 * The join key is (file, line) of the allocation call: an exact line first, else the nearest
 * allocation in the same function within PE_LINE_WINDOW lines (debug info sometimes places a
 * call spread over several lines on its last one). Files match by the longest common path
 * suffix, so build directories and relative DWARF names do not matter.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"
#include "dwsym.h"
#include "palloc_proto.h"

#define PE_LINE_WINDOW 3

typedef struct { const char *file, *func; long long line; } frame;

static size_t common_suffix(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b), k = 0;
  while (k < n && k < m && a[n - 1 - k] == b[m - 1 - k]) k++;
  return k;
}

static const char *base(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* Which analyzed file (index into files) a profile file name is, or -1. */
static int match_file(char **real, int nfiles, const char *pfile0) {
  char buf[PATH_MAX];
  const char *pfile = pfile0;
  if (pfile[0] == '/' && realpath(pfile0, buf)) pfile = buf; /* /build/../src/x.c */
  while (pfile[0] == '.' && (pfile[1] == '/' || (pfile[1] == '.' && pfile[2] == '/')))
    pfile += pfile[1] == '/' ? 2 : 3; /* relative DWARF names: ../src/x.c */
  int best = -1;
  size_t bestlen = 0;
  for (int i = 0; i < nfiles; i++) {
    size_t k = common_suffix(real[i], pfile);
    size_t bl = strlen(base(real[i]));
    if (k >= bl && k > bestlen && (k == strlen(pfile) || pfile[strlen(pfile) - k - 1] == '/')) {
      best = i;
      bestlen = k;
    }
  }
  return best;
}

/* The profile's mappings' binaries, opened on first use (proto/dwsym.h). */
typedef struct {
  palloc_pb_profile_t *p;
  palloc_dwsym_t **open;  /* by mapping index */
  bool *tried;
} symbolizer;

/* file:line (and function) of the bare address of location lc, from its mapping's binary. */
static bool sym_lookup(symbolizer *s, const Perftools__Profiles__Location *lc, frame *out) {
  size_t mi = lc->mapping_id - 1; /* ids are usually the indexes + 1 (validated: they exist) */
  if (mi >= s->p->n_mapping || s->p->mapping[mi]->id != lc->mapping_id)
    for (mi = 0; mi < s->p->n_mapping && s->p->mapping[mi]->id != lc->mapping_id;) mi++;
  if (lc->mapping_id == 0 || mi == s->p->n_mapping || !s->open || !s->tried) return false;
  if (!s->tried[mi]) {
    char err[PALLOC_PROTO_ERRLEN];
    s->tried[mi] = true;
    s->open[mi] = palloc_dwsym_open(s->p, s->p->mapping[mi], err, sizeof err);
  }
  palloc_dwsym_frame_t fr;
  if (!s->open[mi] || !palloc_dwsym_lookup(s->open[mi], lc->address, &fr) || !fr.file)
    return false;
  out->file = fr.file;
  out->line = fr.line;
  out->func = fr.func;
  return true;
}

static int type_index(palloc_pb_profile_t *p, const char *name) {
  for (size_t i = 0; i < p->n_sample_type; i++)
    if (strcmp(p->string_table[p->sample_type[i]->type], name) == 0) return (int)i;
  return -1;
}

static int cmp_rank(const void *a, const void *b) {
  const pe_rec *x = *(pe_rec *const *)a, *y = *(pe_rec *const *)b;
  if (x->alloc_space != y->alloc_space) return x->alloc_space > y->alloc_space ? -1 : 1;
  if (x->alloc_objects != y->alloc_objects) return x->alloc_objects > y->alloc_objects ? -1 : 1;
  int c = strcmp(x->file, y->file);
  if (c) return c;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* The allocation record matching (file index, line, func), or NULL. */
static pe_rec *match_rec(pe_recs *r, int *recfile, int fi, const frame *fr) {
  pe_rec *best = NULL;
  long long bestd = LLONG_MAX;
  for (int i = 0; i < r->n; i++) {
    pe_rec *x = &r->v[i];
    if (x->kind != R_ALLOC || recfile[i] != fi) continue;
    long long d = llabs((long long)x->line - fr->line);
    if (d > 0 && (d > PE_LINE_WINDOW || !fr->func || strcmp(fr->func, x->func) != 0)) continue;
    if (d < bestd) { best = x; bestd = d; }
  }
  return best;
}

/* Joins the samples of one profile to the records: kind 0 a heap profile (alloc_space,
 * alloc_objects), 1 a lifetime profile (freed_objects, lifetime, temp_objects: issue 16's
 * PALLOC_LIFETIME_PROFILE). -1 on error (said on stderr). */
static int join_file(const char *path, int kind, pe_recs *r, char **real, int nfiles,
                     int *recfile, long long *total, long long *joined, long long *nsym) {
  char err[PALLOC_PROTO_ERRLEN];
  palloc_pb_profile_t *p = palloc_proto_read_file(path, NULL, err);
  if (!p) {
    fprintf(stderr, "palloc-escape: %s: error: %s\n", path, err);
    return -1;
  }
  int i0 = type_index(p, kind ? "freed_objects" : "alloc_space");
  int i1 = type_index(p, kind ? "lifetime" : "alloc_objects");
  int i2 = kind ? type_index(p, "temp_objects") : i1;
  if (i0 < 0 || i1 < 0 || i2 < 0) {
    fprintf(stderr, "palloc-escape: %s: error: no %s sample types\n", path,
            kind ? "freed_objects/lifetime/temp_objects (a lifetime profile)"
                 : "alloc_space/alloc_objects");
    palloc_proto_free(p, NULL);
    return -1;
  }
  /* id -> location / function: ids are validated, usually dense */
  uint64_t maxloc = 0, maxfn = 0;
  for (size_t i = 0; i < p->n_location; i++)
    if (p->location[i]->id > maxloc) maxloc = p->location[i]->id;
  for (size_t i = 0; i < p->n_function; i++)
    if (p->function[i]->id > maxfn) maxfn = p->function[i]->id;
  if (maxloc > 64 * (p->n_location + 1) || maxfn > 64 * (p->n_function + 1)) {
    fprintf(stderr, "palloc-escape: %s: error: sparse location ids are not supported\n", path);
    palloc_proto_free(p, NULL);
    return -1;
  }
  Perftools__Profiles__Location **loc = calloc(maxloc + 1, sizeof *loc);
  Perftools__Profiles__Function **fn = calloc(maxfn + 1, sizeof *fn);
  for (size_t i = 0; i < p->n_location; i++) loc[p->location[i]->id] = p->location[i];
  for (size_t i = 0; i < p->n_function; i++) fn[p->function[i]->id] = p->function[i];
  symbolizer sym = {p, calloc(p->n_mapping + 1, sizeof *sym.open),
                    calloc(p->n_mapping + 1, sizeof *sym.tried)};
  frame *frames = NULL;
  int nfr = 0, capfr = 0;
  for (size_t s = 0; s < p->n_sample; s++) {
    Perftools__Profiles__Sample *sm = p->sample[s];
    if ((size_t)i0 >= sm->n_value || (size_t)i1 >= sm->n_value || (size_t)i2 >= sm->n_value)
      continue;
    *total += sm->value[i0];
    nfr = 0; /* the sample's frames, leaf first (inlined ones first within a location) */
    for (size_t l = 0; l < sm->n_location_id; l++) {
      Perftools__Profiles__Location *lc = sm->location_id[l] <= maxloc ? loc[sm->location_id[l]] : NULL;
      if (!lc) continue;
      int before = nfr;
      for (size_t k = 0; k < lc->n_line; k++) {
        Perftools__Profiles__Function *f = lc->line[k]->function_id <= maxfn ? fn[lc->line[k]->function_id] : NULL;
        if (!f) continue;
        frame fr = {p->string_table[f->filename], p->string_table[f->name], lc->line[k]->line};
        PE_PUSH(frames, nfr, capfr, fr);
      }
      frame fr;
      if (nfr == before && sym_lookup(&sym, lc, &fr)) {
        PE_PUSH(frames, nfr, capfr, fr);
        (*nsym)++;
      }
    }
    /* the leaf-most frame in our sources decides; through a wrapper, its caller's */
    pe_rec *x = NULL;
    for (int k = 0; k < nfr; k++) {
      int fi = match_file(real, nfiles, frames[k].file);
      if (fi < 0) continue;
      pe_rec *y = match_rec(r, recfile, fi, &frames[k]);
      if (x && !y) break;
      x = y;
      if (!x || !x->inner) break;
    }
    if (!x) continue;
    if (kind == 0) {
      x->sampled = true;
      x->alloc_space += sm->value[i0];
      x->alloc_objects += sm->value[i1];
    } else {
      x->lived = true;
      x->freed_objects += sm->value[i0];
      x->lifetime_ns += sm->value[i1];
      x->temp_objects += sm->value[i2];
    }
    *joined += sm->value[i0];
  }
  free(frames);
  free(loc);
  free(fn);
  for (size_t i = 0; sym.open && i < p->n_mapping; i++) palloc_dwsym_close(sym.open[i]);
  free(sym.open);
  free(sym.tried);
  palloc_proto_free(p, NULL);
  return 0;
}

static void human_ns(long long ns, char out[32]) {
  if (ns < 1000) snprintf(out, 32, "%lld ns", ns);
  else if (ns < 1000000) snprintf(out, 32, "%.1f us", ns / 1e3);
  else if (ns < 1000000000) snprintf(out, 32, "%.1f ms", ns / 1e6);
  else snprintf(out, 32, "%.1f s", ns / 1e9);
}

/* ", mean lifetime 2.1 us, 98% temporaries" if the lifetime profile has the site */
static void life_text(const pe_rec *x, char out[96]) {
  out[0] = 0;
  if (!x->lived || x->freed_objects <= 0) return;
  char t[32];
  human_ns(x->lifetime_ns / x->freed_objects, t);
  snprintf(out, 96, ", mean lifetime %s, %lld%% temporaries", t,
           x->temp_objects * 100 / x->freed_objects);
}

/* hot sites with lifetimes: the short-lived first (their mean lifetime), then the others */
static int cmp_life(const void *a, const void *b) {
  const pe_rec *x = *(pe_rec *const *)a, *y = *(pe_rec *const *)b;
  bool lx = x->lived && x->freed_objects > 0, ly = y->lived && y->freed_objects > 0;
  if (lx != ly) return lx ? -1 : 1;
  if (lx) {
    long long mx = x->lifetime_ns / x->freed_objects, my = y->lifetime_ns / y->freed_objects;
    if (mx != my) return mx < my ? -1 : 1;
  }
  return cmp_rank(a, b);
}

int pe_profile_join(pe_recs *r, const pe_opts *o, FILE *out) {
  /* the distinct analyzed files, resolved */
  char **real = malloc(sizeof *real * ((size_t)r->n + 1));
  const char **names = malloc(sizeof *names * ((size_t)r->n + 1));
  int *recfile = malloc(sizeof *recfile * ((size_t)r->n + 1));
  int nfiles = 0;
  for (int i = 0; i < r->n; i++) {
    int f = -1;
    for (int k = 0; k < nfiles; k++)
      if (strcmp(names[k], r->v[i].file) == 0) f = k;
    if (f < 0) {
      names[nfiles] = r->v[i].file;
      char *rp = realpath(r->v[i].file, NULL);
      real[nfiles] = rp ? rp : pe_xstrdup(r->v[i].file);
      f = nfiles++;
    }
    recfile[i] = f;
  }
  long long total = 0, joined = 0, nsym = 0, ltotal = 0, ljoined = 0;
  int rc = join_file(o->profile, 0, r, real, nfiles, recfile, &total, &joined, &nsym);
  if (rc == 0 && o->lifetimes)
    rc = join_file(o->lifetimes, 1, r, real, nfiles, recfile, &ltotal, &ljoined, &nsym);
  if (rc != 0) {
    for (int i = 0; i < nfiles; i++) free(real[i]);
    free(real); free(names); free(recfile);
    return -1;
  }
  /* ranking: the candidates, most allocated bytes first; then the escaping sites sampled */
  pe_rec **rank = malloc(sizeof *rank * ((size_t)r->n + 1));
  pe_rec **hot = malloc(sizeof *hot * ((size_t)r->n + 1));
  int nrank = 0, nhot = 0;
  for (int i = 0; i < r->n; i++) {
    if (r->v[i].kind != R_ALLOC) continue;
    if (r->v[i].candidate) rank[nrank++] = &r->v[i];
    else if (r->v[i].sampled) hot[nhot++] = &r->v[i];
  }
  qsort(rank, (size_t)nrank, sizeof *rank, cmp_rank);
  qsort(hot, (size_t)nhot, sizeof *hot, cmp_rank);
  int shown = nhot < o->top ? nhot : o->top;
  if (o->lifetimes) qsort(hot, (size_t)shown, sizeof *hot, cmp_life);
  if (o->json) {
    pe_recs sub = {0};
    for (int i = 0; i < nrank; i++) PE_PUSH(sub.v, sub.n, sub.cap, *rank[i]);
    for (int i = 0; i < shown; i++) { /* each with its flow lines */
      PE_PUSH(sub.v, sub.n, sub.cap, *hot[i]);
      for (pe_rec *f = hot[i] + 1; f < r->v + r->n && f->kind == R_FLOW; f++)
        PE_PUSH(sub.v, sub.n, sub.cap, *f);
    }
    pe_recs_print(&sub, o, out);
    free(sub.v);
  } else {
    char b[32];
    if (nrank == 0)
      fprintf(out, "no stack candidates: every allocation site of the analyzed files escapes\n");
    else
      fprintf(out, "stack candidates, by bytes allocated:\n");
    for (int i = 0; i < nrank; i++) {
      pe_rec *x = rank[i];
      pe_human_bytes(x->alloc_space, b);
      char lt[96];
      life_text(x, lt);
      if (x->sampled)
        fprintf(out, "%s:%u:%u: %s: %s in %lld allocation%s%s, all could be on the stack\n",
                x->file, x->line, x->col, x->msg, b, x->alloc_objects,
                x->alloc_objects == 1 ? "" : "s", lt);
      else
        fprintf(out, "%s:%u:%u: %s: not in the profile\n", x->file, x->line, x->col, x->msg);
    }
    if (nhot == 0) {
      fprintf(out, "no escaping allocation site of the analyzed files is in the profile\n");
    } else {
      fprintf(out, "escaping allocation sites, by bytes allocated (%d of %d)%s:\n", shown, nhot,
              o->lifetimes ? ", the shortest-lived first" : "");
      for (int i = 0; i < shown; i++) {
        pe_rec *x = hot[i];
        pe_human_bytes(x->alloc_space, b);
        char lt[96];
        life_text(x, lt);
        fprintf(out, "%s:%u:%u: %s: %s in %lld allocation%s%s: %s\n", x->file, x->line, x->col,
                x->expr, b, x->alloc_objects, x->alloc_objects == 1 ? "" : "s", lt,
                x->msg + strlen(x->expr) + 1);
        for (pe_rec *f = x + 1; f < r->v + r->n && f->kind == R_FLOW; f++)
          fprintf(out, "%s:%u:%u: %s\n", f->file, f->line, f->col, f->msg);
      }
    }
  }
  char jb[32], tb[32];
  pe_human_bytes(joined, jb);
  pe_human_bytes(total, tb);
  fprintf(stderr, "palloc-escape: profile: %s of %s allocated joined to allocation sites of the "
          "analyzed files (%lld of %lld bytes; %lld frames symbolized with libdw)\n", jb, tb,
          joined, total, nsym);
  if (o->lifetimes)
    fprintf(stderr, "palloc-escape: lifetimes: %lld of %lld freed objects joined\n", ljoined,
            ltotal);
  free(hot);
  free(rank);
  for (int i = 0; i < nfiles; i++) free(real[i]);
  free(real); free(names); free(recfile);
  return 0;
}
