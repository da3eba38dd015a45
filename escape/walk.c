/* walk.c - from libclang cursors to the escape graph of each function (model: escape.h): the
 * statements and the translation unit here, expressions in expr.c, calls in call.c. The rules:
 *
 * val(e) returns the node holding the pointer value of expression e (-1: e carries no tracked
 * pointer), addr(e) the node holding the address of lvalue e, store(lhs, n) records "n is
 * stored into lhs". Every sub-expression is visited exactly once, for its effects, whatever its
 * value is used for; a kind we do not know merges the values of its children (over-approximate:
 * more flows can only make more things escape).
 *
 * libclang 14 has no operator-kind API. Unary operators are told apart by types (&x: T -> T*,
 * *p: T* -> T, the rest keeps the type). Binary operators only matter when both operands carry
 * pointers: then it is '=' or ','; the operator is read from the source text between the two
 * operands, and when that text is not there (operands from a macro body) it is taken to be '=',
 * the conservative choice. An integer-typed value never carries a tracked pointer, because the
 * pointer-to-integer cast that made it is itself an escape.
 *
 * Loops: each allocation remembers the body extent of its innermost loop (or of a backward goto
 * region); a variable declared outside that extent outlives the iteration (solve.c).
 * Deep expressions recurse; past PE_MAX_DEPTH the function is given up (all its allocations
 * escape, its parameters leak) rather than risk the stack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "walk.h"

/* ---- statements ------------------------------------------------------------------------- */
static void vardecl(walker *w, CXCursor c) {
  CXCursor init = clang_Cursor_getVarDeclInitializer(c);
  int n = clang_Cursor_isNull(init) ? -1 : w_assigned(w, init, w_val(w, init));
  int cls = w_var_class(c);
  if (cls == 0) {
    w_edge(w, n, w_var_node(w, c), w_loc_of(c));
  } else {
    char *name = w_spell(c);
    w_sink(w, n, S_GLOBAL, pe_fmt("stored to %s %s", w_class_word(cls), name), true, w_loc_of(c));
    free(name);
  }
}

static void stmt_(walker *w, CXCursor c) {
  if (clang_isExpression(c.kind)) { w_val(w, c); return; }
  if (c.kind == CXCursor_VarDecl) { vardecl(w, c); return; }
  if (clang_isDeclaration(c.kind)) return; /* nested struct, typedef, function prototype */
  kids_t k = w_kids(c);
  switch (c.kind) {
    case CXCursor_ReturnStmt:
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind))
          w_sink(w, w_assigned(w, k.v[i], w_val(w, k.v[i])), S_RETURN, pe_xstrdup("returned"),
                 true, w_loc_of(c));
      break;
    case CXCursor_ForStmt: case CXCursor_WhileStmt: case CXCursor_DoStmt: {
      region r = {0, 0};
      bool ok;
      if (c.kind == CXCursor_DoStmt && k.n == 2 && w_eval_int(k.v[1], &ok) == 0 && ok) {
        for (int i = 0; i < k.n; i++) w_stmt(w, k.v[i]); /* do { } while (0): not a loop */
        break;
      }
      if (k.n) w_extent_offs(k.v[c.kind == CXCursor_DoStmt ? 0 : k.n - 1], &r.lo, &r.hi);
      if (w->nloops < (int)(sizeof w->loops / sizeof w->loops[0])) w->loops[w->nloops++] = r;
      else w->loops[w->nloops - 1] = r;
      for (int i = 0; i < k.n; i++) w_stmt(w, k.v[i]);
      w->nloops--;
      break;
    }
    case CXCursor_GotoStmt: {
      CXCursor label = clang_getCursorReferenced(c);
      unsigned lo = w_loc_of(label).off, hi = w_loc_of(c).off;
      if (!clang_Cursor_isNull(label) && lo < hi && w->f->nbackgoto < 64) {
        w->f->backgoto_lo[w->f->nbackgoto] = lo;
        w->f->backgoto_hi[w->f->nbackgoto++] = hi + 1;
      } else if (w->f->nbackgoto >= 64) {
        w->f->backgoto_lo[63] = 0; /* too many: one region covering everything */
        w->f->backgoto_hi[63] = ~0u;
      }
      break;
    }
    case CXCursor_IndirectGotoStmt:
      if (w->f->nbackgoto < 64) {
        w->f->backgoto_lo[w->f->nbackgoto] = 0;
        w->f->backgoto_hi[w->f->nbackgoto++] = ~0u;
      }
      for (int i = 0; i < k.n; i++) w_stmt(w, k.v[i]);
      break;
    case CXCursor_GCCAsmStmt:
      for (int i = 0; i < k.n; i++)
        if (clang_isExpression(k.v[i].kind))
          w_sink(w, w_val(w, k.v[i]), S_UNKNOWN, pe_xstrdup("used by inline asm"), false, w_loc_of(c));
      break;
    default:
      for (int i = 0; i < k.n; i++) w_stmt(w, k.v[i]);
  }
  free(k.v);
}

