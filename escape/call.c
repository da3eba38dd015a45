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

/* ---- size terms ------------------------------------------------------------------------- */
static long long sat_mul(long long a, long long b) {
  if (a == 0 || b == 0) return 0;
  if (a < 0 || b < 0 || a > INT64_MAX / b) return INT64_MAX; /* too large for any stack */
  return a * b;
}
static long long sat_add(long long a, long long b) {
  if (a < 0 || b < 0 || a > INT64_MAX - b) return INT64_MAX;
  return a + b;
}
static bool is_const(pe_term t) { return t.ok && t.np == 0; }
static long long const_of(pe_term t) { /* the bound of a constant term */
  long long v = sat_add(t.k, t.add);
  return v > t.lo ? v : t.lo;
}

pe_term pe_term_const(long long c) {
  return (pe_term){.ok = c >= 0, .k = c < 0 ? 0 : c};
}

pe_term pe_term_mul(pe_term a, pe_term b) {
  if (!a.ok || !b.ok) return (pe_term){0};
  if (is_const(a)) { pe_term t = a; a = b; b = t; }
  if (is_const(b)) { /* max(x, lo) * c = max(x * c, lo * c) */
    long long c = const_of(b);
    a.k = sat_mul(a.k, c); a.add = sat_mul(a.add, c); a.lo = sat_mul(a.lo, c);
    if (a.np == 0) return pe_term_const(const_of(a));
    return a;
  }
  if (a.add || a.lo || b.add || b.lo || a.np + b.np > 4) return (pe_term){0};
  pe_term r = {.ok = true, .k = sat_mul(a.k, b.k)};
  for (int i = 0; i < a.np; i++) r.p[r.np++] = a.p[i];
  for (int i = 0; i < b.np; i++) r.p[r.np++] = b.p[i];
  return r;
}

pe_term pe_term_add(pe_term a, pe_term b) {
  if (!a.ok || !b.ok) return (pe_term){0};
  if (is_const(a)) { pe_term t = a; a = b; b = t; }
  if (!is_const(b)) return (pe_term){0};
  long long c = const_of(b);
  if (is_const(a)) return pe_term_const(sat_add(const_of(a), c));
  a.add = sat_add(a.add, c); /* max(x, lo) + c = max(x + c, lo + c) */
  if (a.lo) a.lo = sat_add(a.lo, c);
  return a;
}

pe_term pe_term_max(pe_term a, pe_term b) {
  if (!a.ok || !b.ok) return (pe_term){0};
  if (is_const(a)) { pe_term t = a; a = b; b = t; }
  if (is_const(b)) {
    long long c = const_of(b);
    if (is_const(a)) return pe_term_const(const_of(a) > c ? const_of(a) : c);
    if (c > a.lo) a.lo = c;
    return a;
  }
  if (a.np != b.np || a.k != b.k || a.add != b.add || memcmp(a.p, b.p, sizeof a.p) != 0)
    return (pe_term){0};
  if (b.lo > a.lo) a.lo = b.lo;
  return a;
}

/* c as k * param * param ...: a constant, a parameter of the function being walked (whose
 * writes are checked at the end of the function, walk.c), or a product of those. */
pe_term w_term(walker *w, CXCursor c) {
  bool ok;
  long long v = w_eval_int(c, &ok);
  if (ok) return pe_term_const(v);
  CXCursor s = w_strip_casts(c);
  if (s.kind == CXCursor_ConditionalOperator) {
    kids_t k = w_kids(s);
    pe_term r = k.n == 3 ? pe_term_max(w_term(w, k.v[1]), w_term(w, k.v[2])) : (pe_term){0};
    free(k.v);
    return r;
  }
  if (s.kind == CXCursor_DeclRefExpr) {
    CXCursor ref = clang_getCursorReferenced(s);
    if (ref.kind == CXCursor_ParmDecl && is_int(ctype(ref)))
      for (int p = 0; p < w->f->nparams && p < 64; p++)
        if (clang_equalCursors(clang_Cursor_getArgument(w->fcur[w->f - w->u->funcs], (unsigned)p), ref))
          return (pe_term){.ok = true, .np = 1, .p = {p}, .k = 1};
    return (pe_term){0};
  }
  if (s.kind == CXCursor_BinaryOperator) {
    kids_t k = w_kids(s);
    pe_term r = {0};
    if (k.n == 2) {
      char op[4];
      w_op_text(w, k.v[0], k.v[1], op);
      if (!strcmp(op, "*")) r = pe_term_mul(w_term(w, k.v[0]), w_term(w, k.v[1]));
      else if (!strcmp(op, "+")) r = pe_term_add(w_term(w, k.v[0]), w_term(w, k.v[1]));
    }
    free(k.v);
    return r;
  }
  return (pe_term){0};
}

