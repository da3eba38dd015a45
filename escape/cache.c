/* cache.c - a file's walked graph kept on disk, so that a second run on an unchanged tree does
 * not parse it again (parsing is most of the cost; solving the whole program is cheap).
 *
 * An entry is named by a hash of what the graph is made from besides file contents: the
 * format version, the tool's own binary (size and modification time), the options that change
 * the walk (--alloc, --free, --realloc, --resource-dir), the current directory (header names
 * are printed relative to it), the file's name, its directory and its compile flags. It lists every file the translation unit read (the main file and every header,
 * as clang_getInclusions reports them) with a hash of its content; it is used only if every
 * one still hashes the same. Then comes the graph (escape.h's pe_unit without the summaries,
 * which are computed anew for the whole program). Anything unexpected in an entry (truncated,
 * another version) is a miss; entries are written to a temporary file and renamed into place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "escape.h"

#define PE_CACHE_MAGIC 0x70616c6c6f634533ull /* "pallocE3": bump when the graph changes */

/* ---- hashing ---------------------------------------------------------------------------- */
static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, b + i, 8);
    h = mix(h, v);
  }
  uint64_t v = n;
  for (; i < n; i++) v = (v << 8) | b[i];
  return mix(h, v);
}

static uint64_t hash_str(uint64_t h, const char *s) { return hash_bytes(h, s ? s : "", s ? strlen(s) + 1 : 0); }

/* Content hash of a file, memoized for the run (the same headers come in every unit). 0: it
 * cannot be read. */
typedef struct { char *path; uint64_t h; } memo_t;
static memo_t *memo;
static size_t nmemo, capmemo;

static uint64_t hash_file(const char *path) {
  for (size_t i = 0; i < nmemo; i++)
    if (!strcmp(memo[i].path, path)) return memo[i].h;
  uint64_t h = 0;
  FILE *f = fopen(path, "rb");
  if (f) {
    h = 0x1234567;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = hash_bytes(h, buf, n);
    if (ferror(f)) h = 0;
    fclose(f);
    if (h == 0) h = 1;
  }
  memo_t m = {pe_xstrdup(path), h};
  PE_PUSH(memo, nmemo, capmemo, m);
  return h;
}

static char *entry_path(const pe_opts *o, const char *file, const char *dir, char **args, int nargs) {
  uint64_t h = PE_CACHE_MAGIC;
  struct stat st;
  if (stat("/proc/self/exe", &st) == 0) {
    h = mix(h, (uint64_t)st.st_size);
    h = mix(h, (uint64_t)st.st_mtim.tv_sec);
    h = mix(h, (uint64_t)st.st_mtim.tv_nsec);
  }
  for (int i = 0; i < o->nallocs; i++) h = hash_str(mix(h, 'a'), o->allocs[i]);
  for (int i = 0; i < o->nfrees; i++) h = hash_str(mix(h, 'f'), o->frees[i]);
  for (int i = 0; i < o->nreallocs; i++) h = hash_str(mix(h, 'r'), o->reallocs[i]);
  h = hash_str(h, o->resource_dir);
  h = hash_str(h, pe_start_dir); /* header names are printed relative to it */
  h = hash_str(h, file);
  h = hash_str(h, dir);
  for (int i = 0; i < nargs; i++) h = hash_str(h, args[i]);
  return pe_fmt("%s/%016llx.pe", o->cache, (unsigned long long)h);
}

/* ---- writing ---------------------------------------------------------------------------- */
typedef struct { char *b; size_t n, cap; } obuf;

static void put(obuf *o, const void *p, size_t n) {
  if (n == 0) return;
  if (o->n + n > o->cap) {
    while (o->n + n > o->cap) o->cap = o->cap ? o->cap * 2 : 65536;
    o->b = pe_xrealloc(o->b, o->cap);
  }
  memcpy(o->b + o->n, p, n);
  o->n += n;
}
static void put64(obuf *o, int64_t v) { put(o, &v, 8); }
static void putstr(obuf *o, const char *s) {
  put64(o, s ? (int64_t)strlen(s) : -1);
  if (s) put(o, s, strlen(s));
}
static void putloc(obuf *o, pe_loc l) { put64(o, l.line); put64(o, l.col); put64(o, l.off); }
static void putterm(obuf *o, pe_term t) {
  put64(o, t.ok); put64(o, t.np); put64(o, t.k); put64(o, t.add); put64(o, t.lo);
  for (int i = 0; i < 4; i++) put64(o, t.p[i]);
}

