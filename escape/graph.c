/* graph.c - building blocks of the escape graph: cursor helpers, nodes, edges, sinks, the
 * Decl* -> node map of a function's variables and the name -> index map of the unit's
 * functions. Variables are keyed by the Decl pointer behind the cursor (data[0]), which is
 * the same whether the cursor came from a declaration or from a reference to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "walk.h"

/* ---- small helpers ---------------------------------------------------------------------- */

static enum CXChildVisitResult collect(CXCursor c, CXCursor parent, CXClientData d) {
  kids_t *k = d;
  PE_PUSH(k->v, k->n, k->cap, c);
  return CXChildVisit_Continue;
}

kids_t w_kids(CXCursor c) {
  kids_t k = {0};
  clang_visitChildren(c, collect, &k);
  return k;
}

char *w_spell(CXCursor c) {
  CXString s = clang_getCursorSpelling(c);
  char *r = pe_xstrdup(clang_getCString(s));
  clang_disposeString(s);
  return r;
}

pe_loc w_loc_of(CXCursor c) {
  CXFile f;
  unsigned line, col, off;
  clang_getExpansionLocation(clang_getCursorLocation(c), &f, &line, &col, &off);
  return (pe_loc){line, col, off};
}

void w_extent_offs(CXCursor c, unsigned *lo, unsigned *hi) {
  CXSourceRange r = clang_getCursorExtent(c);
  CXFile f;
  clang_getExpansionLocation(clang_getRangeStart(r), &f, NULL, NULL, lo);
  clang_getExpansionLocation(clang_getRangeEnd(r), &f, NULL, NULL, hi);
}

int w_node_new(walker *w, enum pe_node_kind k, char *name, pe_loc loc) {
  pe_node n = {.kind = k, .name = name, .loc = loc, .var = -1, .param = -1, .size = -1,
               .site = -1};
  PE_PUSH(w->f->nodes, w->f->nnodes, w->f->capnodes, n);
  return w->f->nnodes - 1;
}

void w_edge(walker *w, int from, int to, pe_loc loc) {
  if (from < 0 || to < 0 || from == to) return;
  pe_edge e = {from, to, loc, false};
  PE_PUSH(w->f->edges, w->f->nedges, w->f->capedges, e);
}

void w_sink(walker *w, int node, enum pe_sink_kind k, char *text, bool dangling, pe_loc loc) {
  if (node < 0) { free(text); return; }
  pe_sink s = {node, k, text, dangling, loc};
  PE_PUSH(w->f->sinks, w->f->nsinks, w->f->capsinks, s);
}

int w_merge(walker *w, int a, int b, pe_loc loc) {
  if (a < 0) return b;
  if (b < 0 || a == b) return a;
  int t = w_node_new(w, N_TEMP, NULL, loc);
  w_edge(w, a, t, loc);
  w_edge(w, b, t, loc);
  return t;
}

/* ---- variables -------------------------------------------------------------------------- */
static size_t ptrhash(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 20);
}

static int *var_slot(walker *w, const void *key) {
  if (w->nvars * 2 >= w->capvars) {
    size_t ncap = w->capvars ? w->capvars * 2 : 64;
    varslot *nv = calloc(ncap, sizeof *nv);
    for (size_t i = 0; i < w->capvars; i++)
      if (w->vars[i].key) {
        size_t j = ptrhash(w->vars[i].key) & (ncap - 1);
        while (nv[j].key) j = (j + 1) & (ncap - 1);
        nv[j] = w->vars[i];
      }
    free(w->vars);
    w->vars = nv;
    w->capvars = ncap;
  }
  size_t j = ptrhash(key) & (w->capvars - 1);
  while (w->vars[j].key && w->vars[j].key != key) j = (j + 1) & (w->capvars - 1);
  if (!w->vars[j].key) {
    w->vars[j].key = key;
    w->vars[j].node = -1;
    w->nvars++;
  }
  return &w->vars[j].node;
}

int w_var_node(walker *w, CXCursor decl) {
  int *slot = var_slot(w, decl.data[0]);
  if (*slot < 0) *slot = w_node_new(w, N_VAR, w_spell(decl), w_loc_of(decl));
  return *slot;
}

/* 0: automatic local or parameter; 1: global; 2: static; 3: thread-local. */
int w_var_class(CXCursor decl) {
  if (decl.kind == CXCursor_ParmDecl) return 0;
  if (decl.kind != CXCursor_VarDecl) return 1;
  if (clang_getCursorTLSKind(decl) != CXTLS_None) return 3;
  enum CX_StorageClass sc = clang_Cursor_getStorageClass(decl);
  if (sc == CX_SC_Static) return 2;
  if (sc == CX_SC_Extern) return 1;
  if (clang_getCursorSemanticParent(decl).kind == CXCursor_TranslationUnit) return 1;
  return 0;
}

const char *w_class_word(int cls) {
  return cls == 3 ? "thread-local" : cls == 2 ? "static" : "global";
}

int w_addr_of_var(walker *w, int var, CXCursor at) {
  pe_node *x = &w->f->nodes[var];
  if (!x->addr_taken) {
    x->addr_taken = true;
    w_edge(w, var, w->f->loaded, x->loc);
    w->f->edges[w->f->nedges - 1].weak = true;
  }
  int a = w_node_new(w, N_ADDR, pe_fmt("&%s", w->f->nodes[var].name), w_loc_of(at));
  w->f->nodes[a].var = var;
  return a;
}

/* ---- functions of the unit -------------------------------------------------------------- */
static size_t strhash(const char *s) {
  size_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void w_func_put(walker *w, const char *name, int idx) {
  size_t j = strhash(name) & (w->capf - 1);
  while (w->fnames[j]) j = (j + 1) & (w->capf - 1);
  w->fnames[j] = (char *)name;
  w->fidx[j] = idx;
}

int w_func_find(walker *w, const char *name) {
  size_t j = strhash(name) & (w->capf - 1);
  for (; w->fnames[j]; j = (j + 1) & (w->capf - 1))
    if (strcmp(w->fnames[j], name) == 0) return w->fidx[j];
  return -1;
}