/* ---- printf formats ------------------------------------------------------------------- */
/* The index of the format argument of a printf-family function, or -1. */
static int printf_format_arg(const char *name) {
  static const struct { const char *name; int fmt; } t[] = {
    {"printf", 0}, {"fprintf", 1}, {"sprintf", 1}, {"snprintf", 2}, {"dprintf", 1},
    {"asprintf", 1}, {"__printf_chk", 1}, {"__fprintf_chk", 2}, {"__sprintf_chk", 3},
    {"__snprintf_chk", 4}, {"__dprintf_chk", 2}, {"__asprintf_chk", 2},
    {"__builtin___sprintf_chk", 3}, {"__builtin___snprintf_chk", 4}, {"__builtin_printf", 0},
    {"__builtin_sprintf", 1}, {"__builtin_snprintf", 2}, {"__builtin_fprintf", 1},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(t[i].name, name)) return t[i].fmt;
  return -1;
}

/* For each argument after the format, whether a pointer there is only read through ('s', 'n':
 * safe) or has its value formatted (%p, %x of a pointer: the value can be parsed back with
 * sscanf, so it escapes as a cast to integer does). deref[i] for the i-th variadic argument.
 * Returns false if the format is not a constant string or uses what is not parsed here
 * (positional arguments): then every pointer argument escapes. */