void w_stmt(walker *w, CXCursor c) {
  if (w->too_deep) return;
  if (++w->depth > PE_MAX_DEPTH) { w->too_deep = true; w->depth--; return; }
  stmt_(w, c);
  w->depth--;
}

/* ---- the unit --------------------------------------------------------------------------- */
/* Every function defined in the translation unit outside system headers: the main file's and
 * those of the project's headers (static inline helpers, header-only libraries). */
static enum CXChildVisitResult top(CXCursor c, CXCursor parent, CXClientData d) {
  walker *w = d;
  if (c.kind != CXCursor_FunctionDecl || !clang_isCursorDefinition(c)) return CXChildVisit_Continue;
  CXSourceLocation at = clang_getCursorLocation(c);
  CXFile f;
  clang_getExpansionLocation(at, &f, NULL, NULL, NULL);
  if (!f || (!clang_File_isEqual(f, w->mainfile) && clang_Location_isInSystemHeader(at)))
    return CXChildVisit_Continue;
  pe_func fn = {0};
  fn.name = w_spell(c);
  fn.loc = w_loc_of(c);
  fn.external = clang_getCursorLinkage(c) == CXLinkage_External;
  fn.nparams = clang_Cursor_getNumArguments(c);
  fn.freeparam = -1;
  fn.passthru = -1;
  if (fn.nparams < 0) fn.nparams = 0;
  int capfcur = w->u->capfuncs;
  PE_PUSH(w->u->funcs, w->u->nfuncs, w->u->capfuncs, fn);
  if (capfcur != w->u->capfuncs) {
    w->fcur = pe_xrealloc(w->fcur, sizeof *w->fcur * (size_t)w->u->capfuncs);
    w->ffile = pe_xrealloc(w->ffile, sizeof *w->ffile * (size_t)w->u->capfuncs);
  }
  w->fcur[w->u->nfuncs - 1] = c;
  w->ffile[w->u->nfuncs - 1] = f;
  return CXChildVisit_Continue;
}

/* The printed name of a header: resolved (so that every unit names it alike), relative to the
 * current directory when under it. */
static char *header_name(CXFile f, const char *dir) {
  CXString s = clang_getFileName(f);
  const char *n = clang_getCString(s);
  char *p = n[0] != '/' && dir && dir[0] ? pe_fmt("%s/%s", dir, n) : pe_xstrdup(n);
  clang_disposeString(s);
  char *real = realpath(p, NULL);
  if (real) { free(p); p = real; }
  const char *cwd = pe_start_dir;
  size_t k;
  if (p[0] == '/' && (k = strlen(cwd)) > 1 && strncmp(p, cwd, k) == 0 && p[k] == '/')
    memmove(p, p + k + 1, strlen(p + k + 1) + 1);
  return p;
}

/* The printed name of file f for the unit (interned in u->files). */
static const char *file_label(walker *w, CXFile f, CXFile *seen, int *nseen) {
  if (clang_File_isEqual(f, w->mainfile)) return w->u->path;
  for (int i = 0; i < *nseen; i++)
    if (clang_File_isEqual(seen[i], f)) return w->u->files[i];
  char *full = header_name(f, w->dir);
  const char *name = pe_intern(full);
  free(full);
  PE_PUSH(w->u->files, w->u->nfiles, w->u->capfiles, name);
  seen[(*nseen)++] = f;
  return name;
}

static void fix_term(walker *w, pe_term *t, unsigned off, bool in_loop) {
  for (int j = 0; j < t->np; j++) {
    unsigned first = t->p[j] < 64 ? w->pwmin[t->p[j]] : 0;
    if (first != ~0u && (in_loop || first < off)) t->ok = false;
  }
}