typedef struct { obuf *o; const char *dir; } incl_ctx;

static void absname(CXFile f, const char *dir, char *out, size_t cap) {
  CXString s = clang_getFileName(f);
  const char *n = clang_getCString(s);
  if (n[0] != '/' && dir && dir[0]) snprintf(out, cap, "%s/%s", dir, n);
  else snprintf(out, cap, "%s", n);
  clang_disposeString(s);
}

static void inclusion(CXFile f, CXSourceLocation *stack, unsigned len, CXClientData d) {
  incl_ctx *c = d;
  char path[4096];
  absname(f, c->dir, path, sizeof path);
  putstr(c->o, path);
  put64(c->o, (int64_t)hash_file(path));
}

void pe_cache_store(const pe_opts *o, const char *file, const char *dir, char **args, int nargs,
                    CXTranslationUnit tu, const pe_unit *u) {
  obuf b = {0};
  put64(&b, (int64_t)PE_CACHE_MAGIC);
  obuf deps = {0};
  incl_ctx c = {&deps, dir};
  clang_getInclusions(tu, inclusion, &c);
  put64(&b, (int64_t)deps.n);
  put(&b, deps.b, deps.n);
  free(deps.b);
  put64(&b, u->nfiles);
  for (int i = 0; i < u->nfiles; i++) putstr(&b, u->files[i]);
  put64(&b, u->nfuncs);
  for (int i = 0; i < u->nfuncs; i++) {
    const pe_func *f = &u->funcs[i];
    int fi = -1;
    for (int k = 0; k < u->nfiles; k++)
      if (f->file == u->files[k]) fi = k;
    putstr(&b, f->name);
    put64(&b, fi);
    putloc(&b, f->loc);
    put64(&b, f->external | f->analyzed << 1 | f->calls_setjmp << 2);
    put64(&b, f->nparams);
    put64(&b, f->loaded);
    put64(&b, f->other);
    for (int p = 0; p < f->nparams; p++) put64(&b, f->param_node[p]);
    put64(&b, f->nnodes);
    for (int k = 0; k < f->nnodes; k++) {
      const pe_node *n = &f->nodes[k];
      put64(&b, n->kind);
      putstr(&b, n->name);
      putloc(&b, n->loc);
      put64(&b, n->var); put64(&b, n->param);
      put64(&b, n->addr_taken | n->carries << 1 | n->mixed << 2 | n->resized << 3);
      put64(&b, n->size_known); put64(&b, n->size);
      put64(&b, n->loop_lo); put64(&b, n->loop_hi);
      putterm(&b, n->term);
      put64(&b, n->site);
    }
    put64(&b, f->nedges);
    for (int k = 0; k < f->nedges; k++) {
      const pe_edge *e = &f->edges[k];
      put64(&b, e->from); put64(&b, e->to); putloc(&b, e->loc); put64(&b, e->weak);
    }
    put64(&b, f->nsinks);
    for (int k = 0; k < f->nsinks; k++) {
      const pe_sink *s = &f->sinks[k];
      put64(&b, s->node); put64(&b, s->kind); putstr(&b, s->text); put64(&b, s->dangling);
      putloc(&b, s->loc);
    }
    put64(&b, f->ncalls);
    for (int k = 0; k < f->ncalls; k++) {
      const pe_call *c = &f->calls[k];
      put64(&b, c->callee); put64(&b, c->result); put64(&b, c->nargs);
      for (int a = 0; a < c->nargs; a++) putterm(&b, c->args[a]);
      putstr(&b, c->text);
      put64(&b, c->loop_lo); put64(&b, c->loop_hi); putloc(&b, c->loc);
    }
    put64(&b, f->ncargs);
    for (int k = 0; k < f->ncargs; k++) {
      const pe_callarg *c = &f->cargs[k];
      put64(&b, c->call); put64(&b, c->param); put64(&b, c->arg); putloc(&b, c->loc);
    }
    put64(&b, f->next);
    for (int k = 0; k < f->next; k++) putstr(&b, f->ext[k]);
    put64(&b, f->ncallees);
    for (int k = 0; k < f->ncallees; k++) put64(&b, f->callees[k]);
  }
  char *path = entry_path(o, file, dir, args, nargs);
  char *tmp = pe_fmt("%s.%d.tmp", path, (int)getpid());
  mkdir(o->cache, 0777); /* one level; the parent (~/.cache) is made if missing too */
  FILE *fp = fopen(tmp, "wb");
  if (!fp && errno == ENOENT) {
    char *parent = pe_xstrdup(o->cache);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) { *slash = 0; mkdir(parent, 0777); mkdir(o->cache, 0777); }
    free(parent);
    fp = fopen(tmp, "wb");
  }
  static bool warned;
  if (!fp || fwrite(b.b, 1, b.n, fp) != b.n || fclose(fp) != 0 || rename(tmp, path) != 0) {
    if (!warned) fprintf(stderr, "palloc-escape: cache %s: cannot write: %s\n", o->cache, strerror(errno));
    warned = true;
    unlink(tmp);
  }
  free(tmp);
  free(path);
  free(b.b);
}