static bool printf_derefs(CXCursor fmt, bool *deref, int nvar) {
  CXEvalResult r = clang_Cursor_Evaluate(fmt);
  if (!r) return false;
  if (clang_EvalResult_getKind(r) != CXEval_StrLiteral) { clang_EvalResult_dispose(r); return false; }
  const char *f = clang_EvalResult_getAsStr(r);
  int a = 0;
  bool ok = true;
  for (int i = 0; i < nvar; i++) deref[i] = false;
  for (; f && *f && ok; f++) {
    if (*f != '%') continue;
    f++;
    if (*f == '%') continue;
    while (*f && strchr("-+ #0'I", *f)) f++;
    if (*f >= '1' && *f <= '9') { /* width, or a positional %1$ */
      while (*f >= '0' && *f <= '9') f++;
      if (*f == '$') { ok = false; break; }
    } else if (*f == '*') { a++; f++; }
    if (*f == '.') {
      f++;
      if (*f == '*') { a++; f++; }
      else while (*f >= '0' && *f <= '9') f++;
    }
    while (*f && strchr("hlLqjzZt", *f)) f++;
    if (!*f) break;
    if (*f == 'm') continue; /* glibc: strerror(errno), no argument */
    if ((*f == 's' || *f == 'S' || *f == 'n') && a < nvar) deref[a] = true;
    a++;
  }
  clang_EvalResult_dispose(r);
  return ok;
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
    pe_term term = pe_term_const(1);
    for (int i = 0; i < nargs; i++) {
      CXCursor a = clang_Cursor_getArgument(c, i);
      w_val(w, a);
      if (i >= first && i < first + count) {
        bool ok;
        long long v = w_eval_int(a, &ok);
        if (!ok) known = 0;
        else if (v < 0 || (v > 0 && size > INT64_MAX / v)) size = INT64_MAX;
        else size *= v;
        term = pe_term_mul(term, w_term(w, a));
      }
    }
    result = w_node_new(w, N_ALLOC, w_call_text(w, c), loc);
    pe_node *a = &w->f->nodes[result];
    a->size_known = known;
    a->size = known ? size : -1;
    a->term = term;
    if (w->nloops) {
      a->loop_lo = w->loops[w->nloops - 1].lo;
      a->loop_hi = w->loops[w->nloops - 1].hi;
    }
    free(name);
    return result;
  }
  if (pe_is_setjmp(name)) w->f->calls_setjmp = true;
  const char *eff = w_is_name(name, w->o->frees, w->o->nfrees)        ? "f"
                    : w_is_name(name, w->o->reallocs, w->o->nreallocs) ? "Rs"
                                                                       : pe_libc_effects(name);
  if (pe_is_setjmp(name)) eff = "s";
  if (eff) {
    size_t ne = strlen(eff);
    int fmt = printf_format_arg(name);
    bool *deref = NULL, fmt_ok = false;
    if (fmt >= 0 && nargs > fmt + 1) {
      deref = calloc((size_t)(nargs - fmt), sizeof *deref);
      fmt_ok = printf_derefs(clang_Cursor_getArgument(c, fmt), deref, nargs - fmt - 1);
    }
    for (int i = 0; i < nargs; i++) {
      char e = eff[(size_t)i < ne ? (size_t)i : ne - 1];
      CXCursor ac = clang_Cursor_getArgument(c, i);
      int a = w_val(w, ac);
      if (fmt >= 0 && i > fmt) { /* a printf argument: its pointer value may become text */
        if (!fmt_ok)
          w_sink(w, a, S_INTCAST, pe_fmt("formatted by %s with a format not known here", name),
                 false, loc);
        else if (!deref[i - fmt - 1])
          w_sink(w, a, S_INTCAST, pe_fmt("formatted as a number by %s (%%p)", name), false, loc);
        continue;
      }
      switch (e) {
        case 'r': result = w_merge(w, result, a, loc); break;
        case 'c': w_sink(w, a, S_CAPTURE, pe_fmt("captured by %s", name), false, loc); break;
        case 'f': w_sink(w, a, S_FREE, pe_fmt("freed by %s", name), false, loc); break;
        case 'R':
          w_sink(w, a, S_REALLOC, pe_fmt("realloc'd by %s", name), false, loc);
          if (carry && result < 0) { /* its value: a heap block of its own */
            result = w_node_new(w, N_ALLOC, w_call_text(w, c), loc);
            w->f->nodes[result].resized = true;
            w->f->nodes[result].size_known = 0;
            if (w->nloops) {
              w->f->nodes[result].loop_lo = w->loops[w->nloops - 1].lo;
              w->f->nodes[result].loop_hi = w->loops[w->nloops - 1].hi;
            }
          }
          break;
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
    free(deref);
    free(name);
    return carry ? result : -1;
  }
  /* A function of this unit (its summary), or an external one (resolved against the other
   * units before solving; unknown if none defines it): the call is recorded with its
   * arguments, and its value is a node of its own, which becomes an allocation if the callee
   * turns out to be an allocation wrapper. */
  int fi = w_func_find(w, name);
  pe_call call = {.callee = fi, .nargs = nargs, .loc = loc};
  if (fi < 0) {
    PE_PUSH(w->f->ext, w->f->next, w->f->capext, pe_xstrdup(name));
    call.callee = -w->f->next;
  } else {
    PE_PUSH(w->f->callees, w->f->ncallees, w->f->capcallees, fi);
  }
  result = carry ? w_node_new(w, N_TEMP, pe_fmt("%s(...)", name), loc) : -1;
  if (result >= 0) w->f->nodes[result].mixed = true;
  call.result = result;
  call.text = w_call_text(w, c);
  call.args = calloc((size_t)nargs + 1, sizeof *call.args);
  if (w->nloops) {
    call.loop_lo = w->loops[w->nloops - 1].lo;
    call.loop_hi = w->loops[w->nloops - 1].hi;
  }
  /* recorded before its arguments are walked: calls inside them come after it */
  int ci = w->f->ncalls;
  PE_PUSH(w->f->calls, w->f->ncalls, w->f->capcalls, call);
  for (int i = 0; i < nargs; i++) {
    CXCursor ac = clang_Cursor_getArgument(c, i);
    int a = w_assigned(w, ac, w_val(w, ac)); /* an untracked pointer is OTHER: a pass-through
                                                 returns it */
    w->f->calls[ci].args[i] = w_term(w, ac);
    if (a < 0) continue;
    int t = w_node_new(w, N_TEMP, pe_fmt("argument %d of %s", i + 1, name), loc);
    w_edge(w, a, t, loc);
    pe_callarg ca = {ci, i, t, loc};
    PE_PUSH(w->f->cargs, w->f->ncargs, w->f->capcargs, ca);
  }
  free(name);
  return result;
}