int pe_walk_unit(CXTranslationUnit tu, pe_unit *u, const char *dir, const pe_opts *o) {
  walker w = {.tu = tu, .u = u, .o = o, .dir = dir};
  CXString sp = clang_getTranslationUnitSpelling(tu);
  w.mainfile = clang_getFile(tu, clang_getCString(sp));
  clang_disposeString(sp);
  if (!w.mainfile) {
    fprintf(stderr, "palloc-escape: %s: error: main file not found in its translation unit\n",
            u->path);
    return -1;
  }
  clang_visitChildren(clang_getTranslationUnitCursor(tu), top, &w);
  CXFile *seen = malloc(sizeof *seen * ((size_t)u->nfuncs + 1));
  int nseen = 0;
  for (int i = 0; i < u->nfuncs; i++) u->funcs[i].file = file_label(&w, w.ffile[i], seen, &nseen);
  free(seen);
  w.capf = 16;
  while (w.capf < (size_t)u->nfuncs * 2 + 2) w.capf *= 2;
  w.fnames = calloc(w.capf, sizeof *w.fnames);
  w.fidx = calloc(w.capf, sizeof *w.fidx);
  for (int i = 0; i < u->nfuncs; i++)
    if (w_func_find(&w, u->funcs[i].name) < 0) w_func_put(&w, u->funcs[i].name, i);
  int rc = 0;
  for (int i = 0; i < u->nfuncs; i++) {
    pe_func *f = &u->funcs[i];
    w.f = f;
    w.file = w.ffile[i];
    size_t len = 0;
    w.buf = clang_getFileContents(tu, w.file, &len);
    w.buflen = w.buf ? len : 0;
    w.nvars = 0;
    if (w.vars) memset(w.vars, 0, w.capvars * sizeof *w.vars);
    w.nloops = 0;
    w.depth = 0;
    w.too_deep = false;
    memset(w.pwmin, 0xff, sizeof w.pwmin);
    f->loaded = w_node_new(&w, N_LOADED, pe_xstrdup("*(load)"), f->loc);
    f->nodes[f->loaded].mixed = true;
    f->other = w_node_new(&w, N_TEMP, NULL, f->loc);
    f->nodes[f->other].mixed = true;
    f->param_node = calloc((size_t)f->nparams + 1, sizeof *f->param_node);
    f->psum = calloc((size_t)f->nparams + 1, sizeof *f->psum);
    f->preason = calloc((size_t)f->nparams + 1, sizeof *f->preason);
    for (int p = 0; p < f->nparams; p++) {
      CXCursor pc = clang_Cursor_getArgument(w.fcur[i], (unsigned)p);
      f->param_node[p] = w_var_node(&w, pc);
      f->nodes[f->param_node[p]].param = p;
      f->nodes[f->param_node[p]].mixed = true;
      f->nodes[f->param_node[p]].carries = carries(clang_getCanonicalType(clang_getCursorType(pc)));
    }
    kids_t k = w_kids(w.fcur[i]);
    for (int j = 0; j < k.n; j++)
      if (k.v[j].kind == CXCursor_CompoundStmt) w_stmt(&w, k.v[j]);
    free(k.v);
    f->analyzed = !w.too_deep;
    if (w.too_deep) {
      fprintf(stderr, "palloc-escape: %s:%u: error: function %s is too deeply nested to analyze; "
              "its allocations are taken to escape\n", f->file, f->loc.line, f->name);
      rc = -1;
    }
    for (int g = 0; g < f->nbackgoto; g++)
      for (int n = 0; n < f->nnodes; n++) {
        pe_node *a = &f->nodes[n];
        unsigned lo = f->backgoto_lo[g], hi = f->backgoto_hi[g];
        if (a->kind != N_ALLOC || a->loc.off < lo || a->loc.off >= hi) continue;
        if (a->loop_hi == 0 || hi - lo < a->loop_hi - a->loop_lo) {
          a->loop_lo = lo;
          a->loop_hi = hi;
        }
      }
    for (int g = 0; g < f->nbackgoto; g++) /* the same for calls (wrapper allocations) */
      for (int n = 0; n < f->ncalls; n++) {
        pe_call *a = &f->calls[n];
        unsigned lo = f->backgoto_lo[g], hi = f->backgoto_hi[g];
        if (a->loc.off < lo || a->loc.off >= hi) continue;
        if (a->loop_hi == 0 || hi - lo < a->loop_hi - a->loop_lo) {
          a->loop_lo = lo;
          a->loop_hi = hi;
        }
      }
    /* size terms naming a parameter assigned to before (or, in a loop, anywhere), or whose
     * address is taken, do not say the size: its value there is not the argument */
    for (int p = 0; p < f->nparams && p < 64; p++)
      if (f->nodes[f->param_node[p]].addr_taken) w.pwmin[p] = 0;
    for (int n = 0; n < f->nnodes; n++)
      if (f->nodes[n].kind == N_ALLOC)
        fix_term(&w, &f->nodes[n].term, f->nodes[n].loc.off, f->nodes[n].loop_hi != 0);
    for (int n = 0; n < f->ncalls; n++)
      for (int a = 0; a < f->calls[n].nargs; a++)
        fix_term(&w, &f->calls[n].args[a], f->calls[n].loc.off, f->calls[n].loop_hi != 0);
  }
  free(w.vars);
  free(w.fnames);
  free(w.fidx);
  free(w.fcur);
  free(w.ffile);
  return rc;
}