/* ---- reading ---------------------------------------------------------------------------- */
typedef struct { const char *b; size_t n, at; bool bad; } ibuf;

static int64_t get64(ibuf *i) {
  int64_t v = 0;
  if (i->at + 8 > i->n) { i->bad = true; return 0; }
  memcpy(&v, i->b + i->at, 8);
  i->at += 8;
  return v;
}
static char *getstr(ibuf *i) {
  int64_t n = get64(i);
  if (n < 0 || i->bad) return NULL;
  if ((size_t)n > i->n - i->at) { i->bad = true; return NULL; }
  char *s = malloc((size_t)n + 1);
  memcpy(s, i->b + i->at, (size_t)n);
  s[n] = 0;
  i->at += (size_t)n;
  return s;
}
static pe_loc getloc(ibuf *i) {
  pe_loc l;
  l.line = (unsigned)get64(i); l.col = (unsigned)get64(i); l.off = (unsigned)get64(i);
  return l;
}
static pe_term getterm(ibuf *i) {
  pe_term t;
  t.ok = get64(i); t.np = (int)get64(i); t.k = get64(i); t.add = get64(i); t.lo = get64(i);
  for (int k = 0; k < 4; k++) t.p[k] = (int)get64(i);
  if (t.np < 0 || t.np > 4) i->bad = true;
  return t;
}
/* a count that the remaining bytes can hold (each element takes at least 8) */
static int getcount(ibuf *i) {
  int64_t n = get64(i);
  if (n < 0 || (size_t)n > (i->n - i->at) / 8 + 1) { i->bad = true; return 0; }
  return (int)n;
}

