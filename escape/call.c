/* call.c - calls: allocators (a new N_ALLOC node with its constant size if any), setjmp,
 * libc callees by their table (libc.c), functions of this unit (recorded for their summary),
 * unknown and indirect callees (every argument escapes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "walk.h"

long long w_eval_int(CXCursor c, bool *ok) {
  CXEvalResult r = clang_Cursor_Evaluate(c);
  *ok = false;
  long long v = 0;
  if (r) {
    if (clang_EvalResult_getKind(r) == CXEval_Int) {
      *ok = true;
      if (clang_EvalResult_isUnsignedInt(r)) {
        unsigned long long u = clang_EvalResult_getAsUnsigned(r);
        v = u > (unsigned long long)INT64_MAX ? INT64_MAX : (long long)u;
      } else {
        v = clang_EvalResult_getAsLongLong(r);
      }
    }
    clang_EvalResult_dispose(r);
  }
  return v;
}

static bool w_is_name(const char *name, char **list, int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0) return true;
  return false;
}

/* Which arguments make the size of an allocator call: malloc(n), calloc(n, s),
 * aligned_alloc(a, n), custom ones: the product of all their arguments. */
static int alloc_size_args(walker *w, const char *name, int *first, int *count, int nargs) {
  if (!strcmp(name, "malloc") || !strcmp(name, "valloc")) { *first = 0; *count = 1; return 1; }
  if (!strcmp(name, "calloc")) { *first = 0; *count = 2; return 1; }
  if (!strcmp(name, "aligned_alloc") || !strcmp(name, "memalign")) {
    *first = 1; *count = 1; return 1;
  }
  if (w_is_name(name, w->o->allocs, w->o->nallocs)) { *first = 0; *count = nargs; return 1; }
  return 0;
}

int w_call(walker *w, CXCursor c) {
  pe_loc loc = w_loc_of(c);
  CXCursor callee = clang_getCursorReferenced(c);
  int nargs = clang_Cursor_getNumArguments(c);
  if (nargs < 0) nargs = 0;
  bool carry = carries(ctype(c));
  if (callee.kind != CXCursor_FunctionDecl) { /* indirect call */
    kids_t k = w_kids(c);
    if (k.n > 0) w_val(w, k.v[0]);
    free(k.v);
    for (int i = 0; i < nargs; i++)
      w_sink(w, w_val(w, clang_Cursor_getArgument(c, i)), S_INDIRECT,
           pe_xstrdup("passed to indirect call"), false, loc);
    return -1;
  }
  char *name = w_spell(callee);
  int first, count, result = -1;
  if (alloc_size_args(w, name, &first, &count, nargs)) {
    long long size = 1;
    int known = 1;
    for (int i = 0; i < nargs; i++) {
      CXCursor a = clang_Cursor_getArgument(c, i);
      w_val(w, a);
      if (i >= first && i < first + count) {
        bool ok;
        long long v = w_eval_int(a, &ok);
        if (!ok) known = 0;
        else if (v < 0 || (v > 0 && size > INT64_MAX / v)) size = INT64_MAX;
        else size *= v;
      }
    }
    result = w_node_new(w, N_ALLOC, w_call_text(w, c), loc);
    pe_node *a = &w->f->nodes[result];
    a->size_known = known;
    a->size = known ? size : -1;
    if (w->nloops) {
      a->loop_lo = w->loops[w->nloops - 1].lo;
      a->loop_hi = w->loops[w->nloops - 1].hi;
    }
    free(name);
    return result;
  }
  if (pe_is_setjmp(name)) w->f->calls_setjmp = true;
  const char *eff = w_is_name(name, w->o->frees, w->o->nfrees) ? "f" : pe_libc_effects(name);
  if (pe_is_setjmp(name)) eff = "s";
  if (eff) {
    size_t ne = strlen(eff);
    for (int i = 0; i < nargs; i++) {
      char e = eff[(size_t)i < ne ? (size_t)i : ne - 1];
      int a = w_val(w, clang_Cursor_getArgument(c, i));
      switch (e) {
        case 'r': result = w_merge(w, result, a, loc); break;
        case 'c': w_sink(w, a, S_CAPTURE, pe_fmt("captured by %s", name), false, loc); break;
        case 'f': w_sink(w, a, S_FREE, pe_fmt("freed by %s", name), false, loc); break;
        case 'R': w_sink(w, a, S_REALLOC, pe_fmt("realloc'd by %s", name), false, loc); break;
        case 'C': w_sink(w, a, S_DEREF, pe_fmt("copied by %s", name), false, loc); break;
        case 'D': w_sink(w, a, S_DEREF, pe_fmt("realloc'd by %s", name), false, loc); break;
        case 'e': {
          if (a < 0 || i + 1 >= nargs) break;
          CXCursor t = w_strip_casts(clang_Cursor_getArgument(c, i + 1));
          kids_t k = w_kids(t);
          CXCursor ref = k.n == 1 ? clang_getCursorReferenced(w_strip(k.v[0])) : clang_getNullCursor();
          free(k.v);
          if (t.kind == CXCursor_UnaryOperator && is_ptr(ctype(t)) &&
              (ref.kind == CXCursor_VarDecl || ref.kind == CXCursor_ParmDecl) && w_var_class(ref) == 0)
            w_edge(w, a, w_var_node(w, ref), loc);
          else
            w_sink(w, a, S_THROUGH, pe_fmt("stored through pointer by %s", name), false, loc);
          break;
        }
        default: break;
      }
    }
    free(name);
    return carry ? result : -1;
  }
  int fi = w_func_find(w, name);
  if (fi >= 0) {
    pe_func *g = &w->u->funcs[fi];
    PE_PUSH(w->f->callees, w->f->ncallees, w->f->capcallees, fi);
    result = carry ? w_node_new(w, N_TEMP, pe_fmt("%s(...)", name), loc) : -1;
    if (result >= 0) w->f->nodes[result].mixed = true;
    for (int i = 0; i < nargs; i++) {
      int a = w_val(w, clang_Cursor_getArgument(c, i));
      if (i < g->nparams) {
        if (a < 0) continue;
        int t = w_node_new(w, N_TEMP, pe_fmt("argument %d of %s", i + 1, name), loc);
        w_edge(w, a, t, loc);
        pe_callarg ca = {fi, i, t, result, loc};
        PE_PUSH(w->f->calls, w->f->ncalls, w->f->capcalls, ca);
      } else {
        w_sink(w, a, S_UNKNOWN, pe_fmt("passed to variadic %s", name), false, loc);
      }
    }
    free(name);
    return result;
  }
  for (int i = 0; i < nargs; i++)
    w_sink(w, w_val(w, clang_Cursor_getArgument(c, i)), S_UNKNOWN,
         pe_fmt("passed to unknown function %s", name), false, loc);
  free(name);
  return -1;
}