int pe_cache_load(const pe_opts *o, const char *file, const char *dir, char **args, int nargs,
                  pe_unit *u) {
  char *path = entry_path(o, file, dir, args, nargs);
  FILE *fp = fopen(path, "rb");
  free(path);
  if (!fp) return -1;
  obuf all = {0};
  char tmp[65536];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, fp)) > 0) put(&all, tmp, n);
  fclose(fp);
  ibuf in = {all.b, all.n, 0, false};
  if ((uint64_t)get64(&in) != PE_CACHE_MAGIC) { free(all.b); return -1; }
  int64_t ndeps = get64(&in);
  size_t end = in.at + (size_t)ndeps;
  if (ndeps < 0 || end > in.n) { free(all.b); return -1; }
  while (in.at < end && !in.bad) { /* every file it read is unchanged */
    char *dep = getstr(&in);
    uint64_t h = (uint64_t)get64(&in);
    bool same = dep && hash_file(dep) == h;
    free(dep);
    if (!same) { free(all.b); return -1; }
  }
  pe_unit v = {.path = u->path, .report = u->report};
  int nfiles = getcount(&in);
  for (int k = 0; k < nfiles && !in.bad; k++) {
    char *s = getstr(&in);
    if (!s) { in.bad = true; break; }
    const char *name = pe_intern(s);
    free(s);
    PE_PUSH(v.files, v.nfiles, v.capfiles, name);
  }
  int nfuncs = getcount(&in);
  for (int k = 0; k < nfuncs && !in.bad; k++) {
    pe_func f = {0};
    f.freeparam = -1;
    f.passthru = -1;
    f.name = getstr(&in);
    int64_t fi = get64(&in);
    f.file = fi >= 0 && fi < v.nfiles ? v.files[fi] : v.path;
    f.loc = getloc(&in);
    int64_t fl = get64(&in);
    f.external = fl & 1; f.analyzed = fl >> 1 & 1; f.calls_setjmp = fl >> 2 & 1;
    f.nparams = getcount(&in);
    f.loaded = (int)get64(&in);
    f.other = (int)get64(&in);
    f.param_node = calloc((size_t)f.nparams + 1, sizeof *f.param_node);
    f.psum = calloc((size_t)f.nparams + 1, sizeof *f.psum);
    f.preason = calloc((size_t)f.nparams + 1, sizeof *f.preason);
    for (int p = 0; p < f.nparams; p++) f.param_node[p] = (int)get64(&in);
    int nn = getcount(&in);
    for (int j = 0; j < nn && !in.bad; j++) {
      pe_node x = {0};
      x.kind = (enum pe_node_kind)get64(&in);
      x.name = getstr(&in);
      x.loc = getloc(&in);
      x.var = (int)get64(&in); x.param = (int)get64(&in);
      int64_t b = get64(&in);
      x.addr_taken = b & 1; x.carries = b >> 1 & 1; x.mixed = b >> 2 & 1; x.resized = b >> 3 & 1;
      x.size_known = (int)get64(&in); x.size = get64(&in);
      x.loop_lo = (unsigned)get64(&in); x.loop_hi = (unsigned)get64(&in);
      x.term = getterm(&in);
      x.site = (int)get64(&in);
      PE_PUSH(f.nodes, f.nnodes, f.capnodes, x);
    }
    int ne = getcount(&in);
    for (int j = 0; j < ne && !in.bad; j++) {
      pe_edge e;
      e.from = (int)get64(&in); e.to = (int)get64(&in); e.loc = getloc(&in); e.weak = get64(&in);
      if (e.from < 0 || e.from >= f.nnodes || e.to < 0 || e.to >= f.nnodes) in.bad = true;
      PE_PUSH(f.edges, f.nedges, f.capedges, e);
    }
    int ns = getcount(&in);
    for (int j = 0; j < ns && !in.bad; j++) {
      pe_sink s;
      s.node = (int)get64(&in); s.kind = (enum pe_sink_kind)get64(&in); s.text = getstr(&in);
      s.dangling = get64(&in); s.loc = getloc(&in);
      if (s.node < 0 || s.node >= f.nnodes) in.bad = true;
      PE_PUSH(f.sinks, f.nsinks, f.capsinks, s);
    }
    int nc = getcount(&in);
    for (int j = 0; j < nc && !in.bad; j++) {
      pe_call c = {0};
      c.callee = (int)get64(&in); c.result = (int)get64(&in); c.nargs = getcount(&in);
      c.args = calloc((size_t)c.nargs + 1, sizeof *c.args);
      for (int a = 0; a < c.nargs; a++) c.args[a] = getterm(&in);
      c.text = getstr(&in);
      c.loop_lo = (unsigned)get64(&in); c.loop_hi = (unsigned)get64(&in); c.loc = getloc(&in);
      if (!c.text || c.result >= f.nnodes) in.bad = true;
      PE_PUSH(f.calls, f.ncalls, f.capcalls, c);
    }
    int na = getcount(&in);
    for (int j = 0; j < na && !in.bad; j++) {
      pe_callarg c;
      c.call = (int)get64(&in); c.param = (int)get64(&in); c.arg = (int)get64(&in); c.loc = getloc(&in);
      if (c.call < 0 || c.call >= f.ncalls || c.arg < 0 || c.arg >= f.nnodes) in.bad = true;
      PE_PUSH(f.cargs, f.ncargs, f.capcargs, c);
    }
    int nx = getcount(&in);
    for (int j = 0; j < nx && !in.bad; j++) {
      char *s = getstr(&in);
      if (!s) in.bad = true;
      PE_PUSH(f.ext, f.next, f.capext, s ? s : pe_xstrdup(""));
    }
    int nce = getcount(&in);
    for (int j = 0; j < nce && !in.bad; j++) {
      int c = (int)get64(&in);
      if (c < 0 || c >= nfuncs) in.bad = true;
      PE_PUSH(f.callees, f.ncallees, f.capcallees, c);
    }
    for (int j = 0; j < f.ncalls && !in.bad; j++) {
      int c = f.calls[j].callee;
      if (c >= nfuncs || (c < 0 && -c - 1 >= f.next)) in.bad = true;
    }
    if (!f.name || f.loaded < 0 || f.loaded >= f.nnodes || f.other < 0 || f.other >= f.nnodes)
      in.bad = true;
    for (int p = 0; p < f.nparams; p++)
      if (f.param_node[p] < 0 || f.param_node[p] >= f.nnodes) in.bad = true;
    if (!f.name) f.name = pe_xstrdup("");
    PE_PUSH(v.funcs, v.nfuncs, v.capfuncs, f);
  }
  free(all.b);
  if (in.bad || in.at != in.n) {
    pe_unit_free(&v);
    return -1;
  }
  *u = v;
  return 0;
}
